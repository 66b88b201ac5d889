"""Held-out customers never train an adapter; elm_evaluate writes its tables from its result files."""

import json

import numpy as np
import pytest
from django.test import override_settings

from explanations.services import elm_evaluation, elm_training
from recommendations.models import Customer
from tests.shop import build_shop

pytestmark = pytest.mark.django_db


def test_one_customer_in_twenty_is_held_out_and_the_choice_is_stable():
    keys = [f"{i:016x}" for i in range(4000)]
    held = [k for k in keys if elm_training.is_held_out(k)]
    assert 0.035 < len(held) / len(keys) < 0.065
    assert held == [k for k in keys if elm_training.is_held_out(k)]


def test_held_out_customers_and_products_are_left_out_of_training_and_are_the_ones_evaluated(monkeypatch):
    from recommendations.models import Product
    from recommendations.services import embeddings

    # Given an embedded shop in which two customers and the first product's stock code are held out
    products, customers = build_shop(customers=8)
    embeddings.products_embed(product_ids=list(Product.objects.values_list("id", flat=True)))
    embeddings.customers_embed(customer_ids=[c.pk for c in customers])
    held = {customers[1].pseudonym, customers[4].pseudonym, products[0].stock_code}
    monkeypatch.setattr(elm_training, "is_held_out", lambda key: key in held)
    monkeypatch.setattr(elm_evaluation, "is_held_out", lambda key: key in held)
    vectors = {c.pk: np.asarray(Customer.objects.get(pk=c.pk).embedding, dtype=np.float32) for c in customers}

    # When the training data and the evaluation data are read
    data = elm_training.training_data()
    evaluated = elm_evaluation.held_out_data(customers=10, products=10)

    # Then no held-out customer or product trains, and exactly the held-out ones are evaluated
    trained = np.stack([v for v, _ in data.train + data.validation])
    for c in (customers[1], customers[4]):
        assert not np.isclose(trained @ vectors[c.pk], 1.0, atol=1e-5).any()
        assert np.isclose(evaluated.vectors @ vectors[c.pk], 1.0, atol=1e-5).any()
    assert len(data.train) + len(data.validation) == 6
    assert len(evaluated.references) == 2
    assert evaluated.product_descriptions == [products[0].description]
    assert all(products[0].description.lower() not in t for _, t in data.products)
    # Each evaluated customer's history holds the products it bought
    assert all(evaluated.histories)


def test_docs_render_writes_one_table_per_version_with_goals_and_replaces_its_own_section(tmp_path):
    # Given a results file of one adapter version and a doc with text around the generated section
    (tmp_path / "docs" / "results").mkdir(parents=True)
    result = {
        "version": "elm-abc",
        "preset": "cpu",
        "max_new_tokens": 48,
        "context": {"customers": 64, "generic_text": "Buys home decor."},
        "methods": {
            "greedy": {"customer_top1_among_10": 0.27, "goals": {"customer_top1_among_10": False}},
            "guided-8": {"customer_top1_among_10": 0.55, "goals": {"customer_top1_among_10": True}},
        },
    }
    (tmp_path / "docs" / "results" / "elm_elm-abc.json").write_text(json.dumps(result))
    doc = tmp_path / "docs" / "elm.md"
    doc.write_text("# ELM\n\nintro\n")
    with override_settings(BASE_DIR=tmp_path):
        # When the section is rendered twice
        elm_evaluation.docs_render()
        elm_evaluation.docs_render()
    text = doc.read_text()
    # Then the doc holds it once, with a column per method and the goal marks
    assert text.startswith("# ELM\n\nintro\n")
    assert text.count(elm_evaluation.DOC_BEGIN) == 1
    assert "| metric | goal | `greedy` | `guided-8` |" in text
    assert "| true customer first among 10 (chance 0.10) | >= 0.5 | 0.270 ✗ | 0.550 ✓ |" in text


def test_train_elm_overrides_are_typed_preset_fields_and_unknown_ones_are_refused():
    from django.core.management.base import CommandError

    from explanations.management.commands.train_elm import parse_overrides

    assert parse_overrides(["soft_tokens=8", "lr=0.003", "target_sentences=none"]) == {
        "soft_tokens": 8,
        "lr": 0.003,
        "target_sentences": None,
    }
    with pytest.raises(CommandError, match="unknown preset field"):
        parse_overrides(["tokens=8"])
