"""Every URL x every role: the status each role gets is the one the permission matrix expects."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from core.demo_users import DEMO_USERS, demo_users_ensure
from tests.factories import (
    AccountAssignmentFactory,
    CustomerFactory,
    ExplanationFactory,
    ImportRunFactory,
    RecommendationFactory,
    UserFactory,
)
from tests.security.permission_matrix import (
    ADMIN_ROWS,
    CUSTOMER_KWARGS,
    CUSTOMER_QUERY_PARAMS,
    KWARGS,
    MATRIX,
    NOT_REQUESTED,
    ROLES,
)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEMO_USERNAMES = [u.username for u in DEMO_USERS]
# Django's own URL trees: the admin (its views are Django's, guarded by is_staff; ADMIN_ROWS covers ours).
SKIPPED_PREFIXES = ("admin/",)


def url_names() -> dict[str, str]:
    """Return every named URL of the project outside the skipped prefixes: name -> route."""
    found: dict[str, str] = {}

    def walk(patterns, prefix: str, namespace: str | None) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if route.startswith(SKIPPED_PREFIXES):
                continue
            if isinstance(pattern, URLResolver):
                ns = pattern.namespace
                walk(pattern.url_patterns, route, f"{namespace}:{ns}" if namespace and ns else ns or namespace)
            elif isinstance(pattern, URLPattern):
                name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
                found[name or f"<unnamed> {route}"] = route

    walk(get_resolver().url_patterns, "", None)
    return found


def cells(rows: dict[str, dict]) -> list[tuple[str, str]]:
    return [(name, method) for name, row in rows.items() for method in METHODS if method in row]


@dataclass
class Book:
    customer: object
    recommendation: object
    explanation: object


@dataclass
class World:
    users: dict
    own: Book
    foreign: Book
    import_run: object
    extra: dict = field(default_factory=dict)


def _book(owner) -> Book:
    customer = CustomerFactory()
    AccountAssignmentFactory(customer=customer, user=owner)
    recommendation = RecommendationFactory(customer=customer, rank=1)
    explanation = ExplanationFactory(recommendation=recommendation)
    return Book(customer, recommendation, explanation)


@pytest.fixture
def world(db, settings, tmp_path) -> World:
    settings.MEDIA_ROOT = tmp_path / "media"
    rejected = settings.MEDIA_ROOT / "imports" / "rejected.csv"
    rejected.parent.mkdir(parents=True)
    rejected.write_text("row,reason\n7,missing_customer\n")
    # The users exactly as `manage.py demo` makes them (reviewers and managers are staff there), and a
    # superuser as `createsuperuser` makes one.
    demo_users_ensure()
    demo = {
        u.username: u for u in get_user_model().objects.filter(username__in=["sales", "sales2", "reviewer", "manager"])
    }
    users = {
        "anonymous": None,
        "sales": demo["sales"],
        "reviewer": demo["reviewer"],
        "manager": demo["manager"],
        "admin": UserFactory(username="matrix-admin", is_staff=True, is_superuser=True),
    }
    other_sales = demo["sales2"]
    return World(
        users=users,
        own=_book(users["sales"]),
        foreign=_book(other_sales),
        import_run=ImportRunFactory(rejected_rows_file="imports/rejected.csv"),
    )


def _request(client: Client, method: str, url: str, row: dict):
    data = row.get("data", {})
    if row.get("json"):
        return client.generic(method, url, json.dumps(data), content_type="application/json")
    if method == "GET":
        return client.get(url, data)
    if method == "POST":
        return client.post(url, data)
    return client.generic(method, url, "", content_type="application/json")


def _status_as(world: World, role: str, method: str, url: str, row: dict) -> int:
    """Request ``url`` as ``role`` and return the status; everything it changed is rolled back."""
    client = Client()
    user = world.users[role]
    if user is not None:
        client.force_login(user)
    savepoint = transaction.savepoint()
    try:
        response = _request(client, method, url, row)
        # Drain streamed bodies so a file or generator error surfaces here.
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
        return response.status_code
    finally:
        transaction.savepoint_rollback(savepoint)


def _url(name: str, row: dict, world: World, book: Book) -> str:
    builder = row.get("kwargs")
    kwargs = KWARGS[builder](world, book) if builder else {}
    return reverse(name, kwargs=kwargs)


def _matches(expected, actual: int) -> bool:
    return actual in expected if isinstance(expected, tuple | list | set | frozenset) else actual == expected


# --------------------------------------------------------------------------- completeness


def test_every_url_has_a_row():
    """Fail for a URL name without a row in the matrix (and for rows whose URL is gone)."""
    names = url_names()
    missing = sorted(n for n in names if n not in MATRIX and n not in NOT_REQUESTED)
    stale = sorted(n for n in MATRIX if n not in names)
    assert missing == [], f"add rows to tests/security/permission_matrix.py for: {missing}"
    assert stale == [], f"rows for URLs that no longer exist: {stale}"


def test_every_row_is_well_formed():
    """Give every row a status for every role of every method it lists, and known kwargs builders."""
    for name, row in {**MATRIX, **ADMIN_ROWS}.items():
        methods = [m for m in METHODS if m in row]
        assert methods, f"{name}: no method"
        for method in methods:
            assert set(row[method]) == set(ROLES), f"{name} {method}: roles {sorted(row[method])}"
        assert row.get("kwargs") in (None, *KWARGS), f"{name}: unknown kwargs builder {row.get('kwargs')!r}"


# --------------------------------------------------------------------------- the cells


@pytest.mark.parametrize(("name", "method"), cells({**MATRIX, **ADMIN_ROWS}))
def test_role_gets_the_expected_status(world, name, method):
    """Request the URL as each role and compare with the matrix."""
    row = {**MATRIX, **ADMIN_ROWS}[name]
    url = _url(name, row, world, world.own)
    wrong = {}
    for role in ROLES:
        expected = row[method][role]
        actual = _status_as(world, role, method, url, row)
        if not _matches(expected, actual):
            wrong[role] = f"expected {expected}, got {actual}"
    assert wrong == {}, f"{method} {url}"


# Methods the sales user may use on their own customers' URLs (not those refused to sales anyway).
CROSS_BOOK = [
    (n, m)
    for n, m in cells(MATRIX)
    if MATRIX[n].get("kwargs") in CUSTOMER_KWARGS and MATRIX[n][m]["sales"] not in (403, 405)
]


@pytest.mark.parametrize(("name", "method"), CROSS_BOOK)
def test_sales_cannot_reach_another_books_customer(world, name, method):
    """Answer 404 to a sales user who asks for a customer of another sales user's book by pseudonym."""
    row = MATRIX[name]
    # Given the URL of the other book's customer (a valid pseudonym, existing in the database)
    url = _url(name, row, world, world.foreign)
    # When the sales user requests it / Then it does not exist for them
    assert _status_as(world, "sales", method, url, row) == 404
    # And the owner of that book would have been allowed (the 404 is scoping, not a broken URL)
    owner = Client()
    owner.force_login(world.foreign.customer.assignments.get().user)
    savepoint = transaction.savepoint()
    try:
        assert _request(owner, method, url, row).status_code == row[method]["sales"]
    finally:
        transaction.savepoint_rollback(savepoint)


def test_cross_book_check_covers_the_customer_page_and_api():
    """Keep the pseudonym-guessing check on the customer page and the customer API."""
    names = {n for n, _ in CROSS_BOOK}
    assert {"customer-detail", "api-customer-detail", "api-customer-recommendations"} <= names


@pytest.mark.parametrize("name", sorted(CUSTOMER_QUERY_PARAMS))
def test_sales_cannot_name_another_books_customer_in_a_query(world, name):
    """Answer 404 when a query parameter names a customer of another sales user's book."""
    param, extra = CUSTOMER_QUERY_PARAMS[name]
    url = reverse(name)
    foreign = {"data": {**extra, param: world.foreign.customer.pseudonym}}
    assert _status_as(world, "sales", "GET", url, foreign) == 404
    if not extra:  # the same request for an own customer is answered (no search worker needed)
        own = {"data": {param: world.own.customer.pseudonym}}
        assert _status_as(world, "sales", "GET", url, own) == 200
