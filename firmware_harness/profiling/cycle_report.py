"""Checks and the report of a cycle estimate: the int8 MACs per cycle against the core's peak
(:func:`check_against_peak`) and the Markdown table (:func:`format_estimate`)."""
from __future__ import annotations

import dataclasses

from firmware_harness.profiling.cores import CoreModel, get_core
from firmware_harness.profiling.cycle_estimate import CycleEstimate, ms
from firmware_harness.profiling.errors import CycleModelError, PeakExceeded


@dataclasses.dataclass(frozen=True)
class PeakCheck:
    macs: int
    cycles: float
    macs_per_cycle: float
    peak: float
    core: str

    @property
    def ok(self) -> bool:
        return self.macs_per_cycle <= self.peak

    @property
    def message(self) -> str:
        verdict = "within" if self.ok else "ABOVE"
        text = (f"{self.macs:,d} int8 MACs in {self.cycles:,.0f} cycles = {self.macs_per_cycle:.2f} MACs/cycle, "
                f"{verdict} the {self.core} peak of {self.peak:g}")
        if not self.ok:
            text += (": the estimate has too few cycles for the arithmetic (unpriced instructions, a segment "
                     "boundary that misses work, or a cost too low)")
        return text


def check_against_peak(macs: int, cycles: float, core: str | CoreModel, *, raise_on_exceed: bool = False) -> PeakCheck:
    """Whether ``macs`` int8 multiply-accumulates in ``cycles`` cycles stay within the core's
    :attr:`CoreModel.peak_int8_macs_per_cycle`. Returns the check (``.ok``, ``.message``);
    raises :class:`PeakExceeded` instead when ``raise_on_exceed`` and it is above."""
    model = get_core(core)
    if cycles <= 0:
        raise CycleModelError(f"{cycles} cycles: a peak check needs a positive cycle count; estimate the "
                              "segment first (estimate_cycles)")
    check = PeakCheck(int(macs), float(cycles), macs / cycles, model.peak_int8_macs_per_cycle, model.name)
    if raise_on_exceed and not check.ok:
        raise PeakExceeded(check.message)
    return check


def format_estimate(est: CycleEstimate, *, clock_hz: float | None = None) -> str:
    """A Markdown report: cycles per class, wait states, adjustments, unclassified instructions
    and the assumptions."""
    lines = [f"cycle estimate ({est.core}{', ' + est.mcu if est.mcu else ''}): {est.cycles:,d} cycles"
             + (f" = {ms(est.cycles, clock_hz):.3f} ms at {clock_hz / 1e6:g} MHz" if clock_hz else ""),
             "| class | executions | cycles |", "|---|---|---|"]
    for cls, cc in est.by_class.items():
        lines.append(f"| {cls} | {cc.instructions:,d} | {cc.cycles:,.0f} |")
    for key, val in est.adjustments.items():
        lines.append(f"| ({key}) | | {val:+,.0f} |")
    w = est.wait_states
    lines.append(f"| (wait states: fetch {w.instruction_fetch:,.0f}, literal {w.literal_loads:,.0f}, flash data "
                 f"{w.flash_data:,.0f}, SRAM {w.sram:,.0f}) | | {est.wait_state_cycles:+,.0f} |")
    lines.append(f"| unclassified | {est.unclassified_instructions:,d} | not priced |")
    for name, n in sorted(est.unclassified.items(), key=lambda kv: -kv[1]):
        lines.append(f"|   {name} | {n:,d} | |")
    lines.append(f"branches: {est.taken_branches:,d} taken, {est.not_taken_branches:,d} not taken (conditional)")
    lines += [f"- {a}" for a in est.assumptions]
    return "\n".join(lines)
