from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """Limit/offset pagination whose page size can never exceed ``max_limit``."""

    default_limit = 50
    max_limit = 200
