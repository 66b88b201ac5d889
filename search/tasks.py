"""Worker side of the semantic search: encode a query with the sentence encoder (torch lives only here)."""

from __future__ import annotations

from celery import shared_task

# Not a sharded job: one short, interactive call whose caller waits for the answer. The web
# process never imports torch, so the encoder runs here and only the vector travels back.


@shared_task(name="search.gpu_encode_query", acks_late=False, time_limit=60, soft_time_limit=50)
def gpu_encode_query(text: str) -> dict:
    """Return the L2-normalized embedding of ``text`` and the encoder version that produced it."""
    from recommendations.ml.encoder import encode, encoder_version

    # The encoder is loaded once per worker process (and applies ELM_TORCH_THREADS).
    vector = encode([text])[0]
    return {"vector": [float(x) for x in vector], "version": encoder_version()}
