"""A Celery worker for the fault tests, with faults injected from ``ELM_FAULT_INJECT`` (JSON).

Run as ``python -m tests.faults.worker -Q default,gpu -c 1 ...`` (the arguments of ``celery worker``).
Faults are monkeypatched here, in the test tree, so production code carries no fault hooks:

* ``encode_delay``: seconds to sleep in every ``encode`` call (so a kill lands inside a shard);
* ``encode_fail``: ``{"contains": "lantern", "times": N, "counter": PATH}``: ``encode`` raises when a
  text contains the word, the first N times over all processes (counted in the file; no ``times``:
  always);
* ``encoder_load_fail``: ``get_encoder`` raises, as when the weights are missing or corrupt.

The unacked-message sweep runs every second here (kombu's default is every 100 s), so a short
``ELM_VISIBILITY_TIMEOUT`` redelivers the messages of a killed worker within seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time


class InjectedFault(RuntimeError):
    pass


def _take_one(counter: str | None, times: int | None) -> bool:
    """Return True while fewer than ``times`` faults were injected (counted across processes)."""
    if times is None:
        return True
    fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
    with open(counter, "rb") as fh:
        return len(fh.read()) <= times


def install(spec: dict) -> None:
    """Monkeypatch the encoder as ``spec`` says (in this process; forked pool children inherit it)."""
    from recommendations.ml import encoder

    original_encode, original_get = encoder.encode, encoder.get_encoder
    delay = float(spec.get("encode_delay", 0))
    fail = spec.get("encode_fail")

    def encode(texts, **kwargs):
        if delay:
            time.sleep(delay)
        hit = fail and any(fail["contains"] in t.lower() for t in texts)
        if hit and _take_one(fail.get("counter"), fail.get("times")):
            raise InjectedFault(f"injected encoder failure on a text containing {fail['contains']!r}")
        return original_encode(texts, **kwargs)

    def get_encoder():
        raise InjectedFault("injected: the encoder failed to load (weights missing)")

    encoder.encode = encode
    if spec.get("encoder_load_fail"):
        encoder.get_encoder = get_encoder
    else:
        encoder.get_encoder = original_get


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elmsite.settings.test")
    import django

    django.setup()
    from elmsite.celery import app

    install(json.loads(os.environ.get("ELM_FAULT_INJECT") or "{}"))
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    app.worker_main(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    main()
