"""Import an Online Retail transaction file: ``transactions_import`` (see ``run`` for the whole story).

Modules: ``source`` reads and checks the file, ``run`` streams, cleans and stages the rows (``cleaning``
decides each row), ``merge`` is the set-based SQL, ``rejected`` the rejected-rows report.
"""

from recommendations.services.importer.merge import indexes_dropped
from recommendations.services.importer.rejected import rejected_rows_erase
from recommendations.services.importer.run import ImportProgress, transactions_import
from recommendations.services.importer.source import InvalidImportFile

# The benchmark of the raw COPY baseline drops and rebuilds indexes the importer's way.
_indexes_dropped = indexes_dropped

__all__ = ["ImportProgress", "InvalidImportFile", "indexes_dropped", "rejected_rows_erase", "transactions_import"]
