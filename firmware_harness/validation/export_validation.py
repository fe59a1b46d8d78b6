"""``asc validate EXPORT/model.tflite --data DIR``: what the microcontroller will output.

For every clip of the evaluate split, the int8 input the firmware would compute (by
:func:`tflite_export.input_quant.quantize_input`, the header's formula) is run through TFLM's
reference kernels (the truth: the host C++ build when the caller gives it, else TFLM's Python
runtime) and LiteRT's default optimized interpreter (with the XNNPACK delegate); the redundant
witnesses, TFLM's Python runtime and LiteRT's reference kernels, run on a sample
(:mod:`firmware_harness.validation.witnesses`, :mod:`firmware_harness.validation.planned`), or with
``full`` on every clip; in parallel worker processes. Then:

* agreement of each LiteRT flavour with TFLM, every reference-kernel disagreement localized
  layer by layer to its first diverging operator (unknown ones fail validation);
* int8 (TFLM) against the float model on the same clips: DCASE scores side by side, top-1
  agreement, output RMSE / max abs diff / cosine, per-layer quantization error;
* the smallest tensor arena, measured, against the header's ``kTensorArenaSize``.

The runtime comparison (run the three interpreters, agreement, localization) is
:func:`compare_runtimes`, shared with the validation of any int8 .tflite without an export
folder (:mod:`firmware_harness.model_file`); the float model, the scores per device and the input
formula are the export's own.

Reports go to the export folder: ``validation_report.json``, ``validation_report.md``,
``validation_per_device.png`` and ``validation_output_diff.png``.
"""
from __future__ import annotations

import dataclasses
import io
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from firmware_harness.model_source import EXPORT_MODEL
from firmware_harness.validation.report import (
    Agreement,
    ArenaCheck,
    ClipDivergence,
    LayerError,
    ScoreRow,
    Throughput,
    ValidationReport,
    agreement,
    format_report,
    output_error,
    write_validation_report,
)
from firmware_harness.validation.planned import (
    TruthProgramFactory,
    compare_planned,
    localize_disagreements,
    no_truth_program,
)
from firmware_harness.validation.runners import (
    LOCALIZABLE,
    OPTIMIZED_KERNELS_NOTE,
    REGISTRY,
    RUNNERS,
    compared_runners,
    documented_differences,
    make_runner,
    truth_runner,
    with_role,
)
from firmware_harness.validation.witnesses import SAMPLE_CLIPS, EVERY_CLIP, TRUTH_ROLE, WitnessClips, plan_sample
from keras_asc import artifacts
from keras_asc.artifacts import package_versions
from keras_asc.dataset import SCENE_LABELS
from keras_asc.errors import AscError
from keras_asc.evaluation import save_figure, score_table
from keras_asc.feature_cache import build_feature_cache
from keras_asc.features import Normalization
from keras_asc.parallel import DEFAULT_WORKERS, parallel_map
from keras_asc.run_record import load_run_model
from keras_asc.training_data import load_split
from keras_asc.windows import combine_windows, split_windows
from tflite_export.arena import measure_arena
from tflite_export.export_result import (
    UNCOMPRESSED_MODEL,
    ExportMissing,
    ExportResult,
    check_export_files,
    check_source_run,
    read_export,
    source_run_dir,
)
from tflite_export.flatbuffer import check_int8_model, describe_tensors, io_tensors, read_model_shared
from tflite_export.input_quant import InputQuantization, dequantize_output, quantize_input
from tflite_export.window_combine import accumulate_windows, clip_probabilities


class ValidationError(AscError, ValueError):
    """The model or its export folder cannot be validated as given (refused before running)."""


# ----------------------------------------------------------------------------- inputs
def header_arena_bytes(export_dir: Path) -> int:
    path = Path(export_dir) / "model_settings.h"
    m = re.search(r"constexpr int kTensorArenaSize = (\d+);", path.read_text()) if path.is_file() else None
    if m is None:
        raise ValidationError(f"{path}: no kTensorArenaSize found; re-run `asc export`")
    return int(m.group(1))


def _warn_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def load_checked_export(tflite_path: Path, *, log=_warn_stderr) -> tuple[bytes, ExportResult, InputQuantization]:
    """The model bytes, its export config and input quantization, cross-checked.

    Refuses: float input/output or ops TFLM cannot run; a model or any other exported file whose
    bytes differ from the export's record (edited, or copied from another export: named); an
    export made from an earlier state of the run's float model (stale, by content hash, the run
    found relative to the export); a config whose input quantization disagrees with the model's
    own input tensor. Warns (``log``: standard error by default) when the source run cannot be found
    (the staleness check could not run). ``tflite_path`` must be an export's ``model.tflite``: any
    other .tflite is a model of its own (:mod:`firmware_harness.model_source`), never compared with
    the record of the export folder it lies in.
    """
    tflite_path = Path(tflite_path)
    if not tflite_path.is_file():
        raise ValidationError(f"{tflite_path}: file not found")
    if tflite_path.name != EXPORT_MODEL:
        raise ValidationError(f"{tflite_path}: not an export's {EXPORT_MODEL}; an export's record describes its "
                              f"{EXPORT_MODEL} only. Check this file as a .tflite of its own (`asc validate "
                              f"{tflite_path}`), or give the export folder {tflite_path.parent}")
    data = tflite_path.read_bytes()
    try:
        model = read_model_shared(data)
        check_int8_model(model)
    except ValueError as e:
        raise ValidationError(f"{tflite_path}: refused: {e}") from None
    try:
        exp = read_export(tflite_path.parent)
    except ExportMissing as e:
        raise ValidationError(f"{e}. The harness needs the export's config.json beside the model "
                              "(normalization, labels, source float model)") from None
    if artifacts.sha256_bytes(data) != exp.tflite_sha256:
        raise ValidationError(f"{tflite_path}: bytes differ from the model recorded in config.json "
                              "(sha256 mismatch): the model was modified or replaced after export; "
                              "re-run `asc export`")
    check_export_files(tflite_path.parent, exp)
    check_source_run(tflite_path.parent, exp, log=log)
    (inp,), _ = io_tensors(model)
    quant = exp.input.quantization
    if (not np.isclose(quant.scale, inp.scales[0], rtol=1e-6, atol=0) or quant.zero_point != inp.zero_points[0]):
        raise ValidationError(
            f"{tflite_path.parent / 'config.json'}: input quantization scale={quant.scale} "
            f"zero_point={quant.zero_point} disagrees with the model's input tensor "
            f"(scale={inp.scales[0]}, zero_point={inp.zero_points[0]}); the header would feed the "
            "chip wrong inputs. Re-run `asc export`")
    return data, exp, quant


# ----------------------------------------------------------------------------- parallel runs
_WORKER: dict = {}


def _init_worker(model: bytes, arena: int, runners: tuple[str, ...], inputs: str | np.ndarray) -> None:
    """``inputs``: the .npy file of every input, opened memory-mapped (each worker reads its ranges from the
    page cache the parent wrote, no pickled copies), or the array itself in-process."""
    _WORKER["runners"] = [make_runner(n, model, arena_bytes=arena) for n in runners]
    _WORKER["x"] = np.load(inputs, mmap_mode="r") if isinstance(inputs, str) else inputs


def _run_chunk(start: int, stop: int) -> np.ndarray:
    """Inputs ``start:stop`` of the shared (n, 1, H, W, 1) int8 array -> (runners, stop - start, n_classes) int8."""
    x = _WORKER["x"][start:stop]
    return np.stack([np.concatenate([r.run(np.ascontiguousarray(xi)) for xi in x]) for r in _WORKER["runners"]])


def run_all(model: bytes, x: np.ndarray, *, arena: int, workers: int = DEFAULT_WORKERS, chunk: int = 16,
            runners: tuple[str, ...] = RUNNERS) -> dict[str, np.ndarray]:
    """Outputs of each of ``runners`` for every input; ``x`` is (n, 1, H, W, 1) int8. With ``workers`` > 1
    the inputs are written once to a temporary .npy that every worker memory-maps; calls pass index ranges."""

    starts = list(range(0, len(x), chunk))
    parts: dict[int, np.ndarray] = {}
    calls = [(s, min(s + chunk, len(x))) for s in starts]
    with tempfile.TemporaryDirectory(prefix="asc-inputs-") as tmp:
        shared: str | np.ndarray = x
        if workers > 1 and len(calls) > 1:
            shared = str(Path(tmp) / "inputs.npy")
            np.save(shared, np.asarray(x, np.int8))
        for k, part in parallel_map(_run_chunk, calls, workers=workers, desc=f"validate ({' + '.join(runners)})",
                                    unit="clip", sizes=[b - a for a, b in calls], initializer=_init_worker,
                                    initargs=(model, arena, runners, shared)):
            parts[starts[k]] = part
    out = np.concatenate([parts[s] for s in starts], axis=1)
    return {n: out[i] for i, n in enumerate(runners)}


def quantize_features(features: np.ndarray, *, quant: InputQuantization, block: int = 256) -> np.ndarray:
    """:func:`~tflite_export.input_quant.quantize_input` of ``features`` (clips, mels, frames) float32 (a
    memory-mapped cache array is fine) -> (clips, mels, frames, 1) int8, ``block`` clips at a time: the
    formula's float temporaries stay a block's size, never the whole split's (437 MB at TAU's size)."""
    out = np.empty((*features.shape, 1), np.int8)
    for i in range(0, len(features), block):
        out[i:i + block] = quantize_input(features[i:i + block], quant=quant)
    return out


# ----------------------------------------------------------------------------- TFLM's outputs, for asc firmware
#: ``asc validate`` keeps TFLM Python's outputs on the evaluate inputs, so ``asc firmware`` compares with them
#: instead of running the same interpreter on the same inputs again (read_validated_truth checks it is so).
TRUTH_OUTPUTS = "validation_tflm_outputs.npy"
TRUTH_RECORD = "validation_tflm_outputs.json"


def _truth_key(x_int8: np.ndarray, tflite_sha256: str) -> dict:
    return {"tflite_sha256": tflite_sha256, "inputs_sha256": artifacts.sha256_bytes(np.ascontiguousarray(x_int8,
                                                                                                       np.int8).tobytes()),
            "inputs_shape": list(x_int8.shape), "tflite_micro": package_versions().get("tflite-micro", "unknown")}


@dataclasses.dataclass(frozen=True)
class ValidatedTruth:
    """The truth ``asc validate`` kept: its outputs, which executor computed them (``tflm``: TFLM Python;
    ``host``: the host C++ build of TFLM's reference kernels, from ``build_inputs_sha256``) and the
    witnesses' sample (evaluate indices; every clip with ``--full``)."""

    outputs: np.ndarray  # (inferences, classes) int8
    executor: str
    build_inputs_sha256: str | None
    sample_rows: tuple[int, ...]
    program_inputs_identical: bool = True  # a program's own quantization gave the formula's inputs everywhere


def write_validated_truth(export_dir: Path, x_int8: np.ndarray, outputs: np.ndarray, *, tflite_sha256: str,
                          executor: str = "tflm", build_inputs_sha256: str | None = None,
                          sample_rows: tuple[int, ...] = (), program_inputs_identical: bool = True) -> None:
    """The truth's ``outputs`` (inferences, classes) int8 on ``x_int8`` (inferences, *input shape*)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(outputs, np.int8))
    artifacts.atomic_write_bytes(Path(export_dir) / TRUTH_OUTPUTS, buf.getvalue())
    artifacts.write_json(Path(export_dir) / TRUTH_RECORD, {
        **_truth_key(x_int8, tflite_sha256), "outputs_sha256": artifacts.sha256_bytes(buf.getvalue()),
        "executor": executor, "build_inputs_sha256": build_inputs_sha256, "sample_rows": list(sample_rows),
        "program_inputs_identical": program_inputs_identical})


def read_validated_truth(export_dir: Path, x_int8: np.ndarray, *, tflite_sha256: str) -> ValidatedTruth | None:
    """The truth :func:`write_validated_truth` kept, when computed on this model (sha256) and these very
    input bytes (sha256) with this tflite-micro, and the file is the one written (sha256); otherwise None
    (the caller runs TFLM itself). The caller decides whether its executor is acceptable."""
    path, record = Path(export_dir) / TRUTH_OUTPUTS, Path(export_dir) / TRUTH_RECORD
    if not (path.is_file() and record.is_file()):
        return None
    try:
        rec = artifacts.read_json(record)
        raw = path.read_bytes()
    except (OSError, ValueError):
        return None
    if rec.get("outputs_sha256") != artifacts.sha256_bytes(raw) or \
            any(rec.get(k) != v for k, v in _truth_key(x_int8, tflite_sha256).items()):
        return None

    out = np.load(io.BytesIO(raw))
    if out.shape[0] != len(x_int8) or out.dtype != np.int8:
        return None
    return ValidatedTruth(outputs=out, executor=str(rec.get("executor", "tflm")),
                          build_inputs_sha256=rec.get("build_inputs_sha256"),
                          sample_rows=tuple(int(i) for i in rec.get("sample_rows", ())),
                          program_inputs_identical=bool(rec.get("program_inputs_identical", True)))


@dataclasses.dataclass(frozen=True)
class RuntimeComparison:
    """TFLM against LiteRT on the same int8 inputs (:func:`compare_runtimes`); held in memory, the
    reports take its parts."""

    outputs: dict[str, np.ndarray]  # runner -> (inferences, output elements) int8; truth_runner() is the truth
    agreement: dict[str, Agreement]  # every compared runner of the registry against the truth
    divergences: tuple[ClipDivergence, ...]  # every disagreement of a localizable runner, localized
    failures: tuple[str, ...]  # first divergences that are not a documented kernel difference
    seconds: float  # running the interpreters (the localization excluded)
    tflm_twin_agreement: Agreement | None = None  # with tflm_model: TFLM on it against TFLM on the model


def compare_runtimes(model: bytes, x: np.ndarray, *, arena: int, workers: int, name_of: Callable[[int], str],
                     unit: str = "clip", tflm_model: bytes | None = None) -> RuntimeComparison:
    """Run ``x`` (inferences, *input shape*, batch 1 included) int8 through every interpreter of the
    registry (:mod:`firmware_harness.validation.runners`: TFLM, the truth, LiteRT's reference kernels and LiteRT's
    default interpreter; :func:`run_all`, ``workers`` processes), compare each with the truth, and
    localize every disagreement of a localizable runner to its first diverging operator
    (:class:`~firmware_harness.validation.layers.LayerComparer`); a first divergence that is not among the
    runner's known differences (LiteRT's reference kernels:
    :data:`~firmware_harness.validation.runners.KNOWN_DIFFERENCES`) is a failure. ``name_of(i)``
    names inference ``i`` in the report (a clip's file name), ``unit`` counts them in the failure.

    ``tflm_model``: the truth is TFLM on this model instead (a LUT-compressed export: LiteRT cannot
    run its TFLM_DECODE, so ``model`` is its uncompressed twin, which LiteRT runs and the layers are
    compared on); ``tflm_twin_agreement`` is TFLM on it against TFLM on ``model``."""
    t0 = time.perf_counter()
    outs = run_all(model, x, arena=arena, workers=workers)
    name = truth_runner()
    twin = None
    if tflm_model is not None:
        truth = run_all(tflm_model, x, arena=arena, workers=workers, runners=(name,))[name]
        twin = agreement(outs[name], truth)
        outs[name] = truth
    seconds = time.perf_counter() - t0
    agree = {n: agreement(outs[name], outs[n]) for n in compared_runners()}
    divergences: list[ClipDivergence] = []
    failures = []
    for n in with_role(LOCALIZABLE):
        found, failure = localize_disagreements(model, x, agree[n].differing_clip_indices, arena=arena, runner=n,
                                                name_of=name_of, truth=f"the truth ({name})", counted=f"{unit}(s)")
        failures += [failure] if failure else []
        divergences += found
    return RuntimeComparison(outputs=outs, agreement=agree, divergences=tuple(divergences), failures=tuple(failures),
                             seconds=seconds, tflm_twin_agreement=twin)


def uncompressed_twin(export_dir: Path, exp: ExportResult) -> bytes | None:
    """A compressed export's ``model_uncompressed.tflite`` (checked against config.json), else None."""
    if exp.compression is None:
        return None
    path = Path(export_dir) / UNCOMPRESSED_MODEL
    if not path.is_file() or artifacts.sha256_file(path) != exp.compression.uncompressed_sha256:
        raise ValidationError(f"{path}: missing, or not the uncompressed model config.json records (sha256): the "
                              "harness compares LiteRT on it. Re-run `asc export --compress`")
    return path.read_bytes()


def export_float_model(export_dir: Path, exp: ExportResult):
    """The float model the export's int8 model was converted from: the export's own
    (``--compress``: clustered, BatchNorm folded) or the run's ``model.keras``."""
    import tf_keras as keras  # heavy: only when the float model is compared

    if exp.float_model is None:
        run = source_run_dir(export_dir, exp)
        if not (run / "model.keras").is_file():
            raise ValidationError(f"{run / 'model.keras'}: not found; int8 is compared with the float model of the run "
                                  f"{Path(export_dir)} was exported from (config.json records it relative to the "
                                  "export). Keep the export inside its run folder, or re-run `asc export`")
        return load_run_model(run)

    path = Path(export_dir) / exp.float_model
    if not path.is_file() or artifacts.sha256_file(path) != exp.float_model_sha256:
        raise ValidationError(f"{path}: missing, or not the float model config.json records (sha256); it is needed "
                              "to compare int8 with float. Re-run `asc export`")
    return keras.models.load_model(path, compile=False)


# ----------------------------------------------------------------------------- comparisons
def layer_quantization_error(model: bytes, keras_model, x_int8: np.ndarray, x_float: np.ndarray,
                             *, arena: int, worst: int = 5) -> list[LayerError]:
    """Per-layer error of TFLM's dequantized activations against the float model's.

    TFLite tensor names carry the Keras layer names (``model/block1_a_relu/Relu;...``); each
    operator output is matched to the first named Keras layer of the same shape. Returns the
    ``worst`` layers by relative RMSE (RMSE / std of the float activation), mean over clips.
    """
    import tf_keras as keras  # heavy: only when the float model is compared

    fb = read_model_shared(model)
    tensors = describe_tensors(fb)
    layer_names = {layer.name for layer in keras_model.layers}
    pairs = []
    for op in fb.subgraphs[0].operators:
        for out in op.outputs:
            t = tensors[out]
            parts = t.name.split(";")[0].split("/")
            name = parts[1] if len(parts) > 1 else parts[0]
            if name in layer_names and t.scales:
                layer = keras_model.get_layer(name)
                if tuple(layer.output.shape[1:]) == tuple(t.shape[1:]):
                    pairs.append((t, layer))
    if not pairs:
        return []
    probe = keras.Model(keras_model.input, [layer.output for _, layer in pairs])
    flo = probe.predict(x_float, verbose=0, batch_size=8)
    flo = flo if isinstance(flo, list) else [flo]
    tflm = make_runner(truth_runner(), model, arena_bytes=arena, preserve=True)
    acc = np.zeros((len(pairs), 3))
    for c in range(len(x_int8)):
        tflm.run(x_int8[c])
        for k, (t, _) in enumerate(pairs):
            q = tflm.tensor(t.index).reshape(t.shape)[0].astype(np.float64)
            deq = (q - t.zero_points[0]) * t.scales[0]
            f = flo[k][c].astype(np.float64)
            rmse = np.sqrt(np.mean((deq - f) ** 2))
            cos = np.sum(deq * f) / (np.linalg.norm(deq) * np.linalg.norm(f) + 1e-12)
            acc[k] += (rmse, rmse / (f.std() + 1e-12), cos)
    acc /= len(x_int8)
    rows = [LayerError(layer=layer.name, tensor=t.name.split(";")[0], shape=tuple(t.shape), scale=float(t.scales[0]),
                       rmse=float(a[0]), relative_rmse=float(a[1]), cosine=float(a[2]))
            for (t, layer), a in zip(pairs, acc)]
    return sorted(rows, key=lambda r: -r.relative_rmse)[:worst]


# ----------------------------------------------------------------------------- the command
def validate_export(tflite_path: Path, data_dir: Path, work_dir: Path, *, workers: int = DEFAULT_WORKERS,
                    max_drop: float | None = None, layer_clips: int = 16, full: bool = False,
                    truth_program: TruthProgramFactory = no_truth_program, sample_clips: int = SAMPLE_CLIPS,
                    log=print) -> ValidationReport:
    """Validate and write the reports; ``report.failures`` lists every failed check (the CLI
    exits non-zero when it is not empty).

    Without ``full``: the truth on every clip, the witnesses on a sample
    (:func:`~firmware_harness.validation.planned.compare_planned`); the truth is the program
    ``truth_program(export_dir, model=..., arena=..., log=...)`` yields (None: TFLM Python), the witnesses'
    stratified part of at least ``sample_clips`` clips. With ``full``,
    or for a compressed export (LiteRT runs its uncompressed twin), every runner on every clip."""

    t_start = time.perf_counter()
    tflite_path = Path(tflite_path)
    export_dir = tflite_path.parent
    data, exp, quant = load_checked_export(tflite_path)
    artifacts.check_adding(export_dir, stage="export", names=VALIDATION_FILES)  # an edited report: before any work
    if exp.labels != tuple(SCENE_LABELS):
        raise ValidationError(f"{export_dir / 'config.json'}: label list differs from {SCENE_LABELS}")
    header_arena = header_arena_bytes(export_dir)
    twin = uncompressed_twin(export_dir, exp)  # LiteRT cannot run a compressed model's TFLM_DECODE
    keras_model = export_float_model(export_dir, exp)
    log("validate: measuring the TFLM tensor arena")
    arena = measure_arena(tflite_path)
    failures: list[str] = []
    if header_arena < arena.min_bytes:
        failures.append(f"arena: model_settings.h says kTensorArenaSize = {header_arena} bytes, "
                        f"but TFLM needs at least {arena.min_bytes}")
    run_arena = max(header_arena, arena.min_bytes)

    fs = build_feature_cache(data_dir, work_dir, config=exp.features, workers=workers, log=log,
                             train_split=exp.train_split)  # the run's training subset: its own cache entry
    table = fs.table("evaluate")
    windows = exp.windows
    per_clip = windows.per_clip if windows else 1
    x_int8 = quantize_features(fs.features("evaluate"), quant=quant)  # (n, mels, clip frames, 1)
    if windows:  # quantization is per element, so the windows of the quantized clip are the firmware's
        x_int8 = split_windows(x_int8, window=windows.frames, hop=windows.hop)
    x_int8 = x_int8[:, None]  # (inferences, 1, mels, frames, 1)
    name_of = lambda i: str(table["filename"].iloc[i // per_clip])  # noqa: E731
    compressed, build_sha, mismatches = None, None, 0
    if full or twin is not None:
        # TFLM, LiteRT reference and LiteRT default on every input; every reference-kernel disagreement localized
        cmp = compare_runtimes(twin or data, x_int8, arena=run_arena, workers=workers, name_of=name_of,
                               tflm_model=data if twin is not None else None)
        outs, agree, divergences, run_seconds, compressed = (cmp.outputs, cmp.agreement, cmp.divergences,
                                                             cmp.seconds, cmp.tflm_twin_agreement)
        truth_name, truth_out = truth_runner(), outs[truth_runner()]
        failures += cmp.failures
        sample = plan_sample(table, truth=truth_out, every_clip={}, windows_per_clip=per_clip, full=True)
        witnesses = (WitnessClips(truth_name, TRUTH_ROLE, REGISTRY[truth_name].description, len(table)),
                     *(WitnessClips(n, EVERY_CLIP, REGISTRY[n].description, len(table)) for n in compared_runners()),
                     WitnessClips("float", EVERY_CLIP, "the float Keras model the int8 model was converted from",
                                  len(table)))
    else:
        usable = header_arena >= arena.min_bytes  # a program built with a too-small header arena cannot run
        with truth_program(export_dir, model=data, arena=run_arena, log=log) if usable else no_truth_program() as prog:
            pc = compare_planned(data, x_int8, table=table, arena=run_arena, workers=workers,
                                 windows_per_clip=per_clip, name_of=name_of, logmel=fs.features("evaluate"),
                                 program=prog, run_all=run_all, sample_clips=sample_clips, log=log)
            build_sha = prog.build_inputs_sha256 if prog is not None else None
        truth_name, truth_out, agree, divergences, run_seconds = (pc.truth, pc.truth_outputs, pc.agreement,
                                                                  pc.divergences, pc.seconds)
        failures += pc.failures
        sample, witnesses, mismatches = pc.sample, pc.witnesses, pc.program_input_mismatches
    if compressed is not None and compressed.clips_with_any_difference:
        failures.append(f"TFLM's outputs on the compressed model differ from the uncompressed model's on "
                        f"{compressed.clips_with_any_difference} of {compressed.clips} inputs: the LUT-compressed "
                        "weights do not decode to the uncompressed ones on this runtime")
    log(f"validate: {len(table)} clips ({len(x_int8)} inferences): {', '.join(f'{w.executor} {w.clips}' for w in witnesses)}"
        f" clips, in {run_seconds:.1f} s")

    # int8 (TFLM) against float
    norm = Normalization.from_dict({"mean": quant.mean, "std": quant.std})
    x_float, _ = load_split(fs, "evaluate", normalization=norm)
    if windows:  # the clip decision the firmware's ClipAccumulator makes, from TFLM's window outputs
        sums = accumulate_windows(truth_out, windows_per_clip=per_clip)
        int8_probs = clip_probabilities(sums, windows_per_clip=per_clip, scale=exp.output.scale,
                                        zero_point=exp.output.zero_point)
        x_float = split_windows(x_float, window=windows.frames, hop=windows.hop)
        float_probs = combine_windows(keras_model.predict(x_float, batch_size=64, verbose=0), windows_per_clip=per_clip)
    else:
        int8_probs = dequantize_output(truth_out, scale=exp.output.scale, zero_point=exp.output.zero_point)
        float_probs = keras_model.predict(x_float, batch_size=64, verbose=0)
    s_float, s_int8 = score_table(float_probs, table), score_table(int8_probs, table)
    scores = tuple(ScoreRow(group=f.group, name=f.name, clips=int(f.clips), unseen_device=bool(f.unseen_device),
                            float_accuracy=float(f.accuracy), int8_accuracy=float(q.accuracy),
                            float_log_loss=float(f.log_loss), int8_log_loss=float(q.log_loss),
                            accuracy_drop_pp=float(100 * (f.accuracy - q.accuracy)))
                   for f, q in zip(s_float.itertuples(), s_int8.itertuples()))
    drop = scores[0].accuracy_drop_pp
    if max_drop is not None and drop > max_drop:
        failures.append(f"int8 accuracy is {drop:.2f} points below float, more than --max-drop {max_drop}")
    pick = np.linspace(0, len(x_int8) - 1, min(layer_clips, len(x_int8))).round().astype(int)
    layers = layer_quantization_error(data, keras_model, x_int8[pick], x_float[pick], arena=run_arena)

    report = ValidationReport(
        model=str(tflite_path.resolve()), tflite_sha256=exp.tflite_sha256, data_dir=str(Path(data_dir).resolve()),
        split="evaluate", clips=int(len(table)), truth=truth_name, quantization_path=exp.quantization_path,
        agreement_with_tflm=agree, reference_divergences=divergences, known_differences=documented_differences(),
        optimized_note=OPTIMIZED_KERNELS_NOTE, scores=scores, accuracy_drop_pp=drop,
        output_error=output_error(float_probs, int8_probs), worst_layers=tuple(layers),
        arena=ArenaCheck(measured_min_bytes=arena.min_bytes, recorded_total_bytes=arena.recorded_total,
                         header_bytes=header_arena, allocation_report=arena.report),
        flatbuffer_bytes=len(data), budget_bytes=exp.budget_bytes,
        throughput=Throughput(workers=workers, seconds=round(run_seconds, 2),
                              clips_per_second=round(len(table) / max(run_seconds, 1e-9), 2)),
        failures=tuple(failures), seconds_total=round(time.perf_counter() - t_start, 1), windows=windows,
        compressed_agreement=compressed, witnesses=witnesses, sample=sample, **artifacts.provenance())
    with artifacts.adding_files(export_dir, stage="export", names=VALIDATION_FILES) as tmp:  # a changed one is kept
        write_validated_truth(tmp, x_int8[:, 0], truth_out, tflite_sha256=exp.tflite_sha256, executor=truth_name,
                              build_inputs_sha256=build_sha, sample_rows=sample.rows,
                              program_inputs_identical=not mismatches)
        _write_reports(tmp, report, float_probs, int8_probs)
    return report


# ----------------------------------------------------------------------------- reports
def _plots(export_dir: Path, report: ValidationReport, float_probs: np.ndarray, int8_probs: np.ndarray) -> None:
    import matplotlib  # heavy: only when the reports are plotted

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: after the backend is chosen

    dev = [s for s in report.scores if s.group == "device"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    pos = np.arange(len(dev))
    ax.bar(pos - 0.2, [100 * s.float_accuracy for s in dev], 0.4, label="float (Keras)")
    ax.bar(pos + 0.2, [100 * s.int8_accuracy for s in dev], 0.4, label="int8 (TFLM)")
    ax.set_xticks(pos, [f"{s.name}*" if s.unseen_device else s.name for s in dev])
    ax.set_ylabel("accuracy (%)")
    ax.set_title("evaluate split per device (* unseen in training)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, export_dir / "validation_per_device.png")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist((int8_probs - float_probs).ravel(), bins=81, log=True)
    ax.set_xlabel("int8 (TFLM, dequantized) - float probability")
    ax.set_ylabel("outputs")
    fig.tight_layout()
    save_figure(fig, export_dir / "validation_output_diff.png")


#: What ``asc validate`` adds to an export folder.
VALIDATION_FILES = ("validation_report.json", "validation_report.md", "validation_per_device.png",
                    "validation_output_diff.png", TRUTH_OUTPUTS, TRUTH_RECORD)


def _write_reports(export_dir: Path, report: ValidationReport, float_probs, int8_probs) -> None:
    write_validation_report(export_dir, report)
    artifacts.atomic_write_text(export_dir / "validation_report.md", format_report(report))
    _plots(export_dir, report, float_probs, int8_probs)
