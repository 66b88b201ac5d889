"""Reference profile texts: what a customer (or product) really looks like, in words, from purchase facts.

These texts are the ELM adapter's training targets and the "reference" in its evaluation. They are built
deterministically from facts only (no model): :func:`facts_from_lines` turns purchase lines into
:class:`CustomerFacts`; :func:`customer_profile_text` writes the paragraph. The first sentence always
carries the product content (what the customer vector encodes), so a target truncated for cheap training
keeps the part the embedding can actually tell.

Pure Python + pandas/numpy; no torch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

LINE_COLUMNS = ("customer", "stock_code", "description", "quantity", "unit_price", "occurred_at", "region")
SEASON_MONTHS = (10, 11, 12)
DAYS_PER_MONTH = 365.25 / 12

# Category -> keywords (whole words of the upper-cased description). The first matching category wins,
# so specific themes (Christmas, party) come before generic kinds (boxes, home decor).
CATEGORY_KEYWORDS: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (name, frozenset(words.split()))
    for name, words in (
        ("Christmas decorations", "CHRISTMAS XMAS ADVENT SANTA REINDEER SNOWFLAKE WREATH BAUBLE BAUBLES NATIVITY"),
        ("Easter decorations", "EASTER"),
        ("party supplies", "PARTY BUNTING BALLOON BALLOONS NAPKINS NAPKIN STRAWS CONFETTI"),
        ("cards and wrap", "CARD CARDS WRAP WRAPPING TISSUE TISSUES RIBBON RIBBONS ENVELOPE ENVELOPES TAGS"),
        ("baking supplies", "CAKE CAKES BAKING CASES CUPCAKE MOULD BISCUIT CAKESTAND SCONES"),
        ("candles", "CANDLE CANDLES T-LIGHT TLIGHT LANTERN LIGHT LIGHTS INCENSE CANDLEHOLDER"),
        ("bags", "BAG BAGS SHOPPER TOTE"),
        ("tableware", "MUG MUGS CUP CUPS SAUCER PLATE PLATES BOWL BOWLS CUTLERY TEAPOT BEAKER DISH TUMBLER"),
        ("kitchenware", "TIN TINS JAR JARS PANTRY KITCHEN STORAGE APRON TOWEL TOWELS LUNCH BOTTLE CONTAINER"),
        ("stationery", "NOTEBOOK PENCIL PENCILS PEN PENS STICKER STICKERS ERASER DIARY JOURNAL CHALK NOTEPAD"),
        ("jewellery", "NECKLACE BRACELET EARRINGS RING CHARM BEAD BEADS HAIR DIAMANTE BROOCH PURSE"),
        ("toys", "TOY TOYS GAME GAMES JIGSAW DOLL DOLLY SPACEBOY PLAYHOUSE SKIPPING FELTCRAFT COLOURING"),
        ("garden items", "GARDEN PLANT PLANTER WATERING BIRD BIRDHOUSE FEEDER PARASOL"),
        ("bathroom goods", "BATHROOM SOAP BATH WASH SPONGE TOILET"),
        ("boxes", "BOX BOXES BASKET BASKETS HAMPER CRATE TRAY TRAYS"),
        (
            "home decor",
            "FRAME MIRROR CUSHION CLOCK SIGN DOORMAT HOOK HOOKS DRAWER KNOB CABINET PLAQUE VASE "
            "ORNAMENT DECORATION GARLAND TILE HANGING HEART",
        ),
    )
)
OTHER_CATEGORY = "other gift items"


@dataclass(frozen=True)
class CustomerFacts:
    """Plain facts about one customer's purchases (all numbers over the customer's sale lines)."""

    key: str  # pseudonymous key; only used to pick a phrasing deterministically
    top_products: Sequence[tuple[str, int]] = ()  # (description, number of orders containing it)
    top_categories: Sequence[tuple[str, int]] = ()  # (category, number of purchase lines)
    orders_per_month: float = 0.0
    mean_basket_items: float = 0.0
    mean_basket_value: float = 0.0  # in pounds
    seasonal_share: float = 0.0  # share of orders placed in October-December
    price_level: float = 1.0  # customer's median unit price / catalogue median unit price
    region: str | None = None
    recency_days: int | None = None  # days from the last order to the end of the data
    n_orders: int = 0
    extra: dict = field(default_factory=dict, compare=False)


# --------------------------------------------------------------------------- words


def clean_description(description: str) -> str:
    """Collapse whitespace and lower-case ("JUMBO BAG  RED " -> "jumbo bag red")."""
    return " ".join(str(description).split()).lower()


def product_category(description: str) -> str:
    words = set(re.findall(r"[A-Z0-9]+(?:-[A-Z]+)?", str(description).upper()))
    for name, keywords in CATEGORY_KEYWORDS:
        if words & keywords:
            return name
    return OTHER_CATEGORY


def product_profile_text(description: str) -> str:
    """A short sentence about a product: "A jumbo bag red retrospot, one of the bags."."""
    text = clean_description(description)
    if not text:
        return "An unnamed gift item."
    article = "An" if text[0] in "aeiou" else "A"
    category = product_category(description)
    if category == OTHER_CATEGORY:
        return f"{article} {text}, a gift item."
    return f"{article} {text}, from the {category} range."


def _choice(key: str, slot: str, options: Sequence[str]) -> str:
    """Pick a phrasing deterministically from the key, so texts vary between customers but never between runs."""
    digest = hashlib.sha256(f"{key}|{slot}".encode()).digest()
    return options[digest[0] % len(options)]


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _plural(value: float, noun: str) -> str:
    return noun if _number(value) == "1" else noun + "s"


# Region names that read as "from the ...".
_WITH_ARTICLE = {"British Isles", "Americas", "Middle East & Africa", "Asia-Pacific"}


def _place(region: str | None) -> str:
    if not region or region.lower().startswith(("other", "unspecified")):
        return ""
    return f" from the {region}" if region in _WITH_ARTICLE else f" from {region}"


def _frequency_words(per_month: float) -> str:
    if per_month >= 4:
        return "a very frequent"
    if per_month >= 1.5:
        return "a frequent"
    if per_month >= 0.5:
        return "a regular"
    return "an occasional"


def _price_words(level: float) -> str:
    if level < 0.8:
        return "budget"
    if level > 1.25:
        return "premium"
    return "mid-range"


def _number(value: float) -> str:
    if value >= 100:
        return f"{round(value, -1):,.0f}"
    if value >= 10:
        return f"{value:,.0f}"
    return f"{value:.1f}".rstrip("0").rstrip(".")


def customer_profile_text(facts: CustomerFacts) -> str:
    """Write the customer's profile paragraph: product content first, then buying behaviour."""
    key = facts.key
    categories = [c for c, _ in facts.top_categories[:2]]
    products = [f"{clean_description(d)}" for d, _ in facts.top_products[:3]]
    if categories and products:
        lead = _choice(
            key,
            "lead",
            ("Mainly buys {c}, such as {p}.", "Buys mostly {c}, for example {p}.", "Focuses on {c}, including {p}."),
        )
        first = lead.format(c=_join(categories), p=_join(products))
    elif products:
        first = f"Buys {_join(products)}."
    else:
        first = "Has no recorded product purchases."
    who = _frequency_words(facts.orders_per_month)
    place = _place(facts.region)
    orders = (
        f"about {_number(facts.orders_per_month)} {_plural(facts.orders_per_month, 'order')} a month"
        if facts.orders_per_month >= 1
        else f"an order every {_number(1 / max(facts.orders_per_month, 1e-6))} months"
    )
    basket = f"{_number(facts.mean_basket_items)} items (£{_number(facts.mean_basket_value)})"
    second = _choice(
        key,
        "behaviour",
        (
            "{Who} buyer{place}: {orders} of about {basket}, at {price} prices.",
            "{Who} buyer{place}, placing {orders} of roughly {basket} at {price} prices.",
        ),
    ).format(
        Who=who[0].upper() + who[1:], place=place, orders=orders, basket=basket, price=_price_words(facts.price_level)
    )
    season = f"{round(100 * facts.seasonal_share)}% of orders fall in October–December"
    if facts.recency_days is None:
        third = season[0].upper() + season[1:] + "."
    else:
        recency = (
            "the last order was in the final week of the data"
            if facts.recency_days <= 7
            else (f"the last order was {facts.recency_days} days before the data ends")
        )
        third = season[0].upper() + season[1:] + "; " + recency + "."
    return " ".join((first, second, third))


def facts_prompt(facts: CustomerFacts) -> str:
    """The customer's facts as a compact evidence line for grounded generation (no invented wording)."""
    products = "; ".join(f"{clean_description(d)} ({n} {_plural(n, 'order')})" for d, n in facts.top_products[:3])
    categories = ", ".join(c for c, _ in facts.top_categories[:2])
    parts = [
        f"top products: {products}" if products else "",
        f"main categories: {categories}" if categories else "",
        f"{_number(facts.orders_per_month)} {_plural(facts.orders_per_month, 'order')} per month",
        f"{_number(facts.mean_basket_items)} items and £{_number(facts.mean_basket_value)} per order",
        f"{_price_words(facts.price_level)} prices",
        f"{round(100 * facts.seasonal_share)}% of orders in October-December",
        f"region: {facts.region}" if facts.region else "",
        f"last order {facts.recency_days} days before the data ends" if facts.recency_days is not None else "",
    ]
    return "; ".join(p for p in parts if p) + "."


# --------------------------------------------------------------------------- facts from purchase lines


def facts_from_lines(
    lines: pd.DataFrame, *, as_of: pd.Timestamp | None = None, top_n: int = 3
) -> dict[str, CustomerFacts]:
    """Compute :class:`CustomerFacts` per customer from purchase lines.

    ``lines`` has the columns of :data:`LINE_COLUMNS`; ``customer`` is any hashable key (a pseudonym or a
    database id). Sale lines are those with quantity > 0 and unit price > 0; returns (negative quantity)
    are ignored here. An order is one distinct ``occurred_at`` of a customer (the source has one timestamp
    per invoice). ``as_of`` defaults to the latest line; the catalogue median price is the median over
    products of each product's median sale price in ``lines``.
    """
    missing = set(LINE_COLUMNS) - set(lines.columns)
    if missing:
        raise ValueError(f"purchase lines lack columns {sorted(missing)}")
    sales = lines[(lines["quantity"] > 0) & (lines["unit_price"] > 0)].copy()
    if sales.empty:
        return {}
    sales["occurred_at"] = pd.to_datetime(sales["occurred_at"])
    end = pd.Timestamp(as_of) if as_of is not None else sales["occurred_at"].max()
    sales["value"] = sales["quantity"] * sales["unit_price"]
    sales["category"] = sales["description"].map(product_category)
    catalogue_median = float(sales.groupby("stock_code")["unit_price"].median().median())

    orders = (
        sales.groupby(["customer", "occurred_at"], sort=False)
        .agg(items=("quantity", "sum"), value=("value", "sum"))
        .reset_index()
    )
    per_customer = orders.groupby("customer", sort=False).agg(
        n_orders=("occurred_at", "size"),
        first=("occurred_at", "min"),
        last=("occurred_at", "max"),
        items=("items", "mean"),
        value=("value", "mean"),
        seasonal=("occurred_at", lambda s: float(np.isin(s.dt.month, SEASON_MONTHS).mean())),
    )
    median_price = sales.groupby("customer", sort=False)["unit_price"].median()
    region = sales.groupby("customer", sort=False)["region"].agg(lambda s: s.mode().iat[0] if s.notna().any() else None)
    product_orders = (
        sales.groupby(["customer", "stock_code"], sort=False)
        .agg(orders=("occurred_at", "nunique"), units=("quantity", "sum"), description=("description", "last"))
        .reset_index()
        .sort_values(["customer", "orders", "units", "stock_code"], ascending=[True, False, False, True])
    )
    top_products = {
        c: list(zip(g["description"].head(top_n), g["orders"].head(top_n).astype(int), strict=True))
        for c, g in product_orders.groupby("customer", sort=False)
    }
    category_lines = sales[sales["category"] != OTHER_CATEGORY].groupby(["customer", "category"]).size()
    top_categories: dict = {}
    for (customer, category), count in category_lines.items():
        top_categories.setdefault(customer, []).append((category, int(count)))

    out: dict[str, CustomerFacts] = {}
    for customer, row in per_customer.iterrows():
        # Active span from the first order to the end of the data, at least one month.
        months = max((end - row["first"]).days / DAYS_PER_MONTH, 1.0)
        cats = sorted(top_categories.get(customer, []), key=lambda cv: (-cv[1], cv[0]))[:top_n]
        out[customer] = CustomerFacts(
            key=str(customer),
            top_products=top_products.get(customer, []),
            top_categories=cats,
            orders_per_month=float(row["n_orders"] / months),
            mean_basket_items=float(row["items"]),
            mean_basket_value=float(row["value"]),
            seasonal_share=float(row["seasonal"]),
            price_level=float(median_price[customer] / catalogue_median) if catalogue_median else 1.0,
            region=region.get(customer),
            recency_days=int((end - row["last"]).days),
            n_orders=int(row["n_orders"]),
        )
    return out


def first_sentences(text: str, n: int = 1) -> str:
    """The first ``n`` sentences of a profile text (sentences end with ". " or "; ")."""
    parts = re.split(r"(?<=\.)\s+", text.strip())
    return " ".join(parts[:n])


_LEADS = ("Mainly buys ", "Buys mostly ", "Focuses on ", "Buys ")
_CONNECTORS = re.compile(r",? (?:such as|for example|including) |, ")


def profile_content(text: str) -> str:
    """The content words of a profile's first sentence, without the lead verb and connectors.

    "Mainly buys bags and candles, such as jumbo bag red, ..." -> "bags and candles jumbo bag red ..."
    """
    first = first_sentences(text, 1).rstrip(".")
    for lead in _LEADS:
        if first.startswith(lead):
            first = first[len(lead) :]
            break
    return _CONNECTORS.sub(" ", first)
