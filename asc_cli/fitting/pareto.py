"""The Pareto front of ``asc fit``: the points no other point beats on every objective."""
from __future__ import annotations

from typing import Mapping, Sequence


def dominates(a: Mapping[str, float], b: Mapping[str, float], *, maximize: str, minimize: Sequence[str]) -> bool:
    """``a`` is at least as good as ``b`` on every objective (``maximize`` higher, each of
    ``minimize`` lower) and better on one."""
    if a[maximize] < b[maximize] or any(a[m] > b[m] for m in minimize):
        return False
    return a[maximize] > b[maximize] or any(a[m] < b[m] for m in minimize)


def pareto_front(points: Sequence[Mapping[str, float | None]], *, maximize: str = "accuracy",
                 minimize: Sequence[str] = ("ms_per_clip", "ram_bytes", "flash_bytes")) -> list[int]:
    """Indices (in input order) of the points on the front: those that no other point dominates.
    A point missing an objective (None) is on no front. Equal points are all kept."""
    keys = (maximize, *minimize)
    complete = [i for i, p in enumerate(points) if all(p.get(k) is not None for k in keys)]
    return [i for i in complete
            if not any(dominates(points[j], points[i], maximize=maximize, minimize=minimize) for j in complete if j != i)]
