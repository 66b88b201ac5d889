"""API pagination: bounded limit/offset pages, strict about malformed values."""

from __future__ import annotations

import re

from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

# Larger offsets are never useful and must not reach PostgreSQL's bigint OFFSET.
MAX_OFFSET = 2**31 - 1
_INTEGER_RE = re.compile(r"^-?[0-9]{1,18}$")
MAX_LIMIT_PARAMETER = 10**18 - 1  # the largest limit parsed (and then capped); longer numbers are refused


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """Limit/offset pagination whose page size can never exceed ``max_limit``."""

    default_limit = 50
    max_limit = 200


class StrictBoundedLimitOffsetPagination(BoundedLimitOffsetPagination):
    """Bounded limit/offset pagination that answers 400 to malformed values instead of guessing.

    A ``limit`` above ``max_limit`` is capped (clients may ask for "as many as possible"); a limit
    or offset that is not a whole number, or is out of range, is a client error.
    """

    def get_limit(self, request: Request) -> int:
        raw = request.query_params.get(self.limit_query_param)
        if raw is None or raw == "":
            return self.default_limit
        return min(_whole_number(raw, self.limit_query_param, minimum=1), self.max_limit)

    def get_offset(self, request: Request) -> int:
        raw = request.query_params.get(self.offset_query_param)
        if raw is None or raw == "":
            return 0
        return _whole_number(raw, self.offset_query_param, minimum=0, maximum=MAX_OFFSET)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        limit, offset = super().get_schema_operation_parameters(view)
        limit["description"] = f"Page size (default {self.default_limit}); values above {self.max_limit} are capped."
        limit["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT_PARAMETER}
        offset["description"] = "Index of the first result (0-based)."
        offset["schema"] = {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}
        return [limit, offset]


def _whole_number(raw: str, name: str, *, minimum: int, maximum: int | None = None) -> int:
    # Stricter than int(): no "1_000", "+5", " 5 " or thousands of digits.
    if not _INTEGER_RE.match(raw):
        raise ValidationError({name: [_("Must be a whole number.")]})
    value = int(raw)
    if value < minimum:
        raise ValidationError({name: [_("Must be at least %(minimum)d.") % {"minimum": minimum}]})
    if maximum is not None and value > maximum:
        raise ValidationError({name: [_("Must be at most %(maximum)d.") % {"maximum": maximum}]})
    return value
