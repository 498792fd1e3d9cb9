"""How well two judges agree on the same records: Spearman's rank correlation and the within-one-point rate.

    agreement(a, b, scale_a, scale_b) -> {"records", "spearman", "within_one_point"}

Scores on different scales are compared on the first judge's scale (b mapped linearly onto a's) for the
within-one-point rate; Spearman needs no mapping. Records one judge did not score are left out.
"""

from __future__ import annotations

import math
from typing import Sequence


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rho: Pearson's correlation of the ranks, ties sharing their average rank (as scipy's)."""
    import numpy as np
    import polars as pl

    rx = pl.Series(xs, dtype=pl.Float64).rank("average").to_numpy()
    ry = pl.Series(ys, dtype=pl.Float64).rank("average").to_numpy()
    return float(np.corrcoef(rx, ry)[0, 1])


def agreement(a: Sequence[float], b: Sequence[float], scale_a: tuple[float, float] = (0.0, 1.0),
              scale_b: tuple[float, float] | None = None) -> dict[str, float | int | None]:
    scale_b = scale_b or scale_a
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    result: dict[str, float | int | None] = {"records": len(pairs), "spearman": None, "within_one_point": None}
    if not pairs:
        return result
    (lo_a, hi_a), (lo_b, hi_b) = scale_a, scale_b
    mapped = [(x, lo_a + (y - lo_b) / (hi_b - lo_b) * (hi_a - lo_a)) for x, y in pairs]
    result["within_one_point"] = round(sum(abs(x - y) <= 1.0 + 1e-9 for x, y in mapped) / len(mapped), 4)
    xs, ys = zip(*pairs)
    if len(pairs) >= 2 and len(set(xs)) > 1 and len(set(ys)) > 1:
        rho = spearman(xs, ys)
        result["spearman"] = None if math.isnan(rho) else round(float(rho), 4)
    return result
