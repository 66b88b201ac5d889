"""Explicit API edge cases next to the fuzzer: huge limit/offset, malformed tokens, unknown pseudonyms,
zero and non-finite vectors wherever a vector can enter (search queries, customer vectors, stored scores)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from tests.factories import CustomerFactory, ExplanationFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(api_client):
    user = UserFactory(groups=["manager"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return user


def strict_json(response) -> object:
    """Parse the body as strict JSON (NaN and Infinity are not JSON)."""

    def refuse(constant):
        raise ValueError(f"{constant} in the response body")

    return json.loads(response.content, parse_constant=refuse)


@pytest.mark.parametrize(
    ("query", "status", "count"),
    [
        ("limit=1000000000000000000", 400, None),  # 19 digits: refused, not parsed
        ("limit=999999999999999999", 200, 3),  # the largest parsed limit is capped to the page size
        ("offset=2147483648", 400, None),  # beyond PostgreSQL's OFFSET range
        ("offset=2147483647", 200, 0),
        ("limit=-1", 400, None),
        ("limit=1e3", 400, None),
        ("offset=" + "9" * 5000, 400, None),
    ],
)
def test_huge_or_malformed_limit_and_offset_never_fail(manager, api_client, query, status, count):
    """Answer 400 naming the parameter, or a bounded page; never 500."""
    CustomerFactory.create_batch(3)
    response = api_client.get(f"/api/customers/?{query}")
    assert response.status_code == status
    body = strict_json(response)
    if status == 400:
        assert set(body) <= {"limit", "offset"}
    else:
        assert len(body["results"]) == count


@pytest.mark.parametrize(
    "header",
    ["Token", "Token ", "Token a b", "Token " + "x" * 10_000, "Bearer abc", "Token \u00fc\u00f1\u00ee", "Basic Og=="],
)
def test_malformed_tokens_are_refused_with_401(api_client, header):
    """Refuse a malformed or unknown token with a JSON 401, whatever its shape."""
    response = api_client.get("/api/customers/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert "detail" in strict_json(response)


@pytest.mark.parametrize(
    "pseudonym",
    ["ffffffffffffffff", "0" * 5000, "..", "%2e%2e%2f", "\u00e9\u00e8", "null", "' OR 1=1 --"],
)
@pytest.mark.parametrize("suffix", ["", "recommendations/"])
def test_unknown_pseudonyms_are_a_json_404(manager, api_client, pseudonym, suffix):
    """Answer an unknown or malformed pseudonym with a JSON 404."""
    response = api_client.get(f"/api/customers/{pseudonym}/{suffix}")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in strict_json(response)


@pytest.mark.parametrize(
    "vector",
    [np.zeros(384, dtype=np.float32), np.full(384, np.nan, dtype=np.float32), np.full(384, np.inf, dtype=np.float32)],
    ids=["zero", "nan", "inf"],
)
def test_search_with_a_zero_or_non_finite_query_vector_never_fails(manager, api_client, monkeypatch, vector):
    """Answer a degenerate query vector (from a broken encoder) with valid JSON, never 500."""
    ProductFactory.create_batch(3, embedding=list(np.ones(384) / np.sqrt(384)), is_merchandise=True)
    monkeypatch.setattr("search.services.query_encode", lambda text: vector)
    response = api_client.get("/api/search/products/?q=lantern")
    assert response.status_code in (200, 400, 503)
    strict_json(response)


def test_search_reranked_towards_a_customer_with_a_zero_vector_never_fails(manager, api_client, monkeypatch):
    """Re-rank towards a customer whose vector is all zeros: similarities are null or finite, never NaN."""
    unit = np.ones(384, dtype=np.float32) / np.sqrt(384)
    ProductFactory.create_batch(3, embedding=list(unit), is_merchandise=True)
    customer = CustomerFactory(embedding=list(np.zeros(384)), embedded_at=timezone.now())
    monkeypatch.setattr("search.services.query_encode", lambda text: unit)
    response = api_client.get(f"/api/search/products/?q=lantern&customer={customer.pseudonym}")
    assert response.status_code == 200
    for hit in strict_json(response):
        assert hit["customer_similarity"] is None or np.isfinite(hit["customer_similarity"])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_scores_stored_by_a_batch_are_served_as_valid_json(manager, api_client, value):
    """Serve a recommendation whose stored score, consistency and confidence are not finite as valid JSON nulls."""
    from explanations.models import Explanation
    from recommendations.models import Recommendation

    explanation = ExplanationFactory(status="approved")
    Recommendation.objects.filter(pk=explanation.recommendation_id).update(score=value)
    Explanation.objects.filter(pk=explanation.pk).update(consistency=value, confidence=value)
    pseudonym = explanation.recommendation.customer.pseudonym
    response = api_client.get(f"/api/customers/{pseudonym}/recommendations/")
    assert response.status_code == 200
    (item,) = strict_json(response)
    assert item["score"] is None
    assert (item["explanation"]["consistency"], item["explanation"]["confidence"]) == (None, None)


@pytest.mark.parametrize("username", ["u" * 100_000, "u" * 256])
def test_an_oversize_username_is_refused_without_a_server_error(api_client, username):
    """Refuse sign-in with a username longer than any stored one (axes records attempts in 255 characters)."""
    response = api_client.post("/api/auth/token/", {"username": username, "password": "x"}, format="json")
    assert response.status_code == 400
    assert "non_field_errors" in strict_json(response)
