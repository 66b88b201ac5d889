"""Who may do what: the expected HTTP status of every URL for every role.

``tests/security/test_permission_matrix.py`` walks every URL pattern of the project and fails for a
URL name without a row here (and for a row whose URL no longer exists), then requests each URL as
each role and compares the status with the row.

A row::

    "url-name": {
        "kwargs": "customer",                 # optional: a builder in KWARGS for the URL's arguments
        "GET": {"anonymous": 302, "sales": 200, "reviewer": 200, "manager": 200, "admin": 200},
        "POST": {...},                        # optional: for write endpoints (and DELETE, PUT, PATCH)
        "data": {...},                        # optional: the POST body (form-encoded; "json": True for JSON)
    }

A status may be a tuple of acceptable statuses. Helpers ``page``, ``api`` and ``everyone`` build
the common rows. Every role request runs inside a savepoint that is rolled back, so a POST by one
role does not change what the next role sees.

Roles: anonymous (not signed in); sales (group "sales", with a book of customers); reviewer;
manager; admin (a superuser). The users are made exactly as ``manage.py demo`` makes them
(``core.demo_users``): the reviewer and the manager are staff, so every cell also shows that the
staff flag grants nothing a role does not (the rejected-rows CSV stays 403 to the staff reviewer).

Rows whose kwargs involve a customer are also requested by the sales user with the customer of
another sales user's book, and must answer 404 there (no pseudonym guessing across books).
"""

from __future__ import annotations

from collections.abc import Callable

ROLES = ("anonymous", "sales", "reviewer", "manager", "admin")
# Django login_required redirects anonymous visitors to the sign-in page; DRF answers 401.
LOGIN = 302
UNAUTHENTICATED = 401


def statuses(anonymous, sales, reviewer, manager, admin) -> dict:
    return {"anonymous": anonymous, "sales": sales, "reviewer": reviewer, "manager": manager, "admin": admin}


def everyone(status) -> dict:
    """Every role, anonymous included, gets ``status``."""
    return statuses(status, status, status, status, status)


def page(*, sales=200, reviewer=200, manager=200, admin=200, anonymous=LOGIN) -> dict:
    """A server-rendered page behind sign-in: anonymous visitors are sent to the sign-in page."""
    return statuses(anonymous, sales, reviewer, manager, admin)


def api(*, sales=200, reviewer=200, manager=200, admin=200, anonymous=UNAUTHENTICATED) -> dict:
    """An API endpoint: anonymous callers get 401."""
    return statuses(anonymous, sales, reviewer, manager, admin)


def manager_page(**overrides) -> dict:
    """A page for managers and admins only."""
    return page(**{"sales": 403, "reviewer": 403, **overrides})


def reviewer_page(**overrides) -> dict:
    """A page for reviewers (and managers and admins, who hold every reading right)."""
    return page(**{"sales": 403, **overrides})


# --------------------------------------------------------------------------- URL arguments


def _job():
    from jobs.models import Job

    return Job.objects.create(kind="recommend", status=Job.Status.FAILED, error="boom")


def _pending_description(customer) -> dict:
    from django.utils import timezone

    from explanations.models import CustomerDescription

    CustomerDescription.objects.get_or_create(
        customer=customer,
        defaults={"text": "Buys candles.", "reference_text": "Buys candles.", "method": "template",
                  "generated_at": timezone.now()},
    )  # fmt: skip
    return {"pseudonym": customer.pseudonym, "action": "approve"}


# A builder takes the test world and a book (the customer, its recommendation and explanation: the
# sales user's own book, or for the cross-book check another sales user's) and returns the kwargs.

KWARGS: dict[str, Callable] = {
    "customer": lambda world, book: {"pseudonym": book.customer.pseudonym},
    "recommendation": lambda world, book: {
        "pseudonym": book.customer.pseudonym,
        "recommendation_id": book.recommendation.pk,
    },
    "import_run_with_rejects": lambda world, book: {"import_run_id": world.import_run.pk},
    "customer_description": lambda world, book: _pending_description(book.customer),
    "job": lambda world, book: {"job_id": _job().pk},
    "explanation": lambda world, book: {"explanation_id": book.explanation.pk},
    "explanation_approve": lambda world, book: {"explanation_id": book.explanation.pk, "action": "approve"},
}
# Builders whose kwargs name a customer: requested across books too (sales must get 404).
CUSTOMER_KWARGS = {"customer", "recommendation", "customer_description"}
# URLs that take a customer's pseudonym as a query parameter: url name -> (parameter, other parameters).
# The sales user asking with another book's customer must get 404 (checked before any other work).
CUSTOMER_QUERY_PARAMS: dict[str, tuple[str, dict]] = {
    "product-search": ("customer", {}),
    "api-product-search": ("customer", {"q": "candle"}),
}

# --------------------------------------------------------------------------- the matrix

MATRIX: dict[str, dict] = {
    # core
    "home": {"GET": everyone(302)},
    "login": {
        # Signed-in users are sent on; a POST without credentials shows the form again.
        "GET": statuses(200, 302, 302, 302, 302),
        "POST": statuses(200, 302, 302, 302, 302),
    },
    "logout": {"GET": everyone(405), "POST": everyone(302)},
    "healthz": {"GET": everyone(200), "POST": everyone(405)},
    "set_language": {"POST": everyone(302), "data": {"language": "en", "next": "/"}},
    # API schema and docs describe endpoints, not data: public.
    "api-schema": {"GET": everyone(200)},
    "api-docs": {"GET": everyone(200)},
    # customers: pages
    "customer-list": {"GET": page()},
    # dashboard and jobs: managers read, admins start (POST + CSRF)
    "dashboard": {"GET": manager_page()},
    # model quality (evaluation, calibration, segments): managers and admins read
    "quality": {"GET": manager_page()},
    "job-list": {"GET": manager_page()},
    "job-detail": {"kwargs": "job", "GET": manager_page()},
    "job-start": {"GET": everyone(405), "POST": statuses(LOGIN, 403, 403, 403, 302), "data": {"kind": "recommend"}},
    "job-retry": {"kwargs": "job", "GET": everyone(405), "POST": statuses(LOGIN, 403, 403, 403, 302)},
    "job-resume": {"kwargs": "job", "GET": everyone(405), "POST": statuses(LOGIN, 403, 403, 403, 302)},
    "job-restart": {"kwargs": "job", "GET": everyone(405), "POST": statuses(LOGIN, 403, 403, 403, 302)},
    "job-nightly": {"GET": everyone(405), "POST": statuses(LOGIN, 403, 403, 403, 302)},
    "customer-detail": {"kwargs": "customer", "GET": page()},
    # customers: API
    "api-auth-token": {
        # Obtaining a token is open (throttled, axes-guarded); revoking needs a signed-in caller.
        "GET": statuses(405, 405, 405, 405, 405),
        "POST": everyone(400),
        "DELETE": api(sales=204, reviewer=204, manager=204, admin=204),
    },
    "api-customer-list": {"GET": api()},
    "api-customer-detail": {"kwargs": "customer", "GET": api()},
    "api-customer-recommendations": {"kwargs": "customer", "GET": api()},
    # outcomes (sales): recording is for sales people (admins hold every role); the rest read
    "outcome-create": {
        "kwargs": "recommendation",
        "GET": everyone(405),
        "POST": page(sales=302, reviewer=403, manager=403, admin=302),
        "data": {"kind": "pitched"},
    },
    "api-recommendation-outcomes": {
        "kwargs": "recommendation",
        "GET": api(),
        "POST": api(sales=201, reviewer=403, manager=403, admin=201),
        "data": {"kind": "pitched", "json": True},
    },
    # semantic search: without a query the page shows examples; the API needs q
    "product-search": {"GET": page()},
    "api-product-search": {"GET": api(sales=400, reviewer=400, manager=400, admin=400)},
    # imports
    "api-import-run-list": {"GET": api()},
    "api-import-run-rejected-rows": {"kwargs": "import_run_with_rejects", "GET": api(sales=403, reviewer=403)},
    # review (reviewers and admins; managers read KPIs, not the queue). The matrix's explanation is
    # "generated" (not yet queued), so transitions on it are refused: the page redirects with a
    # message, the API answers 409.
    "review-queue": {"GET": page(sales=403, manager=403)},
    "review-detail": {"kwargs": "explanation", "GET": page(sales=403, manager=403)},
    "review-action": {
        "kwargs": "explanation",
        "GET": page(sales=403, reviewer=405, manager=403, admin=405),
        "POST": page(sales=403, reviewer=302, manager=403, admin=302),
        "data": {"action": "approve"},
    },
    "review-edit": {
        "kwargs": "explanation",
        "GET": page(sales=403, reviewer=405, manager=403, admin=405),
        "POST": page(sales=403, reviewer=302, manager=403, admin=302),
        "data": {"text": "A new reason text."},
    },
    "review-bulk": {
        "GET": page(sales=403, reviewer=405, manager=403, admin=405),
        "POST": page(sales=403, reviewer=302, manager=403, admin=302),
        "data": {"action": "reject", "comment": "matrix"},
    },
    # customer descriptions (the customer's vector in words): reviewers and admins approve or reject
    "customer-description-action": {
        "kwargs": "customer_description",
        "GET": page(sales=403, reviewer=405, manager=403, admin=405),
        "POST": page(sales=403, reviewer=302, manager=403, admin=302),
    },
    "api-review-queue": {"GET": api(sales=403, manager=403)},
    "api-review-detail": {"kwargs": "explanation", "GET": api(sales=403, manager=403)},
    "api-review-action": {
        "kwargs": "explanation_approve",
        "GET": api(sales=403, reviewer=405, manager=403, admin=405),
        "POST": api(sales=403, reviewer=409, manager=403, admin=409),
        "data": {"comment": ""},
        "json": True,
    },
    "api-review-edit": {
        "kwargs": "explanation",
        "GET": api(sales=403, reviewer=405, manager=403, admin=405),
        "POST": api(sales=403, reviewer=409, manager=403, admin=409),
        "data": {"text": "A new reason text."},
        "json": True,
    },
    "api-review-bulk": {
        "GET": api(sales=403, reviewer=405, manager=403, admin=405),
        "POST": api(sales=403, reviewer=200, manager=403, admin=200),
        "data": {"action": "approve", "ids": [1]},
        "json": True,
    },
}

# Admin views are not required by the walker (admin/ internals are Django's), but these are ours.
# Staff reviewers and managers reach the admin with their group's permissions only (403 elsewhere);
# sales users are not staff (sent to the admin's sign-in page).
ADMIN_ROWS: dict[str, dict] = {
    "admin:index": {"GET": page(sales=302)},
    "admin:accounts_accountassignment_changelist": {"GET": page(sales=302, reviewer=403, manager=403)},
    "admin:accounts_accountassignment_assign_region": {"GET": page(sales=302, reviewer=403, manager=403)},
    "admin:core_auditevent_changelist": {"GET": page(sales=302, reviewer=403, manager=403)},
    # reviewers clear products held back for personal data; managers read import reports and jobs
    "admin:recommendations_product_changelist": {"GET": page(sales=302, manager=200)},
    "admin:recommendations_importrun_changelist": {"GET": page(sales=302, reviewer=403)},
    "admin:jobs_job_changelist": {"GET": page(sales=302, reviewer=403)},
    "admin:recommendations_customertombstone_changelist": {"GET": page(sales=302, reviewer=403, manager=403)},
}

# URL names the walker does not ask for, with the reason.
NOT_REQUESTED: dict[str, str] = {}
