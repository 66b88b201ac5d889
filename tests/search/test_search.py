"""Semantic product search: worker-encoded queries (cached), HNSW search, re-ranking towards a customer."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.cache import caches
from django.urls import reverse
from django.utils import timezone

from search import selectors, services
from tests.factories import CustomerFactory, ProductFactory, PurchaseFactory, RecommendationFactory, UserFactory, assign

pytestmark = pytest.mark.django_db

SEARCH_URL = reverse("product-search")
API_URL = reverse("api-product-search")


def unit(*weights: float) -> list[float]:
    """Return a unit 384-d vector with ``weights`` in its first dimensions."""
    v = np.zeros(384, dtype=np.float32)
    v[: len(weights)] = weights
    return (v / np.linalg.norm(v)).tolist()


@pytest.fixture(autouse=True)
def empty_search_cache():
    caches["search"].clear()
    yield
    caches["search"].clear()


@pytest.fixture
def encoder(monkeypatch):
    """Stand in for the worker: record the texts sent and answer with a fixed vector (dimension 0)."""
    sent = []

    class FakeResult:
        def __init__(self, text):
            self.text = text

        def get(self, **kwargs):
            return {"vector": unit(1.0), "version": "test-encoder"}

        def forget(self):
            pass

        def revoke(self):
            pass

    def send_task(name, args, **kwargs):
        sent.append((name, args[0], kwargs.get("queue")))
        return FakeResult(args[0])

    monkeypatch.setattr("elmsite.celery.app.send_task", send_task)
    return sent


@pytest.fixture
def catalogue():
    """Three embedded products: one on the query's axis, one between query and customer, one on the customer's."""
    return {
        "query": ProductFactory(description="GARDEN GNOME", embedding=unit(1.0), buyer_count=12),
        "both": ProductFactory(description="BIRD FEEDER", embedding=unit(0.8, 0.6)),
        "customer": ProductFactory(description="TEA TOWEL", embedding=unit(0.0, 1.0)),
        "no-vector": ProductFactory(description="NOT EMBEDDED"),
        "not-merchandise": ProductFactory(description="POSTAGE", embedding=unit(1.0), is_merchandise=False),
    }


@pytest.fixture
def sales_client(client):
    user = UserFactory(username="sam", groups=["sales"])
    client.force_login(user)
    client.user = user
    return client


def test_query_is_encoded_by_a_worker_on_the_search_queue_and_cached(encoder):
    """Send the normalized query to the search queue once; the second lookup comes from the cache."""
    # when
    first = services.query_encode(selectors.normalize_query("  Gifts for a   GARDEN centre "))
    second = services.query_encode("gifts for a garden centre")
    # then
    assert encoder == [("search.gpu_encode_query", "gifts for a garden centre", "search")]
    assert np.allclose(first, second)
    assert first.shape == (384,)


def test_warm_up_sends_one_query_to_the_search_queue(encoder):
    """Ask a search worker to load the encoder before the first user query arrives."""
    # when
    services.search_workers_warm_up()
    # then
    assert encoder == [("search.gpu_encode_query", "warm up", "search")]


def test_search_orders_products_by_similarity_to_the_query(encoder, catalogue, sales_client):
    """List merchandise with a vector, nearest to the query first."""
    html = sales_client.get(SEARCH_URL, {"q": "garden ornaments"}).content.decode()
    assert html.index("GARDEN GNOME") < html.index("BIRD FEEDER") < html.index("TEA TOWEL")
    assert "NOT EMBEDDED" not in html
    assert "POSTAGE" not in html


def test_search_relative_to_a_customer_reranks_towards_their_taste(encoder, catalogue, sales_client, settings):
    """Blend query and customer similarity: a product close to both overtakes one close to the query only."""
    # given a customer whose vector points along dimension 1, who bought the tea towel
    settings.ELM_SEARCH_CUSTOMER_WEIGHT = 0.5
    customer = CustomerFactory(embedding=unit(0.0, 1.0), embedded_at=timezone.now())
    assign(sales_client.user, customer)
    PurchaseFactory(customer=customer, product=catalogue["customer"])
    RecommendationFactory(customer=customer, product=catalogue["both"], rank=3)
    # when
    hits = selectors.product_search(
        user=sales_client.user, vector=np.array(unit(1.0), dtype=np.float32), customer=customer
    )
    html = sales_client.get(SEARCH_URL, {"q": "garden", "customer": customer.pseudonym}).content.decode()
    # then: 0.5*0.8+0.5*0.6 = 0.7 > 0.5*1 + 0 = 0.5 = 0.5*0 + 0.5*1
    assert [h.product.description for h in hits][:2] == ["BIRD FEEDER", "GARDEN GNOME"]
    assert hits[0].score == pytest.approx(0.7, abs=1e-4)
    assert hits[0].recommended_rank == 3
    assert [h.bought_before for h in hits if h.product.description == "TEA TOWEL"] == [True]
    assert html.index("BIRD FEEDER") < html.index("GARDEN GNOME")
    assert "Recommended #3" in html
    assert "Bought before" in html


def test_search_for_a_customer_outside_the_book_is_404(encoder, catalogue, sales_client):
    """Refuse re-ranking towards a customer the sales person may not see."""
    other = CustomerFactory()
    response = sales_client.get(SEARCH_URL, {"q": "garden", "customer": other.pseudonym})
    assert response.status_code == 404
    assert encoder == []


def test_search_page_without_a_query_shows_examples(encoder, sales_client):
    """Offer example queries and send nothing to the worker."""
    html = sales_client.get(SEARCH_URL).content.decode()
    assert "gifts for a garden centre" in html
    assert encoder == []


def test_search_says_clearly_when_no_worker_is_running(sales_client, settings, monkeypatch):
    """Answer 503 with an explanation when no worker encodes the query in time and none answers a ping."""
    # given no worker consumes the search queue (a name no test worker listens on)
    settings.ELM_SEARCH_QUEUE = "search-with-no-worker"
    settings.ELM_SEARCH_ENCODE_TIMEOUT = 0.3
    settings.ELM_SEARCH_PING_TIMEOUT = 0.2
    # when
    response = sales_client.get(SEARCH_URL, {"q": "garden"})
    api = sales_client.get(API_URL, {"q": "garden"})
    # then
    assert response.status_code == 503
    assert "none is running" in response.content.decode()
    assert "-Q search-with-no-worker" in response.content.decode()
    assert api.status_code == 503
    assert api.json()["code"] == "no_worker"


def test_search_says_when_busy_workers_do_not_answer_in_time(sales_client, settings, monkeypatch):
    """Tell busy workers (they answer a ping) apart from no workers."""
    settings.ELM_SEARCH_ENCODE_TIMEOUT = 0.2
    monkeypatch.setattr(services, "_workers_alive", lambda: True)
    response = sales_client.get(SEARCH_URL, {"q": "garden"})
    assert response.status_code == 503
    assert "busy" in response.content.decode()


def test_search_api_returns_ranked_products(encoder, catalogue, api_client):
    """Return stock code, description and similarities, best first, limited by ``limit``."""
    api_client.force_authenticate(UserFactory(groups=["manager"]))
    response = api_client.get(API_URL, {"q": "garden", "limit": 2})
    assert response.status_code == 200
    body = response.json()
    assert [row["description"] for row in body] == ["GARDEN GNOME", "BIRD FEEDER"]
    assert body[0]["query_similarity"] == pytest.approx(1.0, abs=1e-4)
    assert body[0]["customer_similarity"] is None


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "x" * 201}, {"q": "garden", "limit": 0}])
def test_search_api_rejects_bad_parameters(encoder, api_client, params):
    """Answer 400 to a missing, blank or too long query and to a bad limit, without calling a worker."""
    api_client.force_authenticate(UserFactory(groups=["sales"]))
    assert api_client.get(API_URL, params).status_code == 400
    assert encoder == []


def test_search_needs_a_role(client, encoder):
    """Refuse signed-in users without a role."""
    client.force_login(UserFactory())
    assert client.get(SEARCH_URL, {"q": "garden"}).status_code == 403


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_encodes_the_query(celery_worker_process, settings):
    """Round trip through a real Celery worker with the bundled MiniLM encoder."""
    # given a worker that may still be loading the model
    settings.ELM_SEARCH_ENCODE_TIMEOUT = 120
    # when
    vector = services.query_encode("gifts for a garden centre")
    again = services.query_encode("christmas lights")
    # then: unit-length 384-d vectors that differ between different queries
    assert vector.shape == (384,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-3)
    assert float(vector @ again) < 0.9
    # and the worker is known to consume the search queue, and no other queue name passes for it
    settings.ELM_SEARCH_PING_TIMEOUT = 2.0
    assert services._workers_alive()
    settings.ELM_SEARCH_QUEUE = "search-with-no-worker"
    assert not services._workers_alive()
