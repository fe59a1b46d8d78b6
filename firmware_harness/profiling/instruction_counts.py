"""Exact instruction counts of the linked Cortex-M firmware, per operator, per Invoke and per
front-end frame, from the image run under ``qemu-system-arm`` with a TCG plugin of our own.


**Mechanism.** The program (``firmware/main.cc --profile ops``) calls tiny never-inlined mark
functions (``firmware/asc_profile.h``: ``AscMarkInvokeBegin``, ``AscMarkOpBegin``, ...) at every
boundary: around each ``Invoke``, at TFLM's per-operator profiler events (``BeginEvent`` /
``EndEvent`` of a ``tflite::MicroProfilerInterface`` handed to the ``MicroInterpreter``;
TFLM's ``MicroInterpreterGraph::InvokeSubgraph`` emits them for every operator because our
flags do not define ``TF_LITE_STRIP_ERROR_STRINGS``), around every front-end call and at every
frame the front end emits (``--wav-list``). Their addresses come from the ELF
(``arm-none-eabi-nm``) and go to the plugin (``firmware/qemu_plugin/icount_plugin.c``), which
starts a new *segment* every time the translation block (TB) at a mark address executes. Per
segment it records each executed TB's execution count and how often the next TB did not start
at the TB's fall-through address; the TBs' instruction addresses are recorded once, at
translation. QEMU also adds 1 to an inline counter before every executed instruction
(independently of the plugin's bookkeeping); its value at each segment start lets this module
check every segment's total (see *Invariants*).

"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from firmware_harness.builds import program as fw_program
from firmware_harness.builds.program import Program
from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.profiling.elf_symbols import FunctionTable, flash_ranges, mark_addresses, read_functions
from firmware_harness.profiling.execution_profile import ExecutionProfile
from firmware_harness.profiling.labelling import label_profile
from firmware_harness.profiling.qemu_plugin import MODES, build_plugin, read_plugin_output, simulated_mcus
from tflite_export.flatbuffer import operator_names, read_model_shared


def _prepare(program: Program, mode: str, *, count_flash_reads: bool,
             log) -> tuple[Path, FunctionTable, tuple[int, ...], tuple[tuple[int, int], ...]]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if not program.target.emulated:
        raise FirmwareError(f"target {program.target.name} runs natively: instruction counts need a Cortex-M target, "
                            "run under qemu-system-arm (cortex-m4, cortex-m7, cortex-m33, cortex-m55)")
    plugin = build_plugin(log=log)
    functions = read_functions(program.path, nm=f"{program.target.prefix}nm")
    flash = (flash_ranges(program.path, map_file=program.map_file, objdump=f"{program.target.prefix}objdump")
             if count_flash_reads else ())
    return plugin, functions, mark_addresses(functions, program.path), flash


def _qemu_args(plugin: Path, marks: Sequence[int], out_name: str,
               flash: Sequence[tuple[int, int]] = (), caches: Sequence[str] = ()) -> list[str]:
    # QEMU's option syntax: a comma inside a value is written twice
    spec = ",".join([str(plugin).replace(",", ",,"), f"out={out_name}", *(f"mark=0x{a:x}" for a in marks),
                     *(f"flash=0x{lo:x}:0x{hi:x}" for lo, hi in flash), *(f"cache={c}" for c in caches)])
    return ["-plugin", spec]


def _cache_specs(program: Program, flash: Sequence[tuple[int, int]],
                 cache_specs: dict[str, str] | None) -> dict[str, str]:
    """The memory systems to simulate: ``cache_specs``, or every MCU of the program's core with a
    documented cache (:func:`simulated_mcus`); none without flash ranges (nothing is read from flash)."""
    if not flash:
        return {}
    return dict(simulated_mcus(program.target.name) if cache_specs is None else cache_specs)


def _run(plugin: Path, call):
    """``call()`` (a program run with the plugin); a plugin QEMU refuses is named with the fix."""
    try:
        return call()
    except FirmwareError as e:
        if "Could not load plugin" not in str(e):
            raise
        raise FirmwareError(
            f"qemu-system-arm could not load {plugin} (firmware/qemu_plugin/icount_plugin.c, built for QEMU 7.2's "
            f"plugin API version 1): {' '.join(str(e).split())[-600:]} If this QEMU supports other API versions, declare one it "
            "accepts in firmware/qemu_plugin/qemu_plugin_api.h (ASC_QEMU_PLUGIN_API_VERSION) after checking that "
            "the declarations there still match its qemu-plugin.h; qemu_plugin.build_plugin rebuilds it") from None


def _op_types(model: bytes) -> list[str]:
    return operator_names(read_model_shared(model))


def _profiled_run(program: Program, work: Path, *, model: bytes, mode: str, count_flash_reads: bool,
                  cache_specs: dict[str, str] | None, log, run) -> tuple[ExecutionProfile, object]:
    """``run(work, qemu_args)`` (a run of ``program`` in ``work``) under QEMU with the plugin, its counts
    read, labelled and checked: (the profile, what ``run`` returned)."""
    plugin, functions, marks, flash = _prepare(program, mode, count_flash_reads=count_flash_reads, log=log)
    caches = _cache_specs(program, flash, cache_specs)
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = work / "icount.bin"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    result = _run(plugin, lambda: run(work, _qemu_args(plugin, marks, out.name, flash, tuple(caches.values()))))
    wall = time.perf_counter() - t0
    raw = read_plugin_output(out)
    out.unlink()
    return label_profile(raw, path=out, functions=functions, op_types=_op_types(model), mode=mode,
                         target=program.target.name, outputs=result.outputs, wall=wall, cache_specs=caches), result


def profile_inferences(program: Program, work: Path, *, int8: np.ndarray, model: bytes, mode: str = "ops",
                       count_flash_reads: bool = True, cache_specs: dict[str, str] | None = None,
                       timeout: float | None = None, log=print) -> ExecutionProfile:
    """Run ``program`` (a Cortex-M build of ``model``, the export's ``.tflite`` bytes) under QEMU
    with the plugin on ``int8`` (inferences, input elements), one Invoke per row, and return the
    labelled, checked counts. ``mode="ops"``: a segment per operator; ``"invoke"``: whole Invokes
    with the interpreter exactly as in a normal run. ``count_flash_reads``: also count each
    segment's data reads from the image's flash (:func:`flash_ranges`; False: no memory callbacks,
    the segments' flash counts are None) and simulate the flash caches of ``cache_specs`` (MCU name
    -> the plugin's ``cache=`` argument; None: every MCU of the program's core with a documented
    geometry, :func:`~firmware_harness.profiling.qemu_plugin.simulated_mcus`) in the same run."""
    int8 = np.asarray(int8, np.int8).reshape(len(int8), -1)
    profile, _ = _profiled_run(program, work, model=model, mode=mode, count_flash_reads=count_flash_reads,
                               cache_specs=cache_specs, log=log, run=lambda work, qemu_args: fw_program.run_program(
                                   program, work, int8=int8, extra_args=["--profile", mode], qemu_args=qemu_args,
                                   timeout=timeout or 300 + 60 * len(int8)))
    if len(profile.invokes) != len(int8):
        raise FirmwareError(f"{program.path}: {len(profile.invokes)} Invokes counted for {len(int8)} inputs")
    return profile


def profile_audio(program: Program, work: Path, *, wav_paths: Sequence[Path], n_mels: int, model: bytes,
                  mode: str = "ops", chunk: int | None = None, count_flash_reads: bool = True,
                  cache_specs: dict[str, str] | None = None, timeout: float | None = None,
                  log=print) -> ExecutionProfile:
    """Like :func:`profile_inferences` on WAV files streamed through the exported front end
    (``--wav-list``, chunks of ``chunk`` samples, default the hop): the profile's ``frontend``
    holds each clip's per-frame counts, and every Invoke (one per clip, or per window) its rows."""
    profile, run = _profiled_run(program, work, model=model, mode=mode, count_flash_reads=count_flash_reads,
                                 cache_specs=cache_specs, log=log, run=lambda work, qemu_args: fw_program.run_program_audio(
                                     program, work, wav_paths=list(wav_paths), n_mels=n_mels, chunk=chunk,
                                     extra_args=["--profile", mode], qemu_args=qemu_args,
                                     timeout=timeout or 300 + 120 * len(wav_paths)))
    frames = [len(c.frame_instructions) for c in profile.frontend]
    if len(frames) != len(wav_paths) or sum(frames) != run.frontend_frames:
        raise FirmwareError(f"{program.path}: the marks show {sum(frames)} front-end frames in {len(frames)} clip(s); "
                            f"the program reported {run.frontend_frames} in {len(wav_paths)}")
    return profile
