"""Cached recommendation cards: the customer page's rendered cards and the recommendations API's JSON.

Building a card (decoding the explanation's evidence, words and concepts, deciding what the viewer
may see) and rendering it is most of a customer page's CPU. Both are cached per process under a key
made of everything they depend on:

- ``customer.cards_version`` (``sales.selectors.cards_version``), and for the page also the
  description's, the recent purchases' and the outcomes' versions: digests computed by the database
  in the same query that reads the customer, which change when a new batch activates, a reason is
  approved, edited or withdrawn, an outcome is recorded, or any other column of a shown row changes;
- the active language (the cards are translated) and ``Viewer.cache_key`` (the roles a card depends on).

A changed version is a new key, so an entry is never invalidated, only no longer read; each web
process keeps its own entries (``settings.ELM_CARD_CACHE``, bounded, with a timeout). What depends on
the request itself (the outcome form's token, the CSRF token, the exposure count) is never cached.

The page caches more than the cards: everything below its header is rendered once (``CustomerPage``)
with placeholders where each request puts its own values (``customer_page_fill``), so that a cached
view renders only the header and the site's frame around one string.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import caches
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

from explanations.models import CustomerDescription
from outcomes.models import Outcome
from recommendations.models import Customer, Purchase
from sales.presentation import Card, Viewer

T = TypeVar("T")


@dataclass(frozen=True)
class RenderedCard:
    """A card's content as HTML (``sales/_card_content.html``) with what the page around it needs."""

    recommendation_id: int
    rank: int
    pending: bool  # no explanation yet
    html: SafeString


@dataclass(frozen=True)
class CustomerCards:
    """What the customer page shows of the batch, the profile in words, purchases and outcomes, for one viewer."""

    cards: tuple[RenderedCard, ...]
    generated_at: datetime | None  # of the batch's recommendations
    description: CustomerDescription | None
    purchases: tuple[Purchase, ...] = ()  # the recent purchase lines, newest first
    outcomes: dict[int, list[Outcome]] = field(default_factory=dict)  # by recommendation id, newest first
    summary: dict = field(default_factory=dict)  # the customer's recommendation_count, explained_count, concept_scores

    @property
    def recommendation_ids(self) -> list[int]:
        return [card.recommendation_id for card in self.cards]

    @property
    def pending_count(self) -> int:
        return sum(1 for card in self.cards if card.pending)


def customer_cards_render(
    *,
    cards: list[Card],
    generated_at: datetime | None,
    description: CustomerDescription | None,
    purchases: Sequence[Purchase] = (),
    outcomes: dict[int, list[Outcome]] | None = None,
    summary: dict | None = None,
) -> CustomerCards:
    """Render each card's content once; the score bars share the page's range (0..1 unless a score is above)."""
    context = {
        "score_max": max([1.0, *(card.score for card in cards)]),
        "score_min": min([0.0, *(card.score for card in cards)]),
    }
    rendered = tuple(
        RenderedCard(
            recommendation_id=card.recommendation_id,
            rank=card.rank,
            pending=card.explanation is None,
            # The template escapes every value it shows; its output is HTML.
            html=mark_safe(render_to_string("sales/_card_content.html", {**context, "card": card})),  # noqa: S308
        )
        for card in cards
    )
    return CustomerCards(
        cards=rendered,
        generated_at=generated_at,
        description=description,
        purchases=tuple(purchases),
        outcomes=outcomes or {},
        summary=summary or {},
    )


# What a cached page body carries in place of each request's own values. Letters, digits and hyphens
# only, so that autoescaping leaves them as they are; nothing the page shows can contain them.
CSRF_PLACEHOLDER = "elm-csrf-placeholder-4f7d1c9e"
FORM_TOKEN_PLACEHOLDER = "elm-form-token-placeholder-b3a6e20d"  # noqa: S105 (not a secret)
PROGRESS_PLACEHOLDER = "<!--elm-explain-progress-placeholder-->"


@dataclass(frozen=True)
class CustomerPage:
    """The customer page below its header as HTML with placeholders, and what the view needs besides."""

    html: str
    recommendation_ids: tuple[int, ...]
    pending_count: int
    recommendation_count: int
    explained_count: int


def customer_page_fill(*, page: CustomerPage, csrf_token: Callable[[], str], progress: str = "") -> SafeString:
    """Return the page body with this request's values: the CSRF token, a new token per outcome form, progress.

    ``csrf_token`` is called only when the body has a form, like the template tag it stands for.
    """
    html = page.html
    if CSRF_PLACEHOLDER in html:
        html = html.replace(CSRF_PLACEHOLDER, csrf_token())
    # Each outcome form gets its own idempotency token, new on every rendering.
    parts = html.split(FORM_TOKEN_PLACEHOLDER)
    if len(parts) > 1:
        tokens = [str(uuid.uuid4()) for _ in parts[1:]]
        html = parts[0] + "".join(token + part for token, part in zip(tokens, parts[1:], strict=True))
    html = html.replace(PROGRESS_PLACEHOLDER, progress, 1)
    # The cached body was rendered by the autoescaping template; the values put in are tokens and HTML
    # rendered by a template too.
    return mark_safe(html)  # noqa: S308


# What each kind of cached value shows, besides the cards.
_VERSIONS = {
    "page": ("cards_version", "description_version", "purchases_version", "outcomes_version", "concepts_version"),
    "api": ("cards_version",),
}


def _key(kind: str, customer: Customer, viewer: Viewer, variant: str) -> str:
    if "cards_version" not in customer.__dict__:
        raise ValueError("read the customer with sales.selectors.customer_get(with_versions=True)")
    versions = [getattr(customer, name) for name in _VERSIONS[kind.split(":")[0]]]
    parts = [kind, str(customer.pk), *(v or "-" for v in versions), get_language() or "-", viewer.cache_key]
    return ":".join([*parts, variant] if variant else parts)


def cached_cards(
    *, kind: str, customer: Customer, viewer: Viewer, build: Callable[[], T], variant: str = ""
) -> tuple[T, bool]:
    """Return the cached value of ``kind`` for this customer and viewer, building it on a miss.

    ``kind`` names the value and the selection ("page:all", "api:reorder", ...); ``variant`` stands
    for anything else the value depends on (the page: the viewer's roles, which decide its forms).

    Returns ``(value, hit)``. ``customer`` must carry its versions (``customer_get(with_versions=True)``).
    """
    cache = caches[settings.ELM_CARD_CACHE]
    key = _key(kind, customer, viewer, variant)
    value: Any = cache.get(key)
    if value is not None:
        return value, True
    value = build()
    cache.set(key, value)
    return value, False
