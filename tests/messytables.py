"""Messy tables a new user brings, generated (nothing is downloaded): gaps, text, dates, wide.

- :func:`customers`: 5,000 rows like a churn export: numeric columns with missing values, an
  integer count, two text columns (one with gaps), a date column written as text, an
  identifier, and a ``"yes"``/``"no"`` target that depends on several of them.
- :func:`spend`: the same customers with a numeric target (a regression table).
- :func:`wide`: ``features`` numeric columns (some with gaps) and a binary target.

Every table is a pure function of its arguments (a seeded generator), so a test that fails
fails the same way again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PLANS = ("basic", "standard", "premium")
REGIONS = ("north", "south", "east", "west")


def _with_gaps(rng: np.random.Generator, values: np.ndarray[Any, Any], share: float) -> np.ndarray[Any, Any]:
    out = values.astype(np.float64)
    out[rng.random(out.size) < share] = np.nan
    return out


def customers(rows: int = 5000, seed: int = 0) -> pd.DataFrame:
    """The churn-like table (see the module doc)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, rows)
    income = rng.lognormal(10.5, 0.5, rows)
    tenure = rng.integers(0, 120, rows)
    products = rng.integers(1, 5, rows)
    plan = rng.choice(PLANS, rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(REGIONS, rows).astype(object)
    region[rng.random(rows) < 0.05] = None
    start = np.datetime64("2015-01-01")
    signup = (start + rng.integers(0, 3000, rows).astype("timedelta64[D]")).astype(str)
    score = -0.03 * (age - 50) - 0.02 * tenure + 0.6 * (products >= 3) + 0.8 * (plan == "basic")
    score -= 0.00002 * (income - 36000)
    churned = np.where(score + rng.normal(0, 1, rows) > 0.4, "yes", "no")
    return pd.DataFrame(
        {
            "customer_id": [f"C{100000 + i}" for i in range(rows)],
            "age": _with_gaps(rng, age, 0.08),
            "income": _with_gaps(rng, income, 0.15),
            "tenure_months": tenure,
            "num_products": products,
            "plan": plan,
            "region": region,
            "signup_date": signup,
            "churned": churned,
        }
    )


def spend(rows: int = 5000, seed: int = 1) -> pd.DataFrame:
    """The customers with a numeric target ``monthly_spend`` instead of ``churned``."""
    table = customers(rows, seed).drop(columns=["churned"])
    rng = np.random.default_rng(seed + 100)
    base = {"basic": 20.0, "standard": 45.0, "premium": 90.0}
    table["monthly_spend"] = (
        table["plan"].map(base) + 5.0 * table["num_products"] + 0.1 * table["tenure_months"] + rng.normal(0, 5, rows)
    )
    return table


def wide(rows: int = 600, features: int = 200, seed: int = 2) -> pd.DataFrame:
    """``features`` numeric columns ``f000``… (every tenth with 5 % gaps) and a binary ``label``."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(rows, features))
    label = (data[:, 0] + 0.5 * data[:, 1] - data[:, 2] + rng.normal(0, 0.5, rows) > 0).astype(int)
    table = pd.DataFrame({f"f{j:03d}": data[:, j] for j in range(features)})
    for j in range(0, features, 10):
        table[f"f{j:03d}"] = _with_gaps(rng, data[:, j], 0.05)
    table["label"] = label
    return table


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """The table as a CSV file (missing values as empty cells), as a spreadsheet would export it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return path
