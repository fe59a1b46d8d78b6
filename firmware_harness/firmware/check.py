"""``asc firmware EXPORT_DIR --data DIR``: the exported C sources, compiled with TFLM C++ for each
target, bit for bit against TFLM's Python runtime.

For each target (:mod:`firmware_harness.builds.targets`) the program is built
(:mod:`firmware_harness.builds.program`) and run on the evaluate clips' float log-mel features: every
clip on host targets, a stratified (scene x device) sample on emulated ones (``clips="all"``
for every clip). The program quantizes each clip with the header's ``QuantizeLogMel`` and
invokes TFLM; the harness compares

* the int8 inputs with :func:`tflite_export.input_quant.quantize_input` (the Python formula), and
* the int8 outputs with the ``tflite-micro`` Python runtime run on the Python inputs (the truth).

A windowed model runs every window of each clip (``kWindowStarts``) and the program's
``ClipAccumulator`` is compared with the Python accumulation (:mod:`tflite_export.window_combine`).
With ``from_audio`` the same clips' WAV files also go through the exported front end
(:mod:`firmware_harness.firmware.from_audio`).

Any difference fails. The first inference whose outputs differ is run again with every tensor dumped,
and the dump is compared operator by operator with the Python runtime's preserved tensors
(:func:`firmware_harness.validation.layers.first_divergence`). The header's ``kTensorArenaSize`` must be at
least what each target's TFLM build needs (measured, never assumed); Cortex-M images get a
footprint (:mod:`firmware_harness.builds.footprint`).

Writes ``EXPORT_DIR/firmware/<target>/`` (the program, ``inputs.npy``, ``outputs.npy`` of shape
inferences x classes in evaluate-split order, windows clip-major, ``clips.csv``; with ``from_audio`` also
``inputs_from_audio.npy`` and ``outputs_from_audio.npy``, what the device computed from PCM, same rows) and
``EXPORT_DIR/firmware/firmware_report.json`` and ``.md``. The folder is built aside and renamed into place, so a crash leaves the previous one.
"""
from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

from firmware_harness.builds import program as fw_program
from firmware_harness.builds import third_party
from firmware_harness.builds.footprint import Footprint, measure_footprint
from firmware_harness.builds.program import build_inputs_sha256
from firmware_harness.builds.targets import DEFAULT_TARGETS, Target, get_target
from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.firmware.host_truth import localize_output_difference
from firmware_harness.firmware.from_audio import (
    FromAudioResult,
    check_audio_files,
    dataset_audio,
    format_from_audio,
    run_from_audio,
)
from firmware_harness.profiling.latency import PROFILE_TARGETS, invoke_latency_ms
from firmware_harness.validation.export_validation import (
    header_arena_bytes,
    load_checked_export,
    quantize_features,
    read_validated_truth,
    run_all,
)
from keras_asc import artifacts, records
from keras_asc.dataset import stratified_sample
from keras_asc.feature_cache import build_feature_cache
from keras_asc.parallel import DEFAULT_WORKERS
from keras_asc.windows import split_windows
from tflite_export.export import BuildProbe
from tflite_export.mcu_targets import fit_table, format_fit_table
from tflite_export.window_combine import accumulate_windows, clip_decisions

DEFAULT_EMULATED_CLIPS = 20
QEMU_NOTE = ("QEMU seconds are the host's time to emulate the Cortex-M instruction by instruction: "
             "they say nothing about a chip's speed (no cycle model, no caches, no flash wait states).")


@dataclasses.dataclass(frozen=True)
class TargetResult:
    target: str
    description: str
    kernels: str
    emulated: bool
    clips: int
    inputs_identical: int  # clips whose int8 input equals the Python formula's
    outputs_identical: int  # clips whose int8 outputs equal TFLM Python's
    first_input_difference: dict | None  # clip, elements differing, max diff
    first_output_divergence: dict | None  # clip + the first differing operator
    arena_used_bytes: int
    header_arena_bytes: int
    seconds_per_inference: float  # host: real time; emulated: QEMU emulation time
    build_seconds: float
    tflm_objects_compiled: int
    footprint: Footprint | None
    from_audio: FromAudioResult | None = None  # --from-audio: PCM through the exported front end
    # Cortex-M: microcontroller of this core -> estimated ms per inference (one counted inference of
    # this image, firmware_harness.profiling.latency.invoke_latency_ms): the fit table's latency column
    estimated_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    worker_processes: int = 1  # program processes that shared the clips (host: --workers, emulated: 1)
    # the build is asc validate's every-clip truth: its log-mel outputs are validate's run of the same build
    # (build_inputs_sha256), one clip run again here
    logmel_run_from_validate: bool = False
    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("bit_identical",)

    @property
    def bit_identical(self) -> bool:
        return self.inputs_identical == self.clips and self.outputs_identical == self.clips


def target_result(target: Target, prog: fw_program.Program, run: fw_program.ProgramRun, **fields) -> TargetResult:
    """A target's result: what its :class:`Target`, its built program and its run say, and ``fields``."""
    return TargetResult(target=target.name, description=target.description, kernels=target.kernels,
                        emulated=target.emulated, arena_used_bytes=run.arena_used_bytes,
                        header_arena_bytes=run.header_arena_bytes,
                        seconds_per_inference=run.invoke_seconds / max(len(run.outputs), 1),
                        build_seconds=round(prog.build_seconds, 1), tflm_objects_compiled=prog.library.compiled, **fields)


@dataclasses.dataclass(frozen=True)
class FirmwareReport(records.PassedWithoutFailures):
    """``EXPORT_DIR/firmware/firmware_report.json``."""

    export_dir: str
    tflite_sha256: str
    build_inputs_sha256: str
    data_dir: str
    evaluate_clips: int
    model_bytes: int
    targets: tuple[TargetResult, ...]
    failures: tuple[str, ...]
    seconds: float
    packages: dict[str, str]
    git_commit: str
    truth: str = "tflite-micro Python runtime (TFLM reference kernels)"
    tflm_python_inputs: int = 0  # inputs TFLM Python ran in this check (the rest: asc validate's truth)
    qemu_note: str = QEMU_NOTE
    stage: str = "firmware"


def read_firmware_report(export_dir: Path) -> FirmwareReport:
    return records.read(FirmwareReport, Path(export_dir) / "firmware" / "firmware_report.json")


def sampled_rows(table, *, clips: int | str) -> np.ndarray:
    """Row indices (evaluate-split order) a target runs: all, or a stratified sample of ``clips``."""
    if clips == "all" or int(clips) >= len(table):
        return np.arange(len(table))
    picked = stratified_sample(table.reset_index(drop=True), size=int(clips), seed=0)
    return picked.index.to_numpy()


class TflmTruth:
    """TFLM Python's outputs for the inferences' int8 inputs ``x_int8`` (inferences, *input shape without
    the batch*), each computed once, when first asked, in ``workers`` processes
    (:func:`firmware_harness.validation.export_validation.run_all`), or taken from ``asc validate``'s run of the same
    interpreter on the same inputs (:func:`firmware_harness.validation.export_validation.read_validated_truth`: same model,
    same input bytes, same tflite-micro version, all by content hash)."""

    def __init__(self, model: bytes, x_int8: np.ndarray, *, arena: int, workers: int = 1,
                 validated: np.ndarray | None = None, executor: str = "tflm"):
        self._model, self._arena, self._workers = model, arena, workers
        self._other: dict[bytes, np.ndarray] = {}  # run(): input bytes -> output
        self._x = x_int8
        self._out: np.ndarray | None = validated
        self._have = np.full(len(x_int8), validated is not None)
        self.reused = validated is not None  # the outputs came from asc validate's run
        self.executor = executor  # whose outputs `validated` are: "tflm" (TFLM Python) or a C++ build ("host")
        self.tflm_inputs_run = 0  # inputs TFLM Python ran here (its own interpreter)
        self.adopted_inputs = 0  # inputs whose truth is the truth program's own output (adopt())

    def outputs(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), classes) int8."""
        rows = np.asarray(rows, dtype=np.int64)
        todo = np.unique(rows[~self._have[rows]])
        if len(todo):
            out = run_all(self._model, self._x[todo][:, None], arena=self._arena, workers=self._workers,
                          runners=("tflm",))["tflm"]
            if self._out is None:
                self._out = np.zeros((len(self._x), out.shape[1]), np.int8)
            self._out[todo] = out
            self._have[todo] = True
            self.tflm_inputs_run += len(todo)
        return self._out[rows]

    def adopt(self, x_int8: np.ndarray, outputs: np.ndarray) -> None:
        """The truth program's own outputs (n, classes) on inputs ``x_int8`` (n, elements), which are not the
        Python formula's (the front end's): the truth for those inputs, as its outputs are on every clip."""
        x_int8 = np.asarray(x_int8, np.int8).reshape(len(x_int8), self._x[0].size)
        for row, o in zip(x_int8, outputs):
            if row.tobytes() not in self._other:
                self._other[row.tobytes()] = np.array(o, np.int8)
                self.adopted_inputs += 1

    def run(self, x_int8: np.ndarray) -> np.ndarray:
        """Outputs for other inputs (the front end's, where they differ from the Python formula's),
        ``x_int8`` (n, elements) int8 -> (n, classes) int8: in ``workers`` processes, each distinct input
        once (every host target's front end computes the same inputs, so the second target's are known)."""
        x_int8 = np.asarray(x_int8, np.int8).reshape(len(x_int8), -1)
        keys = [row.tobytes() for row in x_int8]
        todo = sorted({k: i for i, k in enumerate(keys) if k not in self._other}.values())
        if todo:
            out = run_all(self._model, x_int8[todo].reshape(len(todo), 1, *self._x.shape[1:]), arena=self._arena,
                          workers=self._workers, runners=("tflm",))["tflm"]
            self._other.update((keys[i], o) for i, o in zip(todo, out))
            self.tflm_inputs_run += len(todo)
        if not keys:
            return np.zeros((0, self._out.shape[1] if self._out is not None else 0), np.int8)
        return np.stack([self._other[k] for k in keys])


def _take(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]``; a contiguous run of rows (every clip) is a slice, so a memory-mapped array is not copied."""
    rows = np.asarray(rows)
    if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
        return a[int(rows[0]):int(rows[0]) + len(rows)]
    return a[rows]


def arena_probes(targets: tuple[str, ...], *, third_party_dir: Path | None = None,
                 log=print) -> dict[str, Callable[[Path], BuildProbe]]:
    """For ``asc export``: per target whose tools are installed, a callable that builds the
    program for a (staged) export folder and returns the arena that build needs and, for a
    microcontroller, its linked image's flash and the estimated ms per inference on every MCU of
    its core (:func:`firmware_harness.profiling.latency.invoke_latency_ms`). Targets whose toolchain or
    archives are missing are left out, with a log line saying why."""
    try:
        tp = third_party.locate_third_party(third_party_dir, log=log)
    except FirmwareError as e:
        log(f"export: no firmware arena probes: {e}")
        return {}
    probes = {}
    for name in targets:
        target = get_target(name)
        if target.missing_tools():
            log(f"export: no arena probe for {name}: {', '.join(target.missing_tools())} not installed")
            continue

        def probe(export_dir: Path, target=target) -> BuildProbe:
            tree = third_party.prepare_tflm_tree(tp, log=log)
            with tempfile.TemporaryDirectory(prefix="asc-arena-") as tmp:
                prog = fw_program.build_program(export_dir, target, Path(tmp), tree=tree, log=log)
                arena = fw_program.measure_arena(prog, Path(tmp) / "work", input_elements=_input_elements(export_dir))
                flash, latency = None, {}
                if prog.map_file is not None:
                    flash = measure_footprint(prog.path, prog.map_file, size_tool=f"{target.prefix}size",
                                              stack_bytes=None).flash_bytes
                if target.name in PROFILE_TARGETS:
                    latency = invoke_latency_ms(prog, (Path(export_dir) / "model.tflite").read_bytes(),
                                                Path(tmp) / "work", log=log)
                return BuildProbe(arena_bytes=arena, image_flash_bytes=flash, estimated_ms=latency)
        probes[name] = probe
    return probes


def _input_elements(export_dir: Path) -> int:
    text = (Path(export_dir) / "model_input.h").read_text()
    mels, frames = (int(re.search(rf"constexpr int {k} = (\d+);", text).group(1)) for k in ("kNumMels", "kNumFrames"))
    return mels * frames


def check_target(name: str, *, export_dir: Path, out_dir: Path, tree: Path, model: bytes, table,
                 logmel: np.ndarray, expected_inputs: np.ndarray, truth: TflmTruth, windows_per_clip: int,
                 wav_paths: list[Path] | None = None,
                 truth_arena: int, clips: int | str, host_clips: int | str, from_audio: bool = False,
                 chunk: int | None = None, workers: int = 1, truth_rows: np.ndarray | None = None,
                 log=print) -> tuple[TargetResult, list[str]]:
    """Build, run and compare one target; returns its result and its failures.

    ``expected_inputs`` and ``truth`` are per inference: per clip, or per window (clip-major,
    ``windows_per_clip`` each) for a windowed model, whose clip accumulator is compared too. A host
    target's clips are split among ``workers`` program processes (each clip's outputs depend on that clip
    only), and with ``from_audio`` an inference whose PCM-path input equals its log-mel-path input is not
    invoked twice (:func:`~firmware_harness.builds.program.run_program_audio`); every clip is still compared.

    ``truth_rows``: this target's build is the every-clip truth (``asc validate`` ran it on the log-mel
    inputs, ``truth`` holds its outputs): its log-mel run is taken from there (one clip is run again, for the
    arena and the time per inference, and compared), and from PCM its outputs are the truth on its own inputs
    except on the clips ``truth_rows`` (the witnesses' sample), where TFLM Python checks them."""
    target = get_target(name)
    prog = fw_program.build_program(export_dir, target, out_dir, tree=tree, log=log)
    rows = sampled_rows(table, clips=clips if target.emulated else host_clips)
    procs = 1 if target.emulated else max(1, min(workers, len(rows)))
    log(f"firmware: {name}: running {len(rows)} clip(s){' under QEMU' if target.emulated else ''}"
        f"{f' in {procs} processes' if procs > 1 else ''}")
    failures = []
    work = out_dir / "work"
    reuse = truth_rows is not None and windows_per_clip == 1 and len(rows) == len(table)
    try:
        run = (_truth_run(prog, work, logmel=logmel, truth=truth, expected_inputs=expected_inputs) if reuse else
               fw_program.run_program_parallel(prog, work, logmel=_take(logmel, rows), workers=procs))
    except fw_program.ArenaTooSmall:
        need = fw_program.measure_arena(prog, work, input_elements=_input_elements(export_dir))
        raise FirmwareError(
            f"{export_dir / 'model_settings.h'}: kTensorArenaSize is smaller than the {need:,d} bytes TFLM "
            f"needs on target {name} ({target.kernels} kernels). Re-run `asc export` (it adds a margin over "
            "the measured arena) or raise kTensorArenaSize by hand") from None
    k_per = windows_per_clip
    inferences = (rows[:, None] * k_per + np.arange(k_per)).ravel()  # the clips' windows, clip-major
    exp_in = expected_inputs[inferences].reshape(len(inferences), -1)
    truth_out = truth.outputs(inferences)
    in_same = (run.inputs == exp_in).reshape(len(rows), -1).all(axis=1)
    out_same = (run.outputs == truth_out).reshape(len(rows), -1).all(axis=1)
    if k_per > 1:
        sums = accumulate_windows(run.outputs, windows_per_clip=k_per)
        if not (np.array_equal(run.clip_sums, sums) and np.array_equal(run.clip_decisions, clip_decisions(sums))):
            failures.append(f"{name}: the program's ClipAccumulator differs from the Python accumulation of its own "
                            "window outputs")
    first_in = first_out = None
    if not in_same.all():
        c = int(np.flatnonzero(~in_same)[0])
        a, b = run.inputs.reshape(len(rows), -1)[c], exp_in.reshape(len(rows), -1)[c]
        diff = np.abs(a.astype(int) - b.astype(int))
        first_in = {"clip": str(table["filename"].iloc[rows[c]]), "index": int(rows[c]),
                    "elements_differing": int((diff > 0).sum()), "max_abs_diff": int(diff.max())}
        failures.append(f"{name}: the header's QuantizeLogMel gave other int8 inputs than the Python formula on "
                        f"{int((~in_same).sum())} of {len(rows)} clip(s), e.g. {first_in}")
    if not out_same.all():
        i = int(np.flatnonzero((run.outputs != truth_out).any(axis=1))[0])  # the first differing inference
        first_out = {"clip": str(table["filename"].iloc[rows[i // k_per]]), "index": int(rows[i // k_per]),
                     "window": i % k_per,
                     **localize_output_difference(prog, model, expected_inputs[inferences[i]], arena=truth_arena,
                                                  work=work)}
        bad = [int(rows[c]) for c in np.flatnonzero(~out_same)]
        failures.append(f"{name}: int8 outputs differ from TFLM Python on {len(bad)} of {len(rows)} "
                        f"clip(s); first at operator {first_out.get('op_index')} {first_out.get('op')} "
                        f"(clip {first_out['clip']}, evaluate index {first_out['index']}); evaluate indices "
                        f"{bad[:10]}{' ...' if len(bad) > 10 else ''}")
    audio = None
    stack = run.stack_used_bytes
    if from_audio:
        log(f"firmware: {name}: PCM -> class on {len(rows)} clip(s) through the exported front end")
        audio, f, audio_run = run_from_audio(
            prog, table=table, wav_paths=wav_paths, rows=rows, train_logmel=_take(logmel, rows), expected_inputs=exp_in,
            harness_outputs=truth_out, truth_for=truth.run, work=work, n_mels=logmel.shape[1],
            windows_per_clip=k_per, chunk=chunk, name=name, workers=procs,
            known=None if target.emulated else (run.inputs, run.outputs),
            adopt=truth.adopt if truth_rows is not None else None, witness_rows=truth_rows)
        failures += f
        np.save(out_dir / "inputs_from_audio.npy", audio_run.inputs)  # rows as outputs.npy's
        np.save(out_dir / "outputs_from_audio.npy", audio_run.outputs)
        stack = max(stack or 0, audio.stack_used_bytes or 0) if target.emulated else None
    footprint, latency = None, {}
    if prog.map_file is not None:
        footprint = measure_footprint(prog.path, prog.map_file, size_tool=f"{target.prefix}size", stack_bytes=stack)
        if name in PROFILE_TARGETS:
            latency = invoke_latency_ms(prog, model, work / "latency", log=log)
    np.save(out_dir / "inputs.npy", run.inputs)
    np.save(out_dir / "outputs.npy", run.outputs)
    clip_list = table.iloc[rows][["filename", "scene_label", "device"]].assign(evaluate_index=rows)
    artifacts.atomic_write_text(out_dir / "clips.csv", clip_list.to_csv(index=False))
    shutil.rmtree(work, ignore_errors=True)
    result = target_result(
        target, prog, run, clips=len(rows), inputs_identical=int(in_same.sum()), outputs_identical=int(out_same.sum()),
        first_input_difference=first_in, first_output_divergence=first_out, footprint=footprint, from_audio=audio,
        estimated_ms=latency, worker_processes=procs, logmel_run_from_validate=reuse)
    return result, failures


def _truth_run(prog: fw_program.Program, work: Path, *, logmel: np.ndarray, truth: TflmTruth,
               expected_inputs: np.ndarray) -> fw_program.ProgramRun:
    """The log-mel run of every clip of the truth's own build, as ``asc validate`` ran it (its outputs:
    ``truth``; its inputs were the Python formula's, else validate took TFLM Python's outputs there and this
    check finds the difference): the first clip runs again here for the arena and the time per inference."""
    one = fw_program.run_program(prog, work, logmel=logmel[:1])
    n = len(expected_inputs)
    return dataclasses.replace(one, outputs=np.concatenate([one.outputs, truth.outputs(np.arange(1, n))]),
                               inputs=np.concatenate([one.inputs, expected_inputs[1:].reshape(n - 1, -1)]),
                               invoke_seconds=one.invoke_seconds * n)  # the time per inference measured here


def check_firmware(export_dir: Path, data_dir: Path, work_dir: Path, *, targets: tuple[str, ...] = DEFAULT_TARGETS,
                   clips: int | str = DEFAULT_EMULATED_CLIPS, host_clips: int | str = "all",
                   from_audio: bool = False, chunk: int | None = None, third_party_dir: Path | None = None,
                   workers: int = DEFAULT_WORKERS, full: bool = False, log=print) -> FirmwareReport:
    """Run every target; write and return the report (``report.failures`` lists what failed).

    Emulated targets run a stratified sample of ``clips`` evaluate clips, host targets
    ``host_clips`` (default every clip); "all" for every clip. ``from_audio`` also streams the
    same clips' PCM through the exported front end (:mod:`firmware_harness.firmware.from_audio`) in
    chunks of ``chunk`` samples (default: the hop).

    The truth is ``asc validate``'s when it ran on this model and these inputs (:func:`read_validated_truth`):
    TFLM Python's, or (not with ``full``) the host C++ build's when this check builds the same program; then
    the ``host`` target's log-mel run is validate's, and TFLM Python checks the PCM path on validate's
    witness sample only. Otherwise TFLM Python computes the truth here, on every clip."""

    t0 = time.perf_counter()
    export_dir = Path(export_dir)
    inputs = (Path(data_dir), Path(work_dir))
    artifacts.check_replaceable(export_dir / "firmware", stage="firmware", inputs=inputs)  # before any work
    for name in targets:
        get_target(name).check_tools()
    model, exp, quant = load_checked_export(export_dir / "model.tflite")
    tp = third_party.locate_third_party(third_party_dir, log=log)
    tree = third_party.prepare_tflm_tree(tp, log=log)
    fs = build_feature_cache(data_dir, work_dir, config=exp.features, workers=workers, log=log,
                             train_split=exp.train_split)  # the run's training subset: its own cache entry
    table = fs.table("evaluate")
    logmel = fs.features("evaluate")  # memory-mapped: sliced per program process, never copied whole
    expected_inputs = quantize_features(logmel, quant=quant)
    if exp.windows is not None:  # per window, clip-major: what the firmware's inferences see
        expected_inputs = split_windows(expected_inputs, window=exp.windows.frames, hop=exp.windows.hop)
    wav_paths = None
    if from_audio:  # --data's audio, checked by content against the features it is compared with
        wav_paths = dataset_audio(data_dir, table)
        check_audio_files(wav_paths, sample_rate=exp.features.sample_rate)
    # The truth runs in the arena measured at export (the sha256 check ties it to this model), never
    # in the header's: TFLM's Python runtime can crash the process on a too-small arena, and the
    # header is what is being checked.
    arena = max(header_arena_bytes(export_dir), exp.size.arena_recommended_bytes)
    validated = read_validated_truth(export_dir, expected_inputs, tflite_sha256=exp.tflite_sha256)
    if validated is not None and validated.executor != "tflm" and (
            full or validated.executor not in targets or not validated.program_inputs_identical
            or validated.build_inputs_sha256 != build_inputs_sha256(export_dir, tp, (validated.executor,))):
        validated = None  # another build's, or --full: TFLM Python computes the truth here
    truth = TflmTruth(model, expected_inputs, arena=arena, workers=workers,
                      validated=None if validated is None else validated.outputs,
                      executor="tflm" if validated is None else validated.executor)
    truth_rows = np.asarray(validated.sample_rows) if validated is not None and validated.executor != "tflm" else None
    log(f"firmware: the truth: {truth_text(truth, truth_rows)}")
    results, failures = [], []
    with artifacts.staging_dir(export_dir / "firmware", stage="firmware", inputs=inputs) as tmp:
        for name in targets:
            r, f = check_target(name, export_dir=export_dir, out_dir=tmp / name, tree=tree, model=model, table=table,
                                logmel=logmel, expected_inputs=expected_inputs, truth=truth,
                                windows_per_clip=exp.windows.per_clip if exp.windows else 1, wav_paths=wav_paths,
                                truth_arena=arena, clips=clips, host_clips=host_clips, from_audio=from_audio,
                                chunk=chunk, workers=workers, log=log,
                                truth_rows=truth_rows if name == truth.executor else None)
            results.append(r)
            failures += f
            log(f"firmware: {name}: {r.outputs_identical}/{r.clips} clips bit-identical, arena "
                f"{r.arena_used_bytes:,d} B, {1000 * r.seconds_per_inference:.1f} ms per inference"
                f"{' (QEMU emulation)' if r.emulated else ''}")
        report = FirmwareReport(
            export_dir=str(export_dir.resolve()), tflite_sha256=exp.tflite_sha256,
            build_inputs_sha256=build_inputs_sha256(export_dir, tp, targets), data_dir=str(Path(data_dir).resolve()),
            evaluate_clips=len(table), model_bytes=len(model), targets=tuple(results), failures=tuple(failures),
            seconds=round(time.perf_counter() - t0, 1), truth=truth_text(truth, truth_rows),
            tflm_python_inputs=truth.tflm_inputs_run, **artifacts.provenance())
        records.write(tmp / "firmware_report.json", report)
        artifacts.atomic_write_text(tmp / "firmware_report.md", format_report(report))
    return report


def truth_text(truth: TflmTruth, truth_rows: np.ndarray | None) -> str:
    """What the firmware check compares with, for the log and the report."""
    if truth_rows is not None:
        return (f"the {truth.executor} C++ build of TFLM's reference kernels on every clip (asc validate's run of the "
                f"same build, by sha256); TFLM Python checks its PCM-path outputs on the witnesses' sample of "
                f"{len(truth_rows)} clip(s)")
    if truth.reused:
        return "TFLM Python (tflite-micro) on every clip, from asc validate (same model, inputs and tflite-micro)"
    return "TFLM Python (tflite-micro) on every clip, computed here"


def _kib(n: int) -> str:
    return f"{n:,d} B ({n / 1024:.1f} KiB)"


def format_report(r: FirmwareReport) -> str:
    lines = [f"# Firmware check of {Path(r.export_dir).name}/model.tflite", "",
             f"Truth: {r.truth}; TFLM Python ran {r.tflm_python_inputs} input(s) here. "
             f"Result: **{'PASSED' if r.passed else 'FAILED'}**", ""]
    lines += [f"- FAILURE: {f}" for f in r.failures]
    lines += targets_section(r.targets)
    lines += format_from_audio([(t.target, t.emulated, t.from_audio) for t in r.targets if t.from_audio])
    lines += ["", QEMU_NOTE, ""]
    return "\n".join(lines)


def targets_section(targets: tuple[TargetResult, ...], *, unit: str = "clips") -> list[str]:
    """The firmware report's table of targets (``unit``: what a row counts), each target's first
    differing operator and each Cortex-M image's footprint and fit table."""
    lines = ["", f"| target | kernels | {unit} | inputs identical | outputs identical | arena used | "
                 "kTensorArenaSize | time per inference |", "|---|---|---|---|---|---|---|---|"]
    for t in targets:
        time_unit = "s (QEMU emulation)" if t.emulated else "ms (host)"
        per = t.seconds_per_inference if t.emulated else 1000 * t.seconds_per_inference
        lines.append(f"| {t.target} | {t.kernels} | {t.clips} | {t.inputs_identical} | {t.outputs_identical} | "
                     f"{t.arena_used_bytes:,d} | {t.header_arena_bytes:,d} | {per:.3f} {time_unit} |")
    for t in targets:
        if t.first_output_divergence:
            d = t.first_output_divergence
            where = f"clip {d['clip']}" if "clip" in d else f"input {d['input']}"
            lines += ["", f"{t.target}: first differing operator {d.get('op_index')} {d.get('op')} "
                          f"(tensor {d.get('tensor')}, {d.get('elements_differing')} element(s), up to "
                          f"{d.get('max_abs_diff_lsb')} LSB) on {where}"]
    for t in targets:
        if t.footprint is None:
            continue
        f = t.footprint
        lines += ["", f"## Footprint: {t.target} ({t.description})", "",
                  f"`{'arm-none-eabi-size'}`: text {f.text:,d}, data {f.data:,d}, bss {f.bss:,d}.", "",
                  "| part | flash | RAM |", "|---|---|---|"]
        for part in f.flash_by_part:
            lines.append(f"| {part} | {f.flash_by_part[part]:,d} | {f.ram_by_part[part]:,d} |")
        stack = f"{f.stack_bytes:,d} (measured)" if f.stack_bytes is not None else "not measured"
        lines += ["", f"- flash (text + data): {_kib(f.flash_bytes)}, of which the model {_kib(f.flash_by_part['model'])}",
                  f"- RAM: data + bss {_kib(f.ram_static_bytes)} (tensor arena {_kib(f.ram_by_part['tensor_arena'])}) "
                  f"+ stack {stack} = {_kib(f.ram_bytes)}",
                  "- parts come from the map file; they exceed the section sizes by the strings the linker "
                  "merges (under 1 %). The heap newlib's stdio takes for the semihosted files is not counted.",
                  "", format_fit_table(fit_table(flash_needed=f.flash_bytes, ram_needed=f.ram_bytes),
                                       basis=f"this {t.target} image's flash and RAM in use, which include the "
                                             "semihosting C library a product firmware would not have",
                                       latency_ms=t.estimated_ms)]
    return lines


def reusable_firmware_report(export_dir: Path, *, tflite_sha256: str, data_dir: Path, targets: tuple[str, ...],
                             clips: int) -> FirmwareReport | None:
    """The stored ``asc firmware --from-audio`` report of ``export_dir`` when it passed for this
    model, these sources and toolchains (``build_inputs_sha256``), ``data_dir``, ``targets`` (every
    evaluate clip on host targets, ``clips`` on emulated ones) and the interpreters installed now;
    None when the check must run again."""
    old = artifacts.read_or_none(read_firmware_report, export_dir)
    if (old is not None and old.passed and old.tflite_sha256 == tflite_sha256
            and artifacts.same_runtime_packages(old.packages)
            and old.build_inputs_sha256 == build_inputs_sha256(export_dir, third_party.locate_third_party(), targets)
            and old.data_dir == str(Path(data_dir).resolve())
            and tuple(t.target for t in old.targets) == tuple(targets)
            and all(t.clips == (clips if t.emulated else old.evaluate_clips) and t.from_audio for t in old.targets)):
        return old
    return None
