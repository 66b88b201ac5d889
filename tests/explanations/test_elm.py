"""ELM adapter (real LM and encoder, tiny inputs) and the reference profile texts it is trained on."""

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from explanations.ml import elm, lm, profiles
from explanations.ml.profiles import CustomerFacts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def unit_vectors(n: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def small_artifact(model, *, k: int = 4, hidden: int = 32, seed: int = 0) -> elm.AdapterArtifact:
    adapter = elm.new_adapter(
        in_dim=384, lm_dim=model.get_input_embeddings().weight.shape[1], k=k, hidden=hidden,
        target_norm=lm.mean_token_norm(model), seed=seed,
    )  # fmt: skip
    config = {"format_version": elm.FORMAT_VERSION, "in_dim": 384, "lm_dim": adapter.lm_dim, "k": k}
    config |= {"hidden": hidden, "target_norm": float(adapter.target_norm), "lm_id": lm.lm_id()}
    return elm.AdapterArtifact(adapter=adapter, config=config)


# --------------------------------------------------------------------------- adapter


def test_soft_tokens_have_the_lm_token_embedding_norm(model_and_tokenizer):
    """Scale every soft token to the mean norm of the LM's token embeddings."""
    model, _ = model_and_tokenizer
    # Given an untrained adapter
    artifact = small_artifact(model)
    # When it maps three embeddings
    soft = artifact.soft_tokens(unit_vectors(3))
    # Then it returns k tokens of LM width, each at the mean token-embedding norm (~3.2 for SmolLM2)
    table = model.get_input_embeddings().weight
    assert soft.shape == (3, 4, table.shape[1])
    expected = float(table.norm(dim=-1).mean())
    assert np.allclose(soft.norm(dim=-1).numpy(), expected, rtol=1e-4)
    assert 1.0 < expected < 10.0


def test_artifact_save_and_load_round_trip_gives_identical_outputs(model_and_tokenizer, tmp_path):
    """Reload a saved adapter bit-for-bit, with its config, metrics and a content version."""
    import torch

    model, _ = model_and_tokenizer
    # Given an adapter with metrics
    artifact = small_artifact(model, seed=7)
    artifact.metrics = {"stages": [{"task": "customer", "steps": 3}]}
    x = unit_vectors(5, seed=1)
    # When saved as the current version and loaded back
    folder = elm.save_artifact(artifact, tmp_path / "adapters")
    loaded = elm.load_current(tmp_path / "adapters")
    # Then outputs, config and metrics are identical, and the folder is named by the version
    assert torch.equal(loaded.soft_tokens(x), artifact.soft_tokens(x))
    assert folder.name == loaded.version == artifact.version
    assert loaded.version.startswith("elm-")
    assert loaded.config["k"] == 4
    assert loaded.metrics == artifact.metrics
    assert {p.name for p in folder.iterdir()} == {"adapter.safetensors", "config.json", "metrics.json"}
    # And a different adapter gets a different version
    assert small_artifact(model, seed=8).version != artifact.version


def test_loading_without_a_current_version_fails_clearly(tmp_path):
    """Say so when no adapter was trained yet."""
    with pytest.raises(FileNotFoundError, match="CURRENT"):
        elm.load_current(tmp_path)


@pytest.mark.slow
def test_a_few_training_steps_reduce_the_training_loss(model_and_tokenizer):
    """Lower the teacher-forced loss on 16 pairs after a few steps, the LM staying frozen."""
    model, _ = model_and_tokenizer
    # Given 16 vectors from two clusters, each cluster with its own short text
    centers = unit_vectors(2, seed=3)
    noise = unit_vectors(16, seed=4) * 0.2
    vectors = np.stack([centers[i % 2] + noise[i] for i in range(16)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = ["Buys candles.", "Buys lunch bags."]
    pairs = [(vectors[i], texts[i % 2]) for i in range(16)]
    frozen = {name: p.detach().clone() for name, p in list(model.named_parameters())[:3]}
    # When training for 4 steps and scoring the same pairs before and after
    artifact = elm.train_adapter(
        pairs, val_pairs=pairs, epochs=2, max_steps=4, lr=1e-2, batch_size=8, hidden=64,
        time_budget_s=None, lm=model_and_tokenizer,
    )  # fmt: skip
    # Then the loss went down and the LM did not change
    stage = artifact.metrics["stages"][-1]
    assert stage["steps"] == 4
    assert stage["val_loss_after"] < stage["val_loss_before"]
    for name, p in list(model.named_parameters())[:3]:
        assert p.equal(frozen[name])
    assert artifact.config["lm_id"] == lm.lm_id()
    assert artifact.config["hyper_parameters"]["lr"] == 1e-2


def test_teacher_forced_loss_with_cached_prefix_equals_the_full_sequence_loss(model_and_tokenizer):
    """Compute the same loss with the cached prompt prefix as over the whole sequence."""
    import torch

    model, tokenizer = model_and_tokenizer
    trainer = elm.Trainer(model, tokenizer, "customer")
    soft = small_artifact(model).soft_tokens(unit_vectors(2))
    targets = trainer.encode_targets(["Buys bags.", "Mainly buys candles and home decor."], 48)
    with torch.no_grad():
        cached, n_tokens, _ = trainer.loss(soft, targets)
        total = 0.0
        for row, target in enumerate(targets):
            prompt = lm.prompt_embeddings(model, tokenizer, elm.task_messages("customer"), soft[row])
            full = torch.cat([prompt, model.get_input_embeddings()(torch.tensor(target))])
            logits = model(inputs_embeds=full[None]).logits[0, -len(target) - 1 : -1]
            total += float(torch.nn.functional.cross_entropy(logits, torch.tensor(target), reduction="sum"))
    assert n_tokens == sum(len(t) for t in targets)
    assert float(cached) == pytest.approx(total / n_tokens, rel=1e-4)


def test_warm_start_pulls_soft_tokens_towards_description_tokens(model_and_tokenizer):
    """Lower the soft-token/description-token distance in the LM-free warm-start stage."""
    model, _ = model_and_tokenizer
    artifact = small_artifact(model, hidden=64)
    texts = ["white hanging heart t-light holder", "jumbo bag red retrospot", "regency cakestand 3 tier"] * 4
    metrics = elm.warm_start(
        artifact.adapter, unit_vectors(12, seed=5), texts, lm=model_and_tokenizer, epochs=40, batch_size=12,
        time_budget_s=None,
    )  # fmt: skip
    assert metrics["loss_last_epoch"] < 0.5 * metrics["loss_first_epoch"]


def test_decode_generates_one_text_per_embedding_with_and_without_evidence(model_and_tokenizer):
    """Decode purely from soft tokens, and grounded with per-customer facts."""
    model, _ = model_and_tokenizer
    artifact = small_artifact(model)
    x = unit_vectors(2, seed=2)
    pure = elm.decode(x, max_new_tokens=5, artifact=artifact, lm=model_and_tokenizer)
    grounded = elm.decode(
        x, evidence_prompt=["top products: candles.", None], max_new_tokens=5, artifact=artifact, lm=model_and_tokenizer
    )
    assert len(pure) == len(grounded) == 2
    assert all(isinstance(t, str) for t in pure + grounded)
    with pytest.raises(ValueError, match="one entry per embedding"):
        elm.decode(x, evidence_prompt=["only one"], artifact=artifact, lm=model_and_tokenizer)


def test_task_prompt_puts_evidence_before_the_unchanged_soft_token_context():
    """Keep the text around the soft tokens as in training when facts are added."""
    pure = elm.task_messages("customer")[1]["content"]
    grounded = elm.task_messages("customer", "3 orders a month")[1]["content"]
    assert pure.count(lm.SOFT_PLACEHOLDER) == 1
    assert grounded.startswith("Known facts: 3 orders a month\n")
    assert grounded.count(lm.SOFT_PLACEHOLDER) == 1
    assert grounded.endswith(pure[pure.index("Customer profile vector") :])


# --------------------------------------------------------------------------- evaluation helpers


def test_semantic_consistency_is_the_cosine_of_encoded_text_and_embedding():
    """Score 1 for a text against its own (rescaled) encoding and less against another text's."""
    from recommendations.ml.encoder import encode

    # Given two texts and their own encodings
    texts = ["red lunch bag with white spots", "scented candle in a glass jar"]
    own = encode(texts)
    # When scoring against their own vectors (scaled: the embedding is re-normalized) and swapped ones
    matched = elm.semantic_consistency(texts, own * 3.0)
    swapped = elm.semantic_consistency(texts, own[::-1])
    # Then own = 1, swapped = the cosine between the two encodings
    assert np.allclose(matched, 1.0, atol=1e-5)
    assert np.allclose(swapped, float(own[0] @ own[1]), atol=1e-5)
    assert (swapped < 0.9).all()


def test_interpolation_points_run_from_a_to_b_on_the_unit_sphere():
    """Start at a, end at b, stay unit-length in between."""
    a, b = unit_vectors(2, seed=9)
    points = elm.interpolation_points(a, b, 5)
    assert np.allclose(points[0], a, atol=1e-6)
    assert np.allclose(points[-1], b, atol=1e-6)
    assert np.allclose(np.linalg.norm(points, axis=1), 1.0, atol=1e-6)
    assert np.allclose(elm.centroid(np.stack([a, a])), a, atol=1e-6)


# --------------------------------------------------------------------------- profile texts


FACTS = CustomerFacts(
    key="c0123456789ab",
    top_products=[
        ("JUMBO BAG RED RETROSPOT", 12),
        ("LUNCH BAG  BLACK SKULL.", 9),
        ("PACK OF 72 RETROSPOT CAKE CASES", 7),
    ],
    top_categories=[("bags", 40), ("baking supplies", 12)],
    orders_per_month=2.3,
    mean_basket_items=183.0,
    mean_basket_value=312.4,
    seasonal_share=0.36,
    price_level=0.7,
    region="British Isles",
    recency_days=12,
    n_orders=27,
)


def test_customer_profile_text_is_deterministic_and_mentions_every_fact():
    """Write the same paragraph every time, naming the facts it was given."""
    text = profiles.customer_profile_text(FACTS)
    assert text == profiles.customer_profile_text(FACTS)
    for fragment in (
        "jumbo bag red retrospot",
        "lunch bag black skull",
        "bags and baking supplies",
        "2.3 orders a month",
        "180 items",
        "£310",
        "budget prices",
        "36% of orders",
        "October–December",
        "the British Isles",
        "12 days",
        "frequent",
    ):
        assert fragment in text, fragment
    # The product content comes first: a target cut to one sentence keeps what the vector encodes.
    assert "retrospot" in profiles.first_sentences(text, 1)
    assert "orders a month" not in profiles.first_sentences(text, 1)


def test_profile_phrasing_varies_between_customers_but_not_between_runs():
    """Pick phrasings from the customer key."""
    from dataclasses import replace

    variants = {profiles.customer_profile_text(replace(FACTS, key=f"c{i}")).split(",")[0] for i in range(20)}
    assert len(variants) > 1


def test_product_profile_text_is_a_short_sentence_with_its_category():
    """Turn a raw description into a clean sentence."""
    assert profiles.product_profile_text("  WHITE HANGING HEART T-LIGHT HOLDER ") == (
        "A white hanging heart t-light holder, from the candles range."
    )
    assert profiles.product_profile_text("ASSORTED COLOUR BIRD ORNAMENT").startswith("An assorted colour bird ornament")


def lines_frame() -> pd.DataFrame:
    rows = [
        # customer a: two orders in November and one in March; a return of the mug
        ("a", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, 2.55, datetime(2011, 11, 1, 10), "British Isles"),
        ("a", "22423", "REGENCY CAKESTAND 3 TIER", 2, 12.75, datetime(2011, 11, 1, 10), "British Isles"),
        ("a", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 12, 2.55, datetime(2011, 11, 20, 9), "British Isles"),
        ("a", "37370", "RETRO COFFEE MUGS ASSORTED", 4, 1.25, datetime(2011, 3, 5, 9), "British Isles"),
        ("a", "37370", "RETRO COFFEE MUGS ASSORTED", -4, 1.25, datetime(2011, 3, 6, 9), "British Isles"),
        # customer b: one order in June
        ("b", "85099B", "JUMBO BAG RED RETROSPOT", 10, 2.08, datetime(2011, 6, 1, 12), "Western Europe"),
        ("b", "22423", "REGENCY CAKESTAND 3 TIER", 1, 12.75, datetime(2011, 6, 1, 12), "Western Europe"),
    ]
    return pd.DataFrame(rows, columns=list(profiles.LINE_COLUMNS))


def test_facts_from_lines_computes_orders_baskets_season_price_and_recency():
    """Derive each customer's facts from plain purchase lines."""
    facts = profiles.facts_from_lines(lines_frame(), as_of=datetime(2011, 12, 1))
    a, b = facts["a"], facts["b"]
    assert a.n_orders == 3 and b.n_orders == 1
    assert a.top_products[0] == ("WHITE HANGING HEART T-LIGHT HOLDER", 2)
    assert a.mean_basket_items == pytest.approx((8 + 12 + 4) / 3)
    assert a.mean_basket_value == pytest.approx((6 * 2.55 + 2 * 12.75 + 12 * 2.55 + 4 * 1.25) / 3)
    assert a.seasonal_share == pytest.approx(2 / 3)
    assert b.seasonal_share == 0.0
    assert a.recency_days == 10 and b.recency_days == 182  # whole days
    assert a.region == "British Isles"
    # Catalogue median = median of per-product medians (1.25, 2.08, 2.55, 12.75) = 2.315
    assert b.price_level == pytest.approx(((2.08 + 12.75) / 2) / 2.315)
    # Active span: from the first order to the end of the data (b: 6 months, one order)
    assert b.orders_per_month == pytest.approx(1 / (182 / (365.25 / 12)))
    assert dict(a.top_categories)["candles"] == 2
