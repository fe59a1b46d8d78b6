"""The flash caches simulated inside the profiling plugin on a real run (the tiny export on
cortex-m4 under QEMU): an unbounded cache reproduces the bounded model's compulsory misses
exactly, two runs give identical cache counts, and the counts reach the segments of every MCU of
the core. (The simulator itself is tested on hand-made streams in test_cache_model.py.)"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from firmware_harness.profiling import execution_profile, instruction_counts, qemu_plugin
from firmware_harness.profiling.disassembly import disassemble
from firmware_harness.profiling.elf_symbols import flash_ranges
from firmware_harness.profiling.instructions import classify
from firmware_harness.profiling.memory_system import simulated_flash_cycles, wait_state_cycles
from tests.firmware_harness.conftest import QUIET
from tests.firmware_harness.profiling.test_icount import _build
from tflite_export.mcu_targets import get_mcu_target

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def m4(tiny_export, tmp_path_factory):
    prog = _build(tiny_export, "cortex-m4", tmp_path_factory.mktemp("cache_m4"))
    header = (tiny_export / "model_input.h").read_text()
    n = math.prod(int(header.split(f"constexpr int {k} = ")[1].split(";")[0]) for k in ("kNumMels", "kNumFrames"))
    inputs = np.random.default_rng(0).integers(-128, 128, size=(2, n)).astype(np.int8)
    return prog, inputs, (tiny_export / "model.tflite").read_bytes()


def _unbounded_spec(prog, line: int) -> str:
    """A direct-mapped cache with a line for every ``line`` bytes of the image's flash: no two
    flash lines share a set, so only the first touch of each line misses."""
    ranges = flash_ranges(prog.path, map_file=prog.map_file, objdump=f"{prog.target.prefix}objdump")
    lines = -(-(max(hi for _, hi in ranges) - min(lo for lo, _ in ranges)) // line) + 1
    return f"{lines}x{line}x1x{line}/{lines}x{line}x1x{line}/0"


def test_an_unbounded_cache_misses_exactly_the_compulsory_lines_of_the_bounded_model(m4, tmp_path):
    prog, inputs, model = m4
    mcu = get_mcu_target("stm32f407")  # compulsory misses priced per flash_read_bytes line
    run = instruction_counts.profile_inferences(
        prog, tmp_path, int8=inputs[:1], model=model, mode="invoke",
        cache_specs={"unbounded": _unbounded_spec(prog, mcu.flash_read_bytes)}, **QUIET)
    counts, _ = execution_profile.merge_counts(run.segments)
    simulated = execution_profile.merge_cache_counts(run.segments, "unbounded")
    disasm = disassemble(prog.path, objdump=f"{prog.target.prefix}objdump")
    classes = {a: classify(disasm[a]) for a in counts if a in disasm}
    bounded = wait_state_cycles(counts, disasm, classes, mcu=mcu, flash_data_reads=0, flash_data_bytes=0,
                                assumptions=[])
    fetch, _ = simulated_flash_cycles(mcu, simulated)
    assert simulated.fetch_misses > 0 and simulated.fetch_prefetch_hits == 0
    assert fetch == bounded.instruction_fetch
    assert 0 < simulated.data_misses <= simulated.data_reads


def test_two_runs_give_identical_cache_counts_for_every_mcu_of_the_core(m4, tmp_path):
    prog, inputs, model = m4
    a, b = (instruction_counts.profile_inferences(prog, tmp_path / f"run{i}", int8=inputs, model=model, **QUIET)
            for i in (0, 1))
    assert set(a.cache_specs) == set(qemu_plugin.simulated_mcus("cortex-m4")) and a.cache_specs
    for s, t in zip(a.deterministic_segments(), b.deterministic_segments()):
        assert s.cache == t.cache and set(s.cache) == set(a.cache_specs)
    whole = execution_profile.merge_cache_counts(a.invoke_segments(1), "nucleo-l4r5zi")
    assert whole.fetches > 0 and whole.data_reads > 0


def test_the_simulation_leaves_the_instruction_counts_unchanged(m4, tmp_path):
    prog, inputs, model = m4
    plain = instruction_counts.profile_inferences(prog, tmp_path / "plain", int8=inputs[:1], model=model,
                                                  cache_specs={}, **QUIET)
    simulated = instruction_counts.profile_inferences(prog, tmp_path / "sim", int8=inputs[:1], model=model, **QUIET)
    assert plain.cache_specs == {} and simulated.cache_specs
    for s, t in zip(plain.deterministic_segments(), simulated.deterministic_segments()):
        assert dataclasses.replace(t, cache={}) == s
