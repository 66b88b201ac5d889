"""Export a small first-name and surname list from the ``names-dataset`` package (one-off).

The PII checks (core/pii (names.py)) detect person names with a name list. The
``names-dataset`` package holds ~55 MB of pickles and needs ~1 GB of memory to load, far too
heavy for a web process, so this script exports the top names of the countries our customers
live in to two small committed text files under core/pii/data/:

    first_names.txt   lower-cased first names, one a line, sorted
    surnames.txt      lower-cased surnames, one a line, sorted

Run it again only to change the countries or the sizes (it takes ~1 minute):

    .venv/bin/python scripts/export_names.py [--catalogue /work/shared/data/online_retail/online_retail.csv.gz]

With --catalogue it also prints the exported names that are words of the product descriptions,
which is how the AMBIGUOUS_NAMES list in core/pii/names.py was curated (names such as ROSE, HOLLY, IVY are
kept but only count as a name next to an unambiguous one).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "core" / "pii" / "data"

# Customers of the UCI Online Retail shop come mostly from the UK and Europe; "big" countries
# get a deeper list because most of our customers (and their staff) are there.
BIG_COUNTRIES = ("GB", "IE", "US")
OTHER_COUNTRIES = (
    "AU", "CA", "FR", "DE", "AT", "CH", "BE", "NL", "ES", "PT", "IT", "SE", "NO", "DK", "FI", "IS",
    "PL", "CZ", "LT", "GR", "CY", "MT", "IL", "JP", "SG", "HK", "ZA", "BR", "AE", "SA", "LB", "BH",
)  # fmt: skip
TOP_FIRST = {"big": 600, "other": 120}  # per gender
TOP_LAST = {"big": 1500, "other": 200}

# The source is scraped from social-network profiles and holds plain English words as "names"
# ("The", "You", "Love"). These never count as names: dropping them costs almost no recall
# and avoids flagging ordinary words that happen to be capitalized at a sentence start.
NOT_NAMES = frozenset(
    """
    a about after again all also am an and any are as at away back bad bar be because been best big
    bin blank block boom bright but by can cm come day de dec del der des di do du el en et find
    for free from get given go god good great hand happy have he head hello her here hi him his home
    hot how i if in into is it its just la le les lid like line list little long love lovely lucky
    ma made make man me med more my new nice nil no not now of off oh ok ol old on one only or our
    out pc pen pin pop pot post put re rim sales see se she shop sit six small so some stock sweet
    than that the their them then there they this to too top trading up us van von we wc well
    what when where who why will with yes you your
    """.split()  # noqa: SIM905  (a word list reads better than a list literal)
)

_NAME_RE = re.compile(r"^[^\W\d_]{2,}(?:['-][^\W\d_]+)*$")


def _is_latin(name: str) -> bool:
    """Return True for names written in Latin script (the checks see romanized text)."""
    return all(ord(ch) < 0x250 or ch in "'-" for ch in name)


def _clean(names) -> set[str]:
    out = set()
    for name in names:
        low = name.strip().lower()
        if _NAME_RE.match(low) and _is_latin(low) and low not in NOT_NAMES:
            out.add(low)
    return out


def export(out_dir: Path) -> tuple[set[str], set[str]]:
    """Write first_names.txt and surnames.txt; return both sets."""
    from names_dataset import NameDataset

    # Load one half at a time: each half needs ~1 GB of memory.
    nd = NameDataset(load_last_names=False)
    top = nd.get_top_names(n=TOP_FIRST["big"])
    del nd
    first: set[str] = set()
    for country in BIG_COUNTRIES + OTHER_COUNTRIES:
        depth = TOP_FIRST["big" if country in BIG_COUNTRIES else "other"]
        for names in top.get(country, {}).values():
            first |= _clean(names[:depth])

    nd = NameDataset(load_first_names=False)
    top_last = nd.get_top_names(n=TOP_LAST["big"], use_first_names=False)
    del nd
    last: set[str] = set()
    for country in BIG_COUNTRIES + OTHER_COUNTRIES:
        depth = TOP_LAST["big" if country in BIG_COUNTRIES else "other"]
        last |= _clean(top_last.get(country, [])[:depth])

    out_dir.mkdir(parents=True, exist_ok=True)
    header = "# Exported by scripts/export_names.py from the names-dataset package (v3); do not edit by hand.\n"
    (out_dir / "first_names.txt").write_text(header + "\n".join(sorted(first)) + "\n", encoding="utf-8")
    (out_dir / "surnames.txt").write_text(header + "\n".join(sorted(last)) + "\n", encoding="utf-8")
    return first, last


def catalogue_words(path: Path) -> set[str]:
    """Return the lower-cased words of the product descriptions in the retail CSV."""
    import pandas as pd

    descriptions = pd.read_csv(path, usecols=["Description"], dtype=str)["Description"].dropna().unique()
    return {w.lower() for d in descriptions for w in re.findall(r"[A-Za-z]+", d)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--catalogue", type=Path, help="online_retail.csv.gz, to list names that are product words")
    args = parser.parse_args()
    first, last = export(args.out)
    print(f"first names: {len(first)}  surnames: {len(last)}  -> {args.out}")
    if args.catalogue:
        words = catalogue_words(args.catalogue)
        print("first names that are catalogue words:", " ".join(sorted(first & words)))
        print("surnames that are catalogue words:", " ".join(sorted(last & words)))


if __name__ == "__main__":
    main()
