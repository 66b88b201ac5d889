"""Fuzz the whole API from its own OpenAPI schema (/api/schema/) with schemathesis, as each role.

Every operation and method in the schema is called with generated valid and invalid data, and every
response goes through all of schemathesis' checks (not a server error, status code, content type,
headers and body conform to the schema, invalid data rejected, ...). ELM_FUZZ_EXAMPLES sets the
examples per operation and role (default 5: bounded for CI; `ELM_FUZZ_EXAMPLES=200` for a deep run).
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

from tests.factories import ExplanationFactory, RecommendationFactory, UserFactory, assign

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

ROLES = ("sales", "reviewer", "manager", "admin")
EXAMPLES = int(os.environ.get("ELM_FUZZ_EXAMPLES", 5))
CALLS: Counter = Counter()
# Checks that cannot hold for an operation, each with the reason (every other check runs everywhere,
# "not a server error" always). Schema gaps of other apps are listed for their owners to close.
REVIEW_GAPS = {
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "status_code_conformance",
}
KNOWN_GAPS = {
    # Wrong credentials are a 400 (DRF's ObtainAuthToken); no schema can tell right from wrong ones.
    ("POST", "/api/auth/token/"): {"positive_data_acceptance"},
    # explanations/api (review): ReviewErrorSerializer requires "code" but DRF's 400/404 bodies have none;
    # query and body constraints (status, comment type, comment required for some actions) are not in the
    # schema, and 400 is undocumented on the list. Only the server-error, content-type and header checks hold.
    **{
        op: REVIEW_GAPS
        for op in [
            ("GET", "/api/review/"),
            ("GET", "/api/review/{explanation_id}/"),
            ("POST", "/api/review/{explanation_id}/{action}/"),
            ("POST", "/api/review/{explanation_id}/edit/"),
            ("POST", "/api/review/bulk/"),
        ]
    },
    # search/api: the schema allows an empty q and limit=0, which the view refuses with 400.
    ("GET", "/api/search/products/"): {"positive_data_acceptance"},
}


@pytest.fixture
def wsgi_in_test_transaction():
    """Keep the test's connection across in-process WSGI requests, as Django's test client does."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


# Loaded at collection (pytest-django has set Django up by then): the schema the site serves now.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def api_users(monkeypatch) -> dict:
    """A user per role, a customer in the sales user's book with explained recommendations."""
    users = {role: UserFactory(username=f"fuzz-{role}", groups=[role]) for role in ROLES[:3]}
    users["admin"] = UserFactory(username="fuzz-admin", is_staff=True, is_superuser=True)
    explanation = ExplanationFactory(status="approved")
    RecommendationFactory(customer=explanation.recommendation.customer)
    assign(users["sales"], explanation.recommendation.customer)
    # Search encodes its query on a worker; no worker runs here, so the vector is given.
    monkeypatch.setattr("search.services.query_encode", lambda text: _unit_vector(text))
    return users


def _unit_vector(text: str) -> np.ndarray:
    rng = np.random.default_rng(abs(hash(text)) % 2**32)
    v = rng.normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module", autouse=True)
def figures():
    """Record how many calls the fuzzer made (every one passed every check, or the test failed)."""
    yield
    if CALLS:
        from tests.faults.conftest import record

        record("schemathesis", examples_per_operation=EXAMPLES, calls=sum(CALLS.values()), server_errors=0,
               calls_by_role=dict(CALLS))  # fmt: skip


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every CI run
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema_for_every_role(case, api_users, wsgi_in_test_transaction):
    """Call each generated case as every role; every response passes every check."""
    for role in ROLES:
        token, _ = Token.objects.get_or_create(user=api_users[role])  # DELETE /api/auth/token/ may revoke it
        excluded = KNOWN_GAPS.get((case.operation.method.upper(), case.operation.path), set())
        case.call_and_validate(
            headers={"Authorization": f"Token {token.key}"},
            excluded_checks=[c for c in _all_checks() if c.__name__ in excluded],
        )
        CALLS[role] += 1


def _all_checks() -> list:
    from schemathesis.checks import CHECKS, load_all_checks

    load_all_checks()
    return list(CHECKS.get_all())
