"""Offline evaluation of recommenders: temporal splits, metrics, baselines and the explainable hybrid.

Everything here works on an *interactions* DataFrame with the columns
``customer, item, quantity, unit_price, occurred_at, region`` (one row per sale line; ``occurred_at``
is naive UK local time). Loaders: :func:`recommendations.evaluation.data.interactions_from_csv`
(no database needed) and :func:`recommendations.evaluation.data.interactions_from_db`.
"""
