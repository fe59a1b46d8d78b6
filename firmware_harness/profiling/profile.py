"""``asc profile SOURCE``: how fast the model is on a chip, estimated from what the image executes.

For each Cortex-M firmware target (:mod:`firmware_harness.builds.targets`), the program is built from the
model's C sources and run under QEMU with the instruction-counting plugin
(:mod:`firmware_harness.profiling.instruction_counts`): exact instruction counts per operator, per Invoke and per
front-end frame. The cycle model (:mod:`firmware_harness.profiling.cycle_estimate`) turns each operator's
executed instruction mix into core cycles (zero wait states: the target's row), and each
microcontroller of :mod:`tflite_export.mcu_targets` whose core was profiled into cycles with its
documented flash and SRAM wait states, then milliseconds at its clock:

* per operator: index, type, output shape, MACs, instructions, estimated cycles, MACs per cycle
  (against the core's peak int8 MACs per cycle: an estimate above it is a bug in one of them and
  fails the profile), share of the Invoke;
* per MCU: ms per inference, per clip (all windows of a windowed model), the front end's ms per
  frame against the hop, and the real-time factor (compute time / audio time, per clip);
* per MCU whose flash caches were simulated in the same QEMU pass (the documented geometry of its
  row, ``firmware/qemu_plugin/cache_model.c``): the instruction-fetch and flash-data hit rates and
  the flash wait cycles of each operator. The MCU figures use the last profiled Invoke, whose
  caches are warm from the Invokes before it (as in a benchmark's repeated inferences; with one
  inference, warm only from the program's start-up);
* ``profile_report.json`` / ``.md`` and ``profile_operators.png`` (time per operator).

A cycle estimate is a model, not a measurement: the report states the model's assumptions, and
``benchmarks/bench_latency.py`` checks it against published board measurements.

Inputs: ``inferences`` seeded random int8 rows (instruction counts of TFLM's int8 kernels barely
depend on the values; the report says which inputs ran) and, for a model with the exported audio
front end, one generated clip of noise streamed through it (:func:`_noise_wav`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from firmware_harness.builds import program as fw_program
from firmware_harness.builds import third_party
from firmware_harness.builds.model_sources import fit_arena_to_builds, prepare_model_sources
from firmware_harness.builds.program import build_inputs_sha256
from firmware_harness.builds.targets import get_target
from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.model_source import ModelSource
from firmware_harness.profiling.cores import get_core
from firmware_harness.profiling.cycle_estimate import estimate_cycles, ms
from firmware_harness.profiling.cycle_report import check_against_peak
from firmware_harness.profiling.disassembly import disassemble
from firmware_harness.profiling.execution_profile import (
    ExecutionProfile,
    merge_cache_counts,
    merge_counts,
    merge_flash_reads,
)
from firmware_harness.profiling.instruction_counts import profile_audio, profile_inferences
from firmware_harness.profiling.instructions import Instruction
from firmware_harness.profiling.latency import DEFAULT_PROFILE_TARGETS, PROFILE_TARGETS, input_elements
from firmware_harness.profiling.memory_system import simulated_flash_cycles
from firmware_harness.profiling.qemu_plugin import PLUGIN_DIR, simulated_mcus
from firmware_harness.profiling.segment_rows import OPERATOR, RowsEstimate, estimate_rows, invoke_rows
from firmware_harness.validation.export_validation import load_checked_export
from keras_asc import artifacts, records
from tflite_export.flatbuffer import describe_tensors, operator_macs, read_model_shared
from tflite_export import mcu_targets
from tflite_export.mcu_targets import MCU_TARGETS, get_mcu_target

#: ``--inferences``: the inputs are held in memory and each is counted under QEMU; TFLM's int8 kernels execute
#: the same instructions for every input (a difference is reported), so more inputs add time, not figures.
MAX_PROFILE_INFERENCES = 100


@dataclasses.dataclass(frozen=True)
class OperatorRow:
    op_index: int
    op_type: str
    output_shape: tuple[int, ...]
    macs: int
    instructions: int  # exact, the marking's own few excluded
    cycles: float  # core cycles at zero wait states
    macs_per_cycle: float
    share: float  # of the Invoke's cycles


@dataclasses.dataclass(frozen=True)
class TargetProfile:
    """One Cortex-M target: exact counts, and core cycles at zero wait states."""

    target: str
    core: str
    inferences: int  # profiled (the counts are of the first; the others must equal it)
    invoke_instructions: int
    interpreter_instructions: int  # TFLM's own, before, between and after the operators
    invoke_cycles: float  # the operators' and the interpreter's rows added up (segment_rows)
    operators: tuple[OperatorRow, ...]
    macs: int
    peak_int8_macs_per_cycle: float
    frontend_frames: int  # 0: no front end profiled
    frontend_instructions_per_frame: float
    frontend_cycles_per_frame: float
    unclassified_instructions: int
    qemu_seconds: float
    interpreter_cycles: float = 0.0  # TFLM's own row: invoke_cycles = operators' cycles + this


@dataclasses.dataclass(frozen=True)
class OperatorMemory:
    """One operator's simulated flash caches on one microcontroller (the last profiled Invoke)."""

    op_index: int
    op_type: str
    fetches: int  # instruction fill units fetched from flash addresses
    fetch_hit_rate: float | None  # served by the cache or the prefetch buffer; None: no fetch
    prefetch_hits: int
    data_reads: int  # data fill units read from flash (weights, constants, literal pools)
    data_hit_rate: float | None
    flash_wait_cycles: float | None  # fetch + data; None: the flash wait states are not documented


@dataclasses.dataclass(frozen=True)
class McuLatency:
    """One microcontroller: its core's profile behind its memory, at its clock."""

    mcu: str
    core: str
    target: str  # the firmware target whose image was profiled
    clock_hz: int
    cycles_per_inference: int  # wait states included
    wait_state_cycles: float
    ms_per_inference: float
    windows_per_clip: int
    ms_per_clip: float
    frontend_ms_per_frame: float | None
    hop_ms: float | None
    real_time_factor: float | None  # (front end + inferences) of a clip / the clip's duration
    assumptions: tuple[str, ...]
    operator_cycles_per_inference: int = 0  # the operators' rows with their memory, TFLM's interpreter left out
    cache_simulated: bool = False  # the MCU's flash caches were simulated (else: bounded)
    fetch_hit_rate: float | None = None  # the whole Invoke's, when simulated
    data_hit_rate: float | None = None
    operators: tuple[OperatorMemory, ...] = ()  # per operator, when simulated


@dataclasses.dataclass(frozen=True)
class ProfileReport(records.PassedWithoutFailures):
    """``profile_report.json``."""

    source: str
    tflite_sha256: str
    inputs_sha256: str  # profile_inputs_sha256: what the figures depend on besides the data
    inputs: str  # what the profiled inferences ran on
    targets: tuple[TargetProfile, ...]
    mcus: tuple[McuLatency, ...]
    failures: tuple[str, ...]
    seconds: float
    packages: dict[str, str]
    git_commit: str
    note: str = ("Estimated from exact instruction counts (QEMU TCG plugin) with a documented cycle model per core "
                 "(firmware_harness/profiling/cycle_estimate.py), not measured on a chip; QEMU's own run time means nothing here.")
    stage: str = "profile"


@dataclasses.dataclass(frozen=True)
class ModelSources:
    """What a profile builds: a folder of C sources the firmware program compiles, and its model."""

    folder: Path  # model_data.cc, model_settings.h, ... (an export folder, or generated for a .tflite)
    model: bytes
    windows_per_clip: int = 1
    frontend: tuple[int, int, float] | None = None  # (sample rate, hop length, clip seconds) with a front end


def _noise_wav(path: Path, *, sample_rate: int, seconds: float, seed: int = 0) -> Path:
    """A mono 24-bit WAV of seeded noise: what the front end streams when profiled."""
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(round(sample_rate * seconds)))).astype(np.float32), sample_rate,
             subtype="PCM_24")
    return path


@dataclasses.dataclass(frozen=True)
class CountedImage:
    """One firmware image counted under QEMU: what every target sharing its build is priced from."""

    run: ExecutionProfile  # the inferences, mode="ops"
    audio: ExecutionProfile | None  # one generated clip through the front end; None: no front end
    disasm: dict[int, Instruction]
    qemu_seconds: float


def count_image(name: str, sources: ModelSources, *, tree: Path, out_dir: Path, inputs: np.ndarray,
                cores: tuple[str, ...] = (), log=print) -> CountedImage:
    """Build ``sources`` for Cortex-M target ``name`` and count ``inputs`` (n, elements) int8, one
    Invoke each, and with a front end one generated clip through it; the flash caches of every MCU
    of ``name``'s core and of ``cores`` (targets sharing the build, e.g. the Cortex-M85 the M55's)
    are simulated in the same QEMU pass."""
    target = get_target(name)
    if name not in PROFILE_TARGETS:
        raise FirmwareError(f"target {name} cannot be profiled: instruction counts come from a Cortex-M image under "
                            f"QEMU; one of {', '.join(PROFILE_TARGETS)}")
    caches = {m: spec for core in (name, *cores) for m, spec in simulated_mcus(core).items()}
    prog = fw_program.build_program(sources.folder, target, out_dir, tree=tree, log=log)
    t0 = time.perf_counter()
    log(f"profile: {name}: counting {len(inputs)} inference(s) under QEMU")
    run = profile_inferences(prog, out_dir / "work", int8=inputs, model=sources.model, mode="ops",
                             cache_specs=caches, log=log)
    first = run.invokes[0]
    for other in run.invokes[1:]:
        if [o.net_instructions for o in other.operators] != [o.net_instructions for o in first.operators]:
            log(f"profile: {name}: instruction counts differ between inputs (data-dependent kernels); the table "
                "shows the first inference")
    audio = None
    if sources.frontend is not None:
        rate, _, seconds = sources.frontend
        wav = _noise_wav(out_dir / "work" / "noise.wav", sample_rate=rate, seconds=seconds)
        log(f"profile: {name}: counting the front end on one clip")
        audio = profile_audio(prog, out_dir / "work", wav_paths=[wav], n_mels=_n_mels(sources.folder),
                              model=sources.model, mode="invoke", cache_specs=caches, log=log)
    return CountedImage(run=run, audio=audio, disasm=disassemble(prog.path, objdump=f"{target.prefix}objdump"),
                        qemu_seconds=round(time.perf_counter() - t0, 1))


def frontend_segments(audio: ExecutionProfile) -> list:
    """The front end's segments of the profiled clip."""
    return [s for s in audio.segments if s.kind == "frontend" and s.clip == 0]


def price_target(name: str, counted: CountedImage, sources: ModelSources) -> TargetProfile:
    """Target ``name``'s profile (core cycles at zero wait states) of ``counted``: every operator
    and the interpreter priced on its own counts (:func:`~firmware_harness.profiling.segment_rows.estimate_rows`),
    so the rows add up to the Invoke exactly."""
    core = get_core(name)
    run, disasm = counted.run, counted.disasm
    first = run.invokes[0]
    fb = read_model_shared(sources.model)
    tensors = describe_tensors(fb)
    macs = operator_macs(fb)
    est = estimate_rows(invoke_rows(run, 0), disasm, core=core)
    total = est.core_cycles
    unclassified = est.unclassified_instructions
    operators = []
    for op in first.operators:
        c, m = est.row(op.op_index).core_cycles, macs[op.op_index]
        operators.append(OperatorRow(
            op_index=op.op_index, op_type=op.op_type,
            output_shape=tuple(tensors[fb.subgraphs[0].operators[op.op_index].outputs[0]].shape),
            macs=m, instructions=op.net_instructions, cycles=round(c, 1), macs_per_cycle=m / c if c else 0.0,
            share=c / total if total else 0.0))
    fe_frames, fe_instr, fe_cycles = 0, 0.0, 0.0
    if counted.audio is not None:
        fe = counted.audio.frontend[0]
        fe_frames = len(fe.frame_instructions)
        counts, taken = merge_counts(frontend_segments(counted.audio))
        fe_est = estimate_cycles(counts, taken, disasm, core=core)
        fe_instr, fe_cycles = fe.instructions / fe_frames, fe_est.core_cycles / fe_frames
        unclassified += fe_est.unclassified_instructions
    return TargetProfile(
        target=name, core=core.name, inferences=len(run.invokes), invoke_instructions=first.net_instructions,
        # the interpreter's own row makes the rows add up exactly to the Invoke (marking excluded everywhere)
        interpreter_instructions=first.net_instructions - sum(o.instructions for o in operators),
        invoke_cycles=round(total, 1), interpreter_cycles=round(total - est.kind_cycles(OPERATOR), 1),
        operators=tuple(operators), macs=int(sum(macs)), peak_int8_macs_per_cycle=core.peak_int8_macs_per_cycle,
        frontend_frames=fe_frames, frontend_instructions_per_frame=round(fe_instr, 1),
        frontend_cycles_per_frame=round(fe_cycles, 1), unclassified_instructions=unclassified,
        qemu_seconds=counted.qemu_seconds)


def _n_mels(folder: Path) -> int:
    text = (Path(folder) / "model_input.h").read_text()
    return int(re.search(r"constexpr int kNumMels = (\d+);", text).group(1))


def mcu_estimate(mcu_name: str, run: ExecutionProfile, disasm) -> RowsEstimate:
    """The last profiled Invoke of ``run`` (caches warm from the ones before) on microcontroller
    ``mcu_name``: every operator and the interpreter on its own counts, behind the MCU's memory
    (per row from the simulated caches when the plugin simulated them). What ``asc profile`` and
    ``benchmarks/bench_latency.py`` price."""
    mcu = get_mcu_target(mcu_name)
    return estimate_rows(invoke_rows(run, len(run.invokes) - 1), disasm, core=mcu.core, mcu=mcu)


def operators_estimate(mcu_name: str, run: ExecutionProfile, disasm) -> RowsEstimate:
    """:func:`mcu_estimate` of the operators' rows alone (TFLM's interpreter left out: what an
    ahead-of-time runtime calling the same kernels would take)."""
    mcu = get_mcu_target(mcu_name)
    rows = [r for r in invoke_rows(run, len(run.invokes) - 1) if r.kind == OPERATOR]
    return estimate_rows(rows, disasm, core=mcu.core, mcu=mcu)


def mcu_latency(mcu_name: str, target: TargetProfile, counted: CountedImage, sources: ModelSources) -> McuLatency:
    """``target``'s counts behind microcontroller ``mcu_name``'s memory, at its clock."""
    mcu = get_mcu_target(mcu_name)
    run, audio, disasm = counted.run, counted.audio, counted.disasm
    steady = len(run.invokes) - 1  # the last Invoke: caches warm from the ones before
    est = mcu_estimate(mcu_name, run, disasm)
    cache = merge_cache_counts(run.invoke_segments(steady), mcu.name)
    per_inference = ms(est.cycles, mcu.clock_hz)
    per_clip = per_inference * sources.windows_per_clip
    fe_ms = hop_ms = rtf = None
    assumptions = list(est.assumptions)
    if audio is not None and sources.frontend is not None:
        rate, hop, seconds = sources.frontend
        fe_segments = frontend_segments(audio)
        counts, taken = merge_counts(fe_segments)
        reads, nbytes = merge_flash_reads(fe_segments)
        fe = estimate_cycles(counts, taken, disasm, mcu=mcu, flash_data_reads=reads, flash_data_bytes=nbytes,
                             cache=merge_cache_counts(fe_segments, mcu.name))
        frames = target.frontend_frames
        fe_ms = ms(fe.cycles, mcu.clock_hz) / frames
        hop_ms = 1000.0 * hop / rate
        rtf = (fe_ms * frames + per_clip) / (1000.0 * seconds)
        assumptions += [a for a in fe.assumptions if a not in assumptions]
    return McuLatency(mcu=mcu.name, core=mcu.core, target=target.target, clock_hz=mcu.clock_hz,
                      cycles_per_inference=int(round(est.cycles)), wait_state_cycles=round(est.wait_state_cycles, 1),
                      ms_per_inference=round(per_inference, 3), windows_per_clip=sources.windows_per_clip,
                      ms_per_clip=round(per_clip, 3), frontend_ms_per_frame=None if fe_ms is None else round(fe_ms, 4),
                      hop_ms=None if hop_ms is None else round(hop_ms, 3),
                      real_time_factor=None if rtf is None else round(rtf, 4), assumptions=tuple(assumptions),
                      operator_cycles_per_inference=int(round(operators_estimate(mcu_name, run, disasm).cycles)),
                      cache_simulated=cache is not None,
                      fetch_hit_rate=None if cache is None else _rounded(cache.fetch_hit_rate),
                      data_hit_rate=None if cache is None else _rounded(cache.data_hit_rate),
                      operators=() if cache is None else operator_memory(mcu_name, run, steady))


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 5)


def operator_memory(mcu_name: str, run: ExecutionProfile, invoke: int) -> tuple[OperatorMemory, ...]:
    """Per operator of Invoke ``invoke`` of ``run`` (a ``mode="ops"`` profile), microcontroller
    ``mcu_name``'s simulated cache counts and their flash wait cycles."""
    mcu = get_mcu_target(mcu_name)
    rows = []
    for op in run.invokes[invoke].operators:
        c = merge_cache_counts(run.operator_segments(op.op_index, invoke=invoke), mcu_name)
        priced = simulated_flash_cycles(mcu, c)
        rows.append(OperatorMemory(op_index=op.op_index, op_type=op.op_type, fetches=c.fetches,
                                   fetch_hit_rate=_rounded(c.fetch_hit_rate), prefetch_hits=c.fetch_prefetch_hits,
                                   data_reads=c.data_reads, data_hit_rate=_rounded(c.data_hit_rate),
                                   flash_wait_cycles=None if priced is None else sum(priced)))
    return tuple(rows)


def mcus_for(targets: tuple[str, ...], mcus: tuple[str, ...] | None) -> tuple[str, ...]:
    """The microcontrollers to report: ``mcus`` (each needs its core's target among ``targets``),
    or every one whose core was profiled."""
    if mcus is None:
        return tuple(n for n, m in MCU_TARGETS.items() if m.core in targets)
    missing = [f"{n} ({get_mcu_target(n).core})" for n in mcus if get_mcu_target(n).core not in targets]
    if missing:
        raise FirmwareError(f"--mcu {','.join(mcus)}: {', '.join(missing)} need their core profiled: add it to "
                            f"--targets (now {','.join(targets)})")
    return tuple(mcus)


def profile_sources(sources: ModelSources, out_dir: Path, *, source: str, targets: tuple[str, ...] = DEFAULT_PROFILE_TARGETS,
                    mcus: tuple[str, ...] | None = None, inferences: int = 1, seed: int = 0,
                    third_party_dir: Path | None = None, raw_runs: dict | None = None, log=print) -> ProfileReport:
    """Profile ``sources`` on ``targets`` and report ``mcus``; writes ``out_dir`` (its own folder:
    ``profile_report.json/.md``, ``profile_operators.png``, the programs) and returns the report.
    ``raw_runs``, when given, receives per target its :class:`CountedImage` for analyses beyond
    the report (``benchmarks/bench_latency.py``). Targets that share a build (``cortex-m55`` and
    ``cortex-m85``) share one QEMU run: the image is the same, only the cycle model differs."""
    t0 = time.perf_counter()
    if not 1 <= inferences <= MAX_PROFILE_INFERENCES:
        raise FirmwareError(f"inferences {inferences}: profile 1 to {MAX_PROFILE_INFERENCES} inputs (the counts of "
                            "every input must equal the first's)")
    mcus = mcus_for(targets, mcus)
    for name in targets:
        get_target(name).check_tools()
    artifacts.check_replaceable(out_dir, stage="profile", inputs=(sources.folder,))
    tp = third_party.locate_third_party(third_party_dir, log=log)
    tree = third_party.prepare_tflm_tree(tp, log=log)
    rng = np.random.default_rng(seed)
    inputs = rng.integers(-128, 128, size=(inferences, input_elements(sources.model)), dtype=np.int8)
    profiles, failures, latencies = [], [], []
    counted: dict[str, CountedImage] = {}  # build -> its count: targets sharing a build share one QEMU run
    with artifacts.staging_dir(out_dir, stage="profile", inputs=(sources.folder,)) as tmp:
        for name in targets:
            build = get_target(name).shares_build or name
            if build not in counted:
                sharing = tuple(t for t in targets if t != name and (get_target(t).shares_build or t) == build)
                counted[build] = count_image(name, sources, tree=tree, out_dir=tmp / name, inputs=inputs,
                                             cores=sharing, log=log)
            else:
                log(f"profile: {name}: the {build} build's counts, priced on the {name} (same image)")
            prof = price_target(name, counted[build], sources)
            profiles.append(prof)
            if raw_runs is not None:
                raw_runs[name] = counted[build]
            for row in prof.operators:
                check = check_against_peak(row.macs, row.cycles, prof.core) if row.cycles else None
                if check is not None and not check.ok:
                    failures.append(f"{name}: operator {row.op_index} {row.op_type}: {check.message}")
            latencies += [mcu_latency(m, prof, counted[build], sources) for m in mcus
                          if get_mcu_target(m).core == prof.core]
        report = ProfileReport(
            source=source, tflite_sha256=artifacts.sha256_bytes(sources.model),
            inputs_sha256=profile_inputs_sha256(sources, targets, inferences=inferences, seed=seed, tp=tp),
            inputs=f"{inferences} seeded random int8 input(s) (seed {seed})"
                   + (", one generated noise clip through the front end" if sources.frontend else ""),
            targets=tuple(profiles), mcus=tuple(latencies), failures=tuple(failures),
            seconds=round(time.perf_counter() - t0, 1), **artifacts.provenance())
        records.write(tmp / "profile_report.json", report)
        artifacts.atomic_write_text(tmp / "profile_report.md", format_profile(report))
        plot_operators(report, tmp / "profile_operators.png")
    return report


def profile_inputs_sha256(sources: ModelSources, targets: tuple[str, ...], *, inferences: int = 1, seed: int = 0,
                          tp: third_party.ThirdParty | None = None) -> str:
    """Hash of everything a profile's figures depend on: the model's C sources, the firmware
    program and its build flags (:func:`firmware_harness.builds.program.build_inputs_sha256`), the
    counting plugin, the cycle model, the MCU table, the inputs' count and seed."""

    tp = tp or third_party.locate_third_party(log=lambda *_: None)
    h = hashlib.sha256(build_inputs_sha256(sources.folder, tp, targets).encode())
    here = Path(__file__).resolve().parent  # firmware_harness/profiling: this stage, the plugin driver, the cycle model
    for f in [*sorted(here.glob("*.py")), Path(mcu_targets.__file__), *sorted(PLUGIN_DIR.glob("*"))]:
        h.update(f.name.encode() + f.read_bytes())
    h.update(f"{inferences},{seed}".encode())
    return h.hexdigest()


def read_profile_report(folder: Path) -> ProfileReport:
    return records.read(ProfileReport, Path(folder) / "profile_report.json")


def format_profile(r: ProfileReport) -> str:
    lines = [f"# Latency profile of {r.source}", "", f"Model: {r.source}, sha256 {r.tflite_sha256}.", "", r.note, "",
             f"Inputs: {r.inputs}.", "",
             f"Result: **{'PASSED' if r.passed else 'FAILED'}**", ""]
    lines += [f"- FAILURE: {f}" for f in r.failures]
    if r.mcus:
        lines += ["## Per microcontroller (estimated)", "",
                  "| MCU | core | clock | cycles per inference | ms per inference | ms per clip | front end ms per "
                  "frame / hop ms | real-time factor |", "|---|---|---|---|---|---|---|---|"]
        for m in r.mcus:
            fe = "-" if m.frontend_ms_per_frame is None else f"{m.frontend_ms_per_frame:.3f} / {m.hop_ms:.1f}"
            rtf = "-" if m.real_time_factor is None else f"{m.real_time_factor:.3f}"
            lines.append(f"| {m.mcu} | {m.core} | {m.clock_hz / 1e6:.0f} MHz | {m.cycles_per_inference:,d} | "
                         f"{m.ms_per_inference:.2f} | {m.ms_per_clip:.2f} ({m.windows_per_clip} inference(s)) | {fe} | "
                         f"{rtf} |")
        lines += ["", "Real-time factor: the front end's and the model's time for one clip over the clip's duration "
                      "(below 1: keeps up)."]
    for m in r.mcus:
        if m.operators:
            lines += ["", format_operator_memory(m)]
    for t in r.targets:
        lines += ["", f"## {t.target} ({t.core}): {t.invoke_instructions:,d} instructions, "
                      f"{t.invoke_cycles:,.0f} cycles per inference at zero wait states", "",
                  f"{t.macs:,d} MACs; {t.macs / t.invoke_cycles if t.invoke_cycles else 0:.3f} MACs per cycle over the "
                  f"whole Invoke (peak of the core: {t.peak_int8_macs_per_cycle:g} int8 MACs per cycle). "
                  f"QEMU took {t.qemu_seconds} s (host time, not the chip's).", "",
                  "| # | operator | output shape | MACs | instructions | est. cycles | MACs per cycle | share |",
                  "|---|---|---|---|---|---|---|---|"]
        for o in t.operators:
            lines.append(f"| {o.op_index} | {o.op_type} | {'x'.join(map(str, o.output_shape))} | {o.macs:,d} | "
                         f"{o.instructions:,d} | {o.cycles:,.0f} | {o.macs_per_cycle:.3f} | {o.share:.1%} |")
        lines.append(f"| | interpreter (TFLM between operators) | | | {t.interpreter_instructions:,d} | "
                     f"{t.interpreter_cycles:,.0f} | | "
                     f"{t.interpreter_cycles / t.invoke_cycles if t.invoke_cycles else 0:.1%} |")
        if t.frontend_frames:
            lines.append(f"\nFront end: {t.frontend_instructions_per_frame:,.0f} instructions, "
                         f"{t.frontend_cycles_per_frame:,.0f} cycles per frame ({t.frontend_frames} frames).")
        if t.unclassified_instructions:
            lines.append(f"\nInstructions the cycle model could not price: {t.unclassified_instructions:,d}.")
    assumptions = sorted({a for m in r.mcus for a in m.assumptions})
    if assumptions:
        lines += ["", "## Assumptions of the cycle model", ""] + [f"- {a}" for a in assumptions]
    return "\n".join(lines) + "\n"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def format_operator_memory(m: McuLatency) -> str:
    """The per-operator table of ``m``'s simulated flash caches (Markdown)."""
    lines = [f"## {m.mcu}: flash caches per operator (simulated)", "",
             f"Whole Invoke: instruction fetch hit rate {_pct(m.fetch_hit_rate)}, flash data hit rate "
             f"{_pct(m.data_hit_rate)} (hits include the prefetch buffer's). Counts are of fill units, one flash "
             "access each.", "",
             "| # | operator | fetches | fetch hit rate | prefetch hits | flash data reads | data hit rate | "
             "flash wait cycles |", "|---|---|---|---|---|---|---|---|"]
    for o in m.operators:
        wait = "not priced" if o.flash_wait_cycles is None else f"{o.flash_wait_cycles:,.0f}"
        lines.append(f"| {o.op_index} | {o.op_type} | {o.fetches:,d} | {_pct(o.fetch_hit_rate)} | {o.prefetch_hits:,d} | "
                     f"{o.data_reads:,d} | {_pct(o.data_hit_rate)} | {wait} |")
    return "\n".join(lines)


def plot_operators(r: ProfileReport, path: Path) -> None:
    import matplotlib  # heavy: only when a profile is plotted

    """``profile_operators.png``: estimated cycles per operator, one panel per target."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: after the backend is chosen

    fig, axes = plt.subplots(len(r.targets), 1, figsize=(9, 0.9 + 0.28 * max(len(t.operators) for t in r.targets)
                                                            * len(r.targets)), squeeze=False)
    for ax, t in zip(axes[:, 0], r.targets):
        labels = [f"{o.op_index} {o.op_type}" for o in t.operators]
        ax.barh(range(len(labels)), [o.cycles / 1e6 for o in t.operators], color="#4878a8")
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("estimated M cycles (zero wait states)")
        ax.set_title(f"{t.target}: {t.invoke_cycles / 1e6:.1f} M cycles per inference (estimate)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tflite_sources(model_path: Path | ModelSource, folder: Path, *, targets: tuple[str, ...],
                   third_party_dir: Path | None = None, log=print) -> ModelSources:
    """Any int8 ``.tflite`` (a path, or a resolved :class:`~firmware_harness.model_source.ModelSource`:
    its bytes as read once) as profile sources: its C sources generated into the empty or new
    ``folder`` (:func:`firmware_harness.builds.model_sources.prepare_model_sources`; refused there, naming the
    op, for float models, ops TFLM lacks, dynamic shapes or several subgraphs), with the header's
    arena sized for every build of ``targets`` (:func:`~firmware_harness.builds.model_sources.fit_arena_to_builds`:
    a Helium build can need more than TFLM Python plus the margin)."""
    prepared = prepare_model_sources(model_path, folder, log=log)
    tree = third_party.prepare_tflm_tree(third_party.locate_third_party(third_party_dir, log=log), log=log)
    prepared = fit_arena_to_builds(prepared, targets, tree=tree, work=Path(folder).parent / "arena-builds", log=log)
    return ModelSources(folder=prepared.folder, model=prepared.model.data)


def export_sources(export_dir: Path, *, log=print) -> ModelSources:
    """An export folder as profile sources, checked like ``asc firmware`` checks it."""
    model, exp, _ = load_checked_export(Path(export_dir) / "model.tflite")
    f = exp.features
    return ModelSources(folder=Path(export_dir), model=model, windows_per_clip=exp.windows.per_clip if exp.windows else 1,
                        frontend=(f.sample_rate, f.hop_length, f.clip_seconds))


def reusable_profile(sources, out_dir: Path, *, targets: tuple[str, ...]) -> ProfileReport | None:
    """The stored profile in ``out_dir`` when it passed and profiled the same sources and targets
    with the same code (firmware program, counting plugin, cycle model, MCU table); None when
    ``asc profile`` must run again."""
    old = artifacts.read_or_none(read_profile_report, out_dir)
    if old is not None and old.passed and old.inputs_sha256 == profile_inputs_sha256(sources, targets):
        return old
    return None
