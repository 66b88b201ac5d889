"""The web process must never import torch, transformers or sentence-transformers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, sys
import django
django.setup()
from django.urls import get_resolver
from django.test import Client
from django.contrib.auth import get_user_model

# Load every URL pattern and view module, as a web worker does on its first requests.
def walk(patterns):
    for p in patterns:
        if hasattr(p, "url_patterns"):
            walk(p.url_patterns)
        else:
            p.callback
walk(get_resolver().url_patterns)
import elmsite.wsgi  # noqa: F401  (the WSGI entry point web servers load)
import jobs.tasks, jobs.services, jobs.registry  # enqueueing work from a view imports these
jobs.registry.all_kinds()

client = Client()
statuses = {}
user = get_user_model().objects.create_superuser("torchfree", "t@example.invalid", "x-long-password-1")
client.force_login(user)
for url in ["/", "/customers/", "/api/customers/", "/api/schema/", "/api/import-runs/", "/admin/", "/healthz",
            "/quality/"]:
    statuses[url] = client.get(url).status_code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "transformers", "sentence_transformers"})
print(json.dumps({"heavy": heavy, "statuses": statuses}))
"""


@pytest.mark.django_db(transaction=True)
def test_web_process_never_imports_torch():
    """Load every view, the WSGI app and the task modules in a fresh process; torch must stay unloaded."""
    # Given a fresh interpreter configured like a web process, on the test database
    from django.db import connection

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "elmsite.settings.test",
           "ELM_DATABASE_NAME": connection.settings_dict["NAME"]}  # fmt: skip
    # When it serves the main pages and API endpoints
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # Then no heavy ML module was imported, and the pages really were served
    assert result["heavy"] == []
    assert all(status < 500 for status in result["statuses"].values()), result["statuses"]
