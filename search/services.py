"""Worker calls of the semantic search: encode a query on a search worker, warm the workers up.

The web process never imports torch, so the query is encoded by a worker (``search.gpu_encode_query``
on the ``ELM_SEARCH_QUEUE`` queue, "search": its own, so that a query never waits behind long model
jobs on the gpu queue) and the vector is cached by query text: a repeated query costs no worker
call. Sending, waiting for and revoking tasks happens here; ``search.selectors`` only reads.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
from django.conf import settings
from django.core.cache import caches
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

ENCODE_TASK = "search.gpu_encode_query"


class SearchUnavailable(Exception):
    """The query could not be encoded: no worker is running, or none answered in time."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code  # "no_worker" | "timeout"
        self.message = message


def _cache_key(text: str) -> str:
    # Products are embedded by the configured encoder; a different encoder needs different vectors.
    digest = hashlib.sha256(f"{settings.ELM_ENCODER}\x1f{text}".encode()).hexdigest()
    return f"query-vector:{digest}"


def _workers_alive() -> bool:
    """Return whether a running worker consumes the search queue (it may still be too busy to answer)."""
    from celery import current_app as app  # the project app (elmsite/__init__.py sets it as the default)

    try:
        replies = app.control.inspect(timeout=settings.ELM_SEARCH_PING_TIMEOUT).active_queues() or {}
        return any(q.get("name") == settings.ELM_SEARCH_QUEUE for queues in replies.values() for q in queues)
    except Exception:  # the broker itself is unreachable: no worker can answer either
        logger.exception("search: asking the workers for their queues failed")
        return False


def search_workers_warm_up() -> None:
    """Have a search worker load the encoder now, so that the first real query does not wait for it."""
    from celery import current_app as app  # the project app (elmsite/__init__.py sets it as the default)

    # Loading the model takes a few seconds, longer than a user's query is given (ELM_SEARCH_ENCODE_TIMEOUT).
    app.send_task(ENCODE_TASK, args=["warm up"], queue=settings.ELM_SEARCH_QUEUE, expires=300)


def query_encode(text: str) -> np.ndarray:
    """Return the embedding of a normalized query: from the cache, else from a worker (and cache it).

    Raises SearchUnavailable when no worker answers within ELM_SEARCH_ENCODE_TIMEOUT seconds.
    """
    cache = caches[settings.ELM_SEARCH_CACHE]
    key = _cache_key(text)
    cached = cache.get(key)
    if cached is not None:
        return np.frombuffer(cached, dtype=np.float32)
    from celery import current_app as app  # the project app (elmsite/__init__.py sets it as the default)
    from celery.exceptions import TimeoutError as CeleryTimeoutError

    timeout = settings.ELM_SEARCH_ENCODE_TIMEOUT
    # expires: a query nobody waits for any more is dropped rather than encoded by a late worker.
    result = app.send_task(ENCODE_TASK, args=[text], queue=settings.ELM_SEARCH_QUEUE, expires=timeout + 5)
    try:
        payload = result.get(timeout=timeout, interval=0.05, propagate=True)
    except CeleryTimeoutError:
        result.revoke()
        if _workers_alive():
            raise SearchUnavailable(
                "timeout", _("The search workers are busy and did not answer in time. Please try again shortly.")
            ) from None
        raise SearchUnavailable(
            "no_worker",
            _(
                "Semantic search needs a background worker and none is running. "
                "Ask an administrator to start one (celery -A elmsite worker -Q %(queue)s)."
            )
            % {"queue": settings.ELM_SEARCH_QUEUE},
        ) from None
    finally:
        # The vector is cached here; the result row in the database is no longer needed.
        result.forget()
    vector = np.asarray(payload["vector"], dtype=np.float32)
    cache.set(key, vector.tobytes(), timeout=settings.ELM_SEARCH_CACHE_SECONDS)
    return vector
