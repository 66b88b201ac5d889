"""Temporal train/test splits with the production exclusion rule.

Train = every purchase before ``cutoff``. A customer's relevant items = what they bought in
``[cutoff, cutoff + horizon)`` that they had NOT bought in the last ``exclusion_days`` of training
(``[cutoff - exclusion_days, cutoff)``); recommenders must exclude exactly those recent items too,
as production does. Only customers active in both periods count; those whose test purchases were all
excluded repeats have nothing to find and are counted but not scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class TemporalSplit:
    cutoff: pd.Timestamp
    horizon_days: int
    exclusion_days: int
    train: pd.DataFrame  # interactions strictly before the cutoff
    relevant: dict[str, frozenset[str]]  # evaluated customer -> items to find
    excluded: dict[str, frozenset[str]]  # every training customer -> items bought in the exclusion window
    region: dict[str, str]  # evaluated customer -> region
    customers_active_both: int  # bought in training AND in the test window

    @property
    def customers(self) -> list[str]:
        """Return the evaluated customers (active in both periods, >= 1 relevant item), sorted."""
        return sorted(self.relevant)

    def summary(self) -> dict:
        """Return the split's counts (no customer ids)."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "horizon_days": self.horizon_days,
            "exclusion_days": self.exclusion_days,
            "train_lines": len(self.train),
            "train_customers": int(self.train["customer"].nunique()),
            "train_items": int(self.train["item"].nunique()),
            "customers_active_both": self.customers_active_both,
            "customers_evaluated": len(self.relevant),
            "relevant_items_total": sum(len(v) for v in self.relevant.values()),
        }


def temporal_split(
    interactions: pd.DataFrame, *, cutoff: str | pd.Timestamp, horizon_days: int = 90, exclusion_days: int = 90
) -> TemporalSplit:
    """Split ``interactions`` at ``cutoff`` with the exclusion rule (see the module docstring)."""
    cutoff = pd.Timestamp(cutoff)
    when = interactions["occurred_at"]
    train = interactions.loc[when < cutoff]
    test = interactions.loc[(when >= cutoff) & (when < cutoff + pd.Timedelta(days=horizon_days))]
    excluded = recently_bought(train, as_of=cutoff, days=exclusion_days)
    bought_in_test = _items_by_customer(test)
    train_customers = set(train["customer"].unique())
    active_both = train_customers & set(bought_in_test)
    relevant = {}
    for customer in active_both:
        items = bought_in_test[customer] - excluded.get(customer, frozenset())
        if items:
            relevant[customer] = frozenset(items)
    region = train.drop_duplicates("customer", keep="last").set_index("customer")["region"]
    return TemporalSplit(
        cutoff=cutoff,
        horizon_days=horizon_days,
        exclusion_days=exclusion_days,
        train=train.reset_index(drop=True),
        relevant=relevant,
        excluded=excluded,
        region={c: str(region[c]) for c in relevant},
        customers_active_both=len(active_both),
    )


def validation_split(split: TemporalSplit, *, extra_offset_days: int = 0) -> TemporalSplit:
    """Return a split carved out of ``split.train`` only, one horizon (+ ``extra_offset_days``) earlier.

    Its test window ends at most at ``split.cutoff``, so nothing from the real test window is seen.
    """
    return temporal_split(
        split.train,
        cutoff=split.cutoff - pd.Timedelta(days=split.horizon_days + extra_offset_days),
        horizon_days=split.horizon_days,
        exclusion_days=split.exclusion_days,
    )


def validation_splits(split: TemporalSplit, *, folds: int = 2, stride_days: int | None = None) -> list[TemporalSplit]:
    """Return ``folds`` validation splits: one horizon before the cutoff, then each ``stride_days`` earlier."""
    stride = split.horizon_days // 2 if stride_days is None else stride_days
    return [validation_split(split, extra_offset_days=fold * stride) for fold in range(folds)]


def recently_bought(
    interactions: pd.DataFrame, *, as_of: str | pd.Timestamp, days: int = 90
) -> dict[str, frozenset[str]]:
    """Return customer -> items bought in ``[as_of - days, as_of)``: what a list made at ``as_of`` must exclude."""
    as_of = pd.Timestamp(as_of)
    when = interactions["occurred_at"]
    return _items_by_customer(interactions.loc[(when >= as_of - pd.Timedelta(days=days)) & (when < as_of)])


def _items_by_customer(frame: pd.DataFrame) -> dict[str, frozenset[str]]:
    if frame.empty:
        return {}
    return {c: frozenset(items) for c, items in frame.groupby("customer", sort=False)["item"].unique().items()}
