"""How many customers the purchase lines a sales page shows single out in the public Online Retail file.

The customer page and API show a customer's 20 most recent purchase lines: time, stock code, quantity and
unit price (invoice numbers are keyed pseudonyms since issue #14, so they no longer link). An attacker with
the public file looks for the CustomerIDs whose lines contain all of them. This measures, over the whole
file, how many customers are singled out (exactly one candidate: re-identified) when the page shows

* ``line``: time, stock code, quantity, price (what is shown now);
* ``day``: the day and the stock code only;
* ``month``: the month and the stock code only;
* ``codes``: the stock codes only (no dates at all).

    .venv/bin/python scripts/measure_linkage.py [--dataset PATH] [--shown 20]

No database: what a page shows is recomputed from the file (the importer stores these values as they are).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
VIEWS = {
    "line": ["InvoiceDate", "StockCode", "Quantity", "UnitPrice"],
    "day": ["day", "StockCode"],
    "month": ["month", "StockCode"],
    "codes": ["StockCode"],
}


def measure(dataset: Path, shown: int) -> dict[str, tuple[int, int]]:
    df = pd.read_csv(dataset, dtype=str, keep_default_na=False)
    df = df[df["CustomerID"] != ""].copy()
    df["CustomerID"] = df["CustomerID"].str.removesuffix(".0")
    df["StockCode"] = df["StockCode"].str.strip().str.upper()
    df["day"], df["month"] = df["InvoiceDate"].str[:10], df["InvoiceDate"].str[:7]
    # What the page shows: the latest lines of each customer (newest first, as the page lists them).
    latest = df.sort_values("InvoiceDate", ascending=False).groupby("CustomerID", sort=False).head(shown)
    customers = latest["CustomerID"].nunique()
    out = {}
    for view, columns in VIEWS.items():
        owners: dict[tuple, set[str]] = defaultdict(set)
        for key, customer in zip(map(tuple, df[columns].to_numpy()), df["CustomerID"], strict=True):
            owners[key].add(customer)
        singled = 0
        for customer, lines in latest.groupby("CustomerID"):
            candidates: set[str] | None = None
            for key in set(map(tuple, lines[columns].to_numpy())):
                candidates = set(owners[key]) if candidates is None else candidates & owners[key]
                if len(candidates) <= 1:
                    break
            singled += candidates == {customer}
        out[view] = (singled, customers)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--shown", type=int, default=20, help="purchase lines a customer page shows")
    args = parser.parse_args()
    started = time.perf_counter()
    print("| what the page shows of each line | customers singled out |")
    print("| --- | --- |")
    for view, (singled, customers) in measure(args.dataset, args.shown).items():
        print(f"| {view}: {', '.join(VIEWS[view])} | {singled:,}/{customers:,} ({singled / customers:.1%}) |")
    print(f"({time.perf_counter() - started:.0f} s, the {args.shown} latest lines of each customer)")


if __name__ == "__main__":
    main()
