"""Re-orders and new products in the offline evaluation: how often each kind of recommendation was bought.

A recommendation is a re-order when the customer bought the item before the cutoff (any time, the
exclusion window aside: those items are never recommended), new otherwise; the same split as the cards'
(``recommendations.services.reorder``) and the KPIs'.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recommendations.evaluation.baselines import Recommender, rank_customers
from recommendations.evaluation.split import recently_bought


def kind_report(
    model: Recommender,
    interactions: pd.DataFrame,
    *,
    cutoff: str | pd.Timestamp,
    horizon_days: int = 90,
    exclusion_days: int = 90,
    top_n: int = 10,
) -> dict:
    """Return per kind ("reorder", "new"): recommendations, their share, and the share bought within the horizon.

    Lists are every training customer's top-``top_n`` (the production exclusion rule applied), as served.
    """
    cutoff = pd.Timestamp(cutoff)
    data = model.data
    when = interactions["occurred_at"]
    excluded = recently_bought(interactions.loc[when < cutoff], as_of=cutoff, days=exclusion_days)
    after = interactions.loc[(when >= cutoff) & (when < cutoff + pd.Timedelta(days=horizon_days))]
    bought = set(zip(after["customer"], after["item"], strict=True))
    customers = list(data.customers)
    ranked = rank_customers(model, customers, excluded, n=top_n)
    reorder, hit = [], []
    for customer, items in zip(customers, ranked, strict=True):
        row = data.binary[data.customer_index[customer]]
        before = set(data.items[row.indices])
        reorder.extend(item in before for item in items)
        hit.extend((customer, item) in bought for item in items)
    reorder_arr, hit_arr = np.asarray(reorder, dtype=bool), np.asarray(hit, dtype=bool)
    total = len(reorder_arr)
    out = {}
    for kind, mask in (("reorder", reorder_arr), ("new", ~reorder_arr)):
        n = int(mask.sum())
        out[kind] = {
            "recommendations": n,
            "share": n / total if total else None,
            "bought": float(hit_arr[mask].mean()) if n else None,
        }
    return out
