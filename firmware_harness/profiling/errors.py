"""Errors of the cycle model (:mod:`firmware_harness.profiling.cycle_estimate`)."""
from __future__ import annotations

from keras_asc.errors import AscError


class CycleModelError(AscError, ValueError):
    """A cycle estimate cannot be made as asked (missing tool, unknown core, bad counts)."""


class PeakExceeded(CycleModelError):
    """An estimate does more int8 MACs per cycle than its core can."""
