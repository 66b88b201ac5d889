"""The claim audit: every stored reason checked against the facts it was written from (read-only).

A reason stored with its fact sheet (``Explanation.reason_facts``) is checked against that sheet; an older
one without a sheet gets one rebuilt from its stored evidence and concepts and today's purchase data
(reported as ``rebuilt``). ``manage.py audit_claims`` prints the summary and writes the JSON.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from explanations.models import Explanation
from explanations.services.reasons import claim_flags, reason_sheet


def explanation_sheet(explanation: Explanation) -> tuple[dict, bool]:
    """Return the fact sheet of a stored explanation and whether it had to be rebuilt."""
    if explanation.reason_facts:
        return explanation.reason_facts, False
    # reason_sheet reads only these three fields of the explain job's Facts.
    facts = SimpleNamespace(
        recommendation=explanation.recommendation,
        evidence_rows=explanation.evidence or [],
        concepts=explanation.concepts or [],
    )
    return reason_sheet(facts), True


def claims_audit(*, statuses: list[str] | None = None, limit: int | None = None) -> dict:
    """Check every stored reason (of ``statuses`` when given) and return the summary and the per-reason claims."""
    rows = (
        Explanation.objects.exclude(reason_text="")
        .select_related("recommendation__customer", "recommendation__product")
        .order_by("pk")
    )
    if statuses:
        rows = rows.filter(status__in=statuses)
    if limit:
        rows = rows[:limit]
    reasons, kinds, rebuilt, audited = [], Counter(), 0, 0
    for explanation in rows.iterator(chunk_size=200):
        sheet, was_rebuilt = explanation_sheet(explanation)
        rebuilt += was_rebuilt
        audited += 1
        flags = claim_flags(explanation.reason_text, sheet)
        if not flags:
            continue
        kinds.update(f["code"] for f in flags)
        reasons.append({
            "explanation_id": explanation.pk,
            "recommendation_id": explanation.recommendation_id,
            "status": explanation.status,
            "text": explanation.reason_text,
            "is_template": explanation.reason_text == explanation.template_text,
            "sheet_rebuilt": was_rebuilt,
            "claims": [{"code": f["code"], "text": f["text"], "message": f["message"]} for f in flags],
        })  # fmt: skip
    summary = {
        "audited": audited,
        "with_unsupported_claims": len(reasons),
        "share": round(len(reasons) / audited, 4) if audited else 0.0,
        "by_kind": dict(kinds.most_common()),
        "sheets_rebuilt": rebuilt,
    }
    return {"summary": summary, "reasons": reasons}
