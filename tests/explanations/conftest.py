"""Fixtures shared by the language-model tests."""

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run on one thread: on 2 shared cores, OpenMP spin-waits make small matmuls ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_and_tokenizer(one_torch_thread):
    """Load the language model once per module."""
    from explanations.ml import lm

    return lm.get_lm()
