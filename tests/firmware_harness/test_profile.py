"""``asc profile``: exact per-operator counts priced by the cycle model, per microcontroller.

The tiny export on the Cortex-M4 under QEMU: rows that add up, milliseconds that follow from
the cycles and the clock, a front end per frame, and the export's arena probe giving the same
latency for the fit table.
"""
from __future__ import annotations

import pytest

from firmware_harness.profiling.profile import export_sources, profile_sources, read_profile_report
from tests.firmware_harness.conftest import QUIET, require_targets
from tflite_export.mcu_targets import MCU_TARGETS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def m4_counted(tiny_export, tmp_path_factory):
    """(profile folder, report, the raw counts per target)."""
    require_targets("cortex-m4")
    out = tmp_path_factory.mktemp("profile") / "profile"
    raw: dict = {}
    report = profile_sources(export_sources(tiny_export, **QUIET), out, source=str(tiny_export),
                             targets=("cortex-m4",), raw_runs=raw, **QUIET)
    return out, report, raw


@pytest.fixture(scope="module")
def m4_profile(m4_counted):
    out, report, _ = m4_counted
    return out, report


def test_operator_rows_and_the_interpreter_add_up_to_the_invoke(m4_profile):
    _, report = m4_profile
    (t,) = report.targets
    assert report.passed and t.core == "cortex-m4"
    assert sum(o.instructions for o in t.operators) + t.interpreter_instructions == t.invoke_instructions
    assert 0 < t.interpreter_instructions < 0.01 * t.invoke_instructions
    assert abs(sum(o.share for o in t.operators) - 1) < 0.02
    assert all(o.macs_per_cycle <= t.peak_int8_macs_per_cycle for o in t.operators)


def test_the_tables_cycle_rows_add_up_to_the_invoke(m4_profile):
    _, report = m4_profile
    (t,) = report.targets
    assert t.interpreter_cycles > 0
    assert sum(o.cycles for o in t.operators) + t.interpreter_cycles == pytest.approx(t.invoke_cycles, abs=0.1 * (
        len(t.operators) + 2))  # each figure rounded to 0.1 cycle
    assert sum(o.share for o in t.operators) + t.interpreter_cycles / t.invoke_cycles == pytest.approx(1, abs=1e-6)


def test_on_a_simulated_mcu_every_row_carries_its_memory_and_they_add_up_to_its_cycles(m4_counted):
    from firmware_harness.profiling.profile import mcu_estimate, operators_estimate

    _, report, raw = m4_counted
    counted = raw["cortex-m4"]
    for m in (m for m in report.mcus if m.cache_simulated):
        est = mcu_estimate(m.mcu, counted.run, counted.disasm)
        assert est.memory_per_row and est.wait_state_cycles > 0
        assert sum(r.cycles for r in est.rows) == pytest.approx(m.cycles_per_inference, abs=1)
        operators = operators_estimate(m.mcu, counted.run, counted.disasm).cycles
        assert operators == pytest.approx(sum(r.cycles for r in est.rows if r.kind == "operator"), rel=1e-12)
        assert m.operator_cycles_per_inference == round(operators)
        # the report's per-operator flash wait cycles are the rows' simulated flash misses
        by_op = {o.op_index: o.flash_wait_cycles for o in m.operators}
        for r in (r for r in est.rows if r.kind == "operator"):
            assert r.wait_state_cycles == pytest.approx(by_op[r.op_index])  # no SRAM wait states on these MCUs


def test_every_mcu_of_the_core_gets_milliseconds_from_cycles_and_clock(m4_profile):
    _, report = m4_profile
    names = {m.mcu for m in report.mcus}
    assert names == {n for n, m in MCU_TARGETS.items() if m.core == "cortex-m4"}
    for m in report.mcus:
        assert m.ms_per_inference == pytest.approx(1000 * m.cycles_per_inference / m.clock_hz, rel=1e-3)
        assert m.cycles_per_inference >= report.targets[0].invoke_cycles  # wait states only add
        assert m.frontend_ms_per_frame > 0 and m.hop_ms == pytest.approx(1000 * 1536 / 44100, rel=1e-3)
        clip_ms = m.frontend_ms_per_frame * report.targets[0].frontend_frames + m.ms_per_clip
        assert m.real_time_factor == pytest.approx(clip_ms / 2000, rel=1e-3)  # the tiny clips are 2 s
        # the weights' and constants' flash reads are counted (QEMU plugin) and priced, for the
        # inference and the front end alike: through the simulated caches where the row documents them
        assert not any("not counted" in a for a in m.assumptions), m.assumptions
        assert m.cache_simulated == (MCU_TARGETS[m.mcu].icache is not None)
        priced = (f"{m.mcu}: flash caches simulated access by access" if m.cache_simulated else
                  f"{m.mcu}: data reads from flash (weights, constants; literal pools excluded) priced as streamed")
        assert any(a.startswith(priced) for a in m.assumptions), m.assumptions


def test_simulated_caches_give_hit_rates_per_operator(m4_profile):
    out, report = m4_profile
    (t,) = report.targets
    md = (out / "profile_report.md").read_text()
    for m in (m for m in report.mcus if m.cache_simulated):
        assert [o.op_index for o in m.operators] == [o.op_index for o in t.operators]
        assert all(0 <= o.fetch_hit_rate <= 1 and o.flash_wait_cycles >= 0 for o in m.operators)
        assert 0 < m.fetch_hit_rate <= 1 and f"## {m.mcu}: flash caches per operator (simulated)" in md


def test_report_files(m4_profile):
    out, report = m4_profile
    assert read_profile_report(out) == report
    md = (out / "profile_report.md").read_text()
    assert "| 0 | CONV_2D |" in md and "not measured on a chip" in md
    assert (out / "profile_operators.png").read_bytes()[:4] == b"\x89PNG"


def test_the_arena_probe_gives_the_fit_tables_latency(tiny_export, m4_profile):
    from firmware_harness.firmware.check import arena_probes

    _, report = m4_profile
    probe = arena_probes(("cortex-m4",), **QUIET)["cortex-m4"](tiny_export)
    by_mcu = {m.mcu: m.ms_per_inference for m in report.mcus}
    assert set(probe.estimated_ms) == set(by_mcu)
    for name, ms in probe.estimated_ms.items():  # without the profiler's marks: a hair less
        assert ms == pytest.approx(by_mcu[name], rel=0.01)
