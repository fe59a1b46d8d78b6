"""The simulated flash-cache counts of profiled segments (:class:`CacheCounts`): what the QEMU
plugin writes (:mod:`firmware_harness.profiling.qemu_plugin`) and the cycle model prices
(:mod:`firmware_harness.profiling.memory_system`). A plain record, so the counting half and the
cycle-model half of this package both import it without importing each other."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CacheCounts:
    """One microcontroller's simulated flash caches over some segments (counts of fill units: what
    one flash access brings in, ``CacheGeometry.fill_bytes``)."""

    fetches: int = 0  # instruction fill units fetched (per TB execution, each unit holding an instruction start)
    fetch_misses: int = 0
    fetch_prefetch_hits: int = 0  # served by the sequential prefetch buffer
    prefetch_stall_cycles: int = 0  # what the prefetch hits still waited (the plugin's upper bound)
    data_reads: int = 0  # data fill units read from flash (weights, constants, literal pools)
    data_misses: int = 0

    def __add__(self, other: CacheCounts) -> CacheCounts:
        return CacheCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    @property
    def fetch_hit_rate(self) -> float | None:
        """Fetches served without a flash access (cache or prefetch buffer); None: no fetch from flash."""
        return 1.0 - self.fetch_misses / self.fetches if self.fetches else None

    @property
    def data_hit_rate(self) -> float | None:
        return 1.0 - self.data_misses / self.data_reads if self.data_reads else None
