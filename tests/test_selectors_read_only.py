"""Selectors read: no model write, no raw SQL write, no task sent, in any app's ``selectors.py``.

A static check of the source, so a write in a branch no test reaches is caught too. Memoizing a
read in the cache (a cached getter) is allowed; changing data or queueing work belongs in services.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "core", "dashboard", "explanations", "jobs", "outcomes", "preferences", "recommendations",
        "sales", "search")  # fmt: skip
# Model and queryset writes, and ways of sending a Celery task.
WRITE_METHODS = {"save", "create", "get_or_create", "update_or_create", "bulk_create", "bulk_update", "delete"}
QUERYSET_WRITES = {"update"}  # also a dict method: counted only on a queryset (see _is_queryset)
TASK_SENDS = {"apply_async", "delay", "send_task", "signature", "s", "si"}
WRITE_FUNCTIONS = {"audit_record", "call_command"}
SQL_WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|TRUNCATE|CREATE\s+TABLE|ALTER\s+TABLE)\b")
# Known offenders being fixed on another branch: strict, so the fix shows up here as a pass to remove.
PENDING: dict[str, str] = {}  # module -> why it still writes (none now)


def _is_queryset(node: ast.expr) -> bool:
    """Whether ``node`` looks like a queryset: ``X.objects...``, or a ``filter``/``exclude``/``all`` call."""
    text = ast.unparse(node)
    return ".objects" in text or bool(re.search(r"\.(filter|exclude|all|select_for_update)\(", text))


def writes_in(source: str) -> list[str]:
    """Return 'line: what' for every write a selectors module makes."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                receiver = ast.unparse(func.value)
                model_write = func.attr in WRITE_METHODS and receiver != "cache"
                if model_write or (func.attr in QUERYSET_WRITES and _is_queryset(func.value)):
                    found.append(f"{node.lineno}: {receiver}.{func.attr}()")
                elif func.attr in TASK_SENDS:
                    found.append(f"{node.lineno}: {receiver}.{func.attr}() sends a task")
            elif isinstance(func, ast.Name) and func.id in WRITE_FUNCTIONS:
                found.append(f"{node.lineno}: {func.id}()")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_WRITE.search(node.value):
            found.append(f"{node.lineno}: SQL write {SQL_WRITE.search(node.value).group(0)!r}")
    return found


def _modules() -> list:
    params = []
    for app in APPS:
        path = ROOT / app / "selectors.py"
        if not path.exists():
            continue
        name = f"{app}/selectors.py"
        marks = [pytest.mark.xfail(strict=True, reason=PENDING[name])] if name in PENDING else []
        params.append(pytest.param(path, id=name, marks=marks))
    return params


@pytest.mark.parametrize("path", _modules())
def test_selectors_never_write_and_never_send_tasks(path):
    assert writes_in(path.read_text()) == []


def test_the_check_finds_each_kind_of_write():
    """Keep the check honest: each kind of write it looks for is found, and plain reads are not."""
    source = """
def reads(qs, d, cache):
    d.update(a=1)
    cache.set("k", 1)
    cache.delete("k")
    return list(qs.filter(a=1).values("a"))

def writes(obj, Job, task, cursor):
    obj.save()
    Job.objects.filter(pk=1).update(status="x")
    Job.objects.create(kind="x")
    task.apply_async(args=[1])
    audit_record(actor=None)
    cursor.execute("UPDATE jobs_job SET status = 'x'")
    cursor.execute("SELECT 1 FROM jobs_job FOR UPDATE")
"""
    found = writes_in(source)
    assert [line.split(":")[0] for line in found] == ["9", "10", "11", "12", "13", "14"]
