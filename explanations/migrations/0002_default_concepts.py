from django.db import migrations

DEFAULTS = [
    ("Bulk buyer", "bulk_buyer", "", "Orders large quantities per line (top quarter of customers)."),
    ("Seasonal / Christmas buyer", "seasonal", "", "Most orders fall in October to December."),
    ("Price-sensitive", "price_sensitive", "", "Pays below the catalogue's median price for the same items."),
    ("Frequent buyer", "frequent", "", "Orders often (top quarter by number of orders)."),
    ("Lapsed", "lapsed", "", "No order in the last 90 days."),
    ("Home décor", "seed_phrases",
     "LANTERN\nCANDLE\nT-LIGHT\nFRAME\nCUSHION\nCLOCK\nMIRROR\nVASE\nDOORMAT\nWALL\nHEART\nDECORATION",
     "Buys lanterns, candle holders, frames, cushions and other decoration."),
    ("Kitchen & dining", "seed_phrases",
     "MUG\nCUP\nPLATE\nBOWL\nTEA\nCAKE\nKITCHEN\nJAR\nLUNCH\nTIN\nSPOON\nRECIPE\nBAKING\nNAPKIN",
     "Buys kitchenware, tableware, baking and lunch items."),
    ("Party & gifts", "seed_phrases",
     "PARTY\nBIRTHDAY\nGIFT\nWRAP\nCARD\nBUNTING\nBALLOON\nRIBBON\nBAG\nCHRISTMAS",
     "Buys party supplies, gift wrap, cards and gift bags."),
    ("Garden", "seed_phrases",
     "GARDEN\nPLANT\nFLOWER\nWATERING\nBIRD\nHERB\nPLANTER\nPOT\nSEED\nOUTDOOR",
     "Buys garden, plant and outdoor items."),
]  # fmt: skip


def add_defaults(apps, schema_editor):
    Concept = apps.get_model("explanations", "Concept")
    for name, rule, seeds, description in DEFAULTS:
        Concept.objects.get_or_create(name=name, defaults={"rule": rule, "seed_phrases": seeds, "description": description})


class Migration(migrations.Migration):
    dependencies = [("explanations", "0001_initial")]
    operations = [migrations.RunPython(add_defaults, migrations.RunPython.noop)]
