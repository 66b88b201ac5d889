"""Every web form rejects oversize and malformed input with a message, and every POST needs a CSRF token.

The forms are discovered, not listed: the test crawls the site's pages as an admin (who holds every
role) from each URL pattern without arguments and the links it finds, parses every <form method=post>,
and sends each one (a) without a CSRF token, (b) with each text field 100,000 characters long, and
(c) with malformed values (choices that are not offered, numbers that are not numbers, ids of nothing).
New forms are covered as soon as a page links to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlparse

import pytest
from django.test import Client
from django.urls import get_resolver
from django.urls.resolvers import URLPattern, URLResolver

from tests.factories import ExplanationFactory, RecommendationFactory, UserFactory, assign

pytestmark = pytest.mark.django_db

OVERSIZE = "x" * 100_000
SKIP_PREFIXES = ("/admin/", "/api/", "/static/", "/logout/")  # Django's admin is Django's; the API is fuzzed
MAX_PAGES = 80
# An error shown to the user: a form's error list, a field marked invalid, an error message or alert.
ERROR_MARKERS = re.compile(r'errorlist|aria-invalid="true"|message--error|role="alert"|class="[^"]*\berror\b', re.I)
# Forms whose POST changes nothing a user entered, with why they may accept anything (documented).
NO_INPUT_FORMS = {
    "/i18n/setlang/": "Django's set_language ignores an unknown language and redirects back",
}


@dataclass
class Form:
    page: str
    action: str
    fields: dict[str, str] = field(default_factory=dict)  # name -> value as rendered
    kinds: dict[str, str] = field(default_factory=dict)  # name -> input type / textarea / select
    options: dict[str, list[str]] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (re.sub(r"\d+", "N", self.action), tuple(sorted(self.fields)))

    @property
    def editable(self) -> list[str]:
        return [n for n, k in self.kinds.items() if k not in ("hidden", "submit", "button", "checkbox", "radio")]


class _Parser(HTMLParser):
    def __init__(self, page: str):
        super().__init__()
        self.page = page
        self.forms: list[Form] = []
        self.links: set[str] = set()
        self._form: Form | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.add(urljoin(self.page, a["href"]))
        elif tag == "form" and (a.get("method") or "get").lower() == "post":
            self._form = Form(self.page, urljoin(self.page, a.get("action") or self.page))
        elif self._form is not None and tag in ("input", "textarea", "select", "button") and a.get("name"):
            kind = a.get("type", "text").lower() if tag in ("input", "button") else tag
            self._form.kinds.setdefault(a["name"], kind)
            self._form.fields.setdefault(a["name"], a.get("value") or "")
            if tag == "select":
                self._select = a["name"]
                self._form.options[a["name"]] = []
        elif tag == "option" and self._form is not None and self._select:
            self._form.options[self._select].append(a.get("value", ""))
            if "selected" in a or not self._form.fields[self._select]:
                self._form.fields[self._select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "form" and self._form is not None:
            self.forms.append(self._form)
            self._form = None


def _start_pages() -> list[str]:
    """Every URL pattern that takes no argument (crawling finds the rest)."""
    out = []

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern) and not p.pattern.converters and "(?P" not in str(p.pattern):
                out.append("/" + (prefix + str(p.pattern)).lstrip("^").rstrip("$"))

    walk(get_resolver().url_patterns)
    return [u for u in out if not u.startswith(SKIP_PREFIXES)]


def discover_forms(client: Client, extra: list[str]) -> tuple[list[Form], int]:
    """Crawl from the start pages; return the distinct POST forms and how many pages were read."""
    seen, queue, forms = set(), [*_start_pages(), *extra], {}
    while queue and len(seen) < MAX_PAGES:
        url = queue.pop(0)
        path = urlparse(url).path
        if path in seen or path.startswith(SKIP_PREFIXES) or urlparse(url).netloc not in ("", "testserver"):
            continue
        seen.add(path)
        response = client.get(path)
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        parser = _Parser(path)
        parser.feed(response.content.decode(errors="replace"))
        for form in parser.forms:
            forms.setdefault(form.key, form)
        queue.extend(sorted(parser.links - seen))
    return list(forms.values()), len(seen)


@pytest.fixture
def site():
    """An admin and a sales user, a customer in the sales book with explained recommendations to review."""
    admin = UserFactory(username="forms-admin", is_staff=True, is_superuser=True)
    sales = UserFactory(username="forms-sales", groups=["sales"])
    explanation = ExplanationFactory(status="pending_review")
    customer = explanation.recommendation.customer
    RecommendationFactory(customer=customer)
    assign(sales, customer)
    return {"admin": admin, "sales": sales, "customer": customer, "explanation": explanation}


@pytest.fixture
def forms(site):
    client = Client()
    client.force_login(site["admin"])
    extra = [f"/customers/{site['customer'].pseudonym}/", f"/review/{site['explanation'].pk}/"]
    found, pages = discover_forms(client, extra)
    assert pages >= 5, "the crawler read too few pages to mean anything"
    return found


def _post(client: Client, form: Form, data: dict):
    return client.post(urlparse(form.action).path, data, follow=True)


def _rejected_with_a_message(response) -> bool:
    if response.status_code >= 500:
        return False
    if 400 <= response.status_code < 500:
        return True
    return bool(ERROR_MARKERS.search(response.content.decode(errors="replace")))


def test_the_crawler_finds_the_site_forms(forms):
    """Find the forms a sales person and a reviewer use (the test would be empty otherwise)."""
    actions = {re.sub(r"\d+", "N", urlparse(f.action).path) for f in forms}
    assert "/login/" not in actions  # signed in: no login form is linked
    assert any("/review/" in a for a in actions), actions
    assert any("/outcome/" in a for a in actions), actions


def test_every_post_form_requires_a_csrf_token(site, forms):
    """Refuse each form's POST without the CSRF token (403), as Django's middleware must."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(site["admin"])
    for form in forms:
        data = {k: v for k, v in form.fields.items() if k != "csrfmiddlewaretoken"}
        response = client.post(urlparse(form.action).path, data)
        assert response.status_code == 403, (form.action, response.status_code)
    # And the login form, the one POST an anonymous visitor makes
    assert Client(enforce_csrf_checks=True).post("/login/", {"username": "a", "password": "b"}).status_code == 403


def test_every_form_rejects_oversize_text_with_a_message(site, forms):
    """Answer a 100,000-character value in any text field with an error the user sees, never a 500 or a save."""
    client = Client()
    client.force_login(site["admin"])
    checked = 0
    for form in forms:
        path = urlparse(form.action).path
        if path in NO_INPUT_FORMS or not form.editable:
            continue
        for name in form.editable:
            response = _post(client, form, {**form.fields, name: OVERSIZE})
            assert _rejected_with_a_message(response), (form.action, name, response.status_code)
            checked += 1
    assert checked


def test_every_form_rejects_malformed_values_with_a_message(site, forms):
    """Answer an unoffered choice, a non-number or an id of nothing with an error the user sees, never a 500."""
    client = Client()
    client.force_login(site["admin"])
    checked = 0
    for form in forms:
        path = urlparse(form.action).path
        if path in NO_INPUT_FORMS:
            continue
        for name, kind in form.kinds.items():
            if name == "csrfmiddlewaretoken" or kind in ("submit", "button"):
                continue
            if kind == "select" or form.options.get(name):
                bad = "not-an-offered-choice"
            elif kind in ("number", "hidden") or name.endswith(("id", "ids")):
                bad = "12x; DROP TABLE"
            else:  # free text is the oversize test's; a checkbox is on with any value
                continue
            response = _post(client, form, {**form.fields, name: bad})
            assert _rejected_with_a_message(response), (form.action, name, bad, response.status_code)
            checked += 1
    # And the login form rejects an oversize and a malformed username with its message
    anonymous = Client()
    for username in (OVERSIZE, "\x00"):
        response = anonymous.post("/login/", {"username": username, "password": "x"})
        assert _rejected_with_a_message(response)
    assert checked
