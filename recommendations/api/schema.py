"""OpenAPI postprocessing: document the answers every API operation can give, whoever wrote it.

DRF answers 401 to a request without valid credentials, 403 when a permission (a role) refuses,
and 404 for a path whose parameters name nothing; drf-spectacular documents an operation's
responses only as its view declares them. This hook adds the missing ones with DRF's error body,
so the schema matches what the server really sends (schemathesis checks it in tests/api/).
"""

from __future__ import annotations

ERROR_BODY = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["detail"],
}
_DESCRIPTIONS = {
    "401": "No valid token or session.",
    "403": "The caller's role may not do this.",
    "404": "Nothing matches the path (or it is not visible to the caller).",
}


def add_error_responses(result: dict, generator, request, public) -> dict:
    """Add 401/403 to operations that need a signed-in user, 404 to those with path parameters."""
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or method == "parameters":
                continue
            responses = operation.setdefault("responses", {})
            codes = []
            security = operation.get("security")
            if security and any(security):  # auth=[] (public) operations have none
                codes += ["401", "403"]
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                codes.append("404")
            for code in codes:
                responses.setdefault(
                    code,
                    {"content": {"application/json": {"schema": ERROR_BODY}}, "description": _DESCRIPTIONS[code]},
                )
    return result
