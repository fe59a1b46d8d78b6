"""Any int8 ``.tflite``, without an export folder: validated and built into the firmware as exports are.

``asc validate MODEL.tflite`` and ``asc firmware MODEL.tflite`` take this path when no export
``config.json`` is beside the model (an export keeps its own: :mod:`firmware_harness.validation.export_validation`,
:mod:`firmware_harness.firmware.check`). There is no float model, no dataset and no audio front end:

* :func:`read_model_file` refuses what the harness cannot run, each refusal an
  :class:`AnyModelError` subclass naming the file and the tensor or operator: a float (non-int8)
  input or output (:class:`FloatModelError`), an operator the pinned TFLM's
  ``MicroMutableOpResolver`` lacks (:class:`UnsupportedOperatorError`), a dynamic shape
  (:class:`DynamicShapeError`), several subgraphs (:class:`SubgraphsError`), several inputs or
  outputs or a non-batch-1 or per-channel I/O tensor (:class:`ModelIoError`);
* :func:`load_inputs`: the int8 inputs, from an ``--inputs X.npy`` file (refused by
  :class:`InputsFileError` when its dtype or shape is not the model's) or ``N`` seeded random ones;
* :func:`validate_model`: TFLM's Python runtime (the truth), LiteRT's reference kernels and
  LiteRT's default interpreter on every input through the exports' own comparison
  (:func:`firmware_harness.validation.export_validation.compare_runtimes`: every reference-kernel disagreement
  localized to its first diverging operator, anything but a documented kernel difference fails),
  and the arena measured; writes ``validation_report.md/.json``, ``inputs.npy`` and TFLM's
  ``outputs.npy``;
* :func:`prepare_model_sources`: the C sources a firmware needs, ``model_data.cc/.h`` and a
  ``model_settings.h`` (:func:`tflite_export.c_sources.model_only_settings_header`: the I/O
  tensors, ``kTensorArenaSize`` = TFLM Python's measured need plus max(1 KiB, 10 %),
  ``RegisterModelOps`` for exactly the model's operators, ``MODEL_NO_FRONTEND``), and
  ``config.json`` (:class:`GeneratedSources`, with their sha256); what ``asc profile`` builds too;
* :func:`check_model_firmware`: those sources compiled with TFLM C++ for each target
  (:func:`firmware_harness.builds.program.build_program`) and compared bit for bit with TFLM Python on
  the same inputs, the first differing operator localized on a difference, and the footprint of
  Cortex-M images.

Each command writes its own folder, by default beside the model and named after it
(``MODEL.validation/``, ``MODEL.firmware/``), built aside and renamed into place; it never replaces
a file or folder it did not write, nor its inputs (:func:`keras_asc.artifacts.staging_dir`).
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from firmware_harness.builds import program as fw_program
from firmware_harness.builds import third_party
from firmware_harness.firmware.check import (QEMU_NOTE, TargetResult, TflmTruth, build_inputs_sha256,
                                       localize_output_difference, targets_section)
from firmware_harness.builds.footprint import measure_footprint
from firmware_harness.validation.layers import KNOWN_DIFFERENCES, OPTIMIZED_KERNELS_NOTE
from firmware_harness.builds.targets import DEFAULT_TARGETS, get_target
from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.validation.export_validation import compare_runtimes
from firmware_harness.validation.report import Agreement, ArenaCheck, ClipDivergence, Throughput, litert_section
from keras_asc import artifacts, records
from keras_asc.errors import AscError
from tflite_export import c_sources
from tflite_export.arena import measure_arena, recommended_arena
from firmware_harness.model_inputs import InputsFileError, InputsUsed, describe_inputs, load_inputs  # noqa: F401
from firmware_harness.model_source import ModelSource, out_dir_beside, tflite_file
from tflite_export.flatbuffer import (TFLM_MUTABLE_RESOLVER_METHODS, TFLM_OPS_NOT_BUILT, ModelCheckError,
                                      describe_tensors, io_tensors, operator_names, read_model_shared)

VALIDATE_STAGE = "validate-model"  # the folder `asc validate MODEL.tflite` writes
FIRMWARE_STAGE = "firmware-model"  # the folder `asc firmware MODEL.tflite` writes
DEFAULT_RANDOM_INPUTS = 20
GENERATOR = "asc firmware"
SOURCE_FILES = ("model_data.cc", "model_data.h", "model_settings.h")
ARENA_MARGIN_TEXT = "a margin of max(1 KiB, 10 %) for allocator alignment and kernel scratch buffers, rounded up to 16"
TRUTH = "tflite-micro Python runtime (TFLM reference kernels)"
PYTHON_NEED = "tflite-micro Python (reference kernels)"  # the arena need every model has measured


# ----------------------------------------------------------------------------- refusals
class AnyModelError(AscError, ValueError):
    """A .tflite, or its ``--inputs`` file, that the harness cannot take as it is; the message
    names the file and says what to change."""


class FloatModelError(AnyModelError):
    """The model's input or output tensor is not int8."""


class UnsupportedOperatorError(AnyModelError):
    """The model uses an operator the pinned TFLM's MicroMutableOpResolver lacks."""


class DynamicShapeError(AnyModelError):
    """A tensor's shape_signature has -1 beyond the batch dimension."""


class SubgraphsError(AnyModelError):
    """The model has more than one subgraph (control flow, several signatures)."""


class ModelIoError(AnyModelError):
    """Not exactly one input and one output, batch 1, each with one scale and zero point."""


# ----------------------------------------------------------------------------- the model
@dataclasses.dataclass(frozen=True)
class IoTensor:
    """The model's int8 input or output tensor: real = scale * (q - zero_point)."""

    name: str
    shape: tuple[int, ...]  # batch 1 first, as the flatbuffer stores it
    scale: float
    zero_point: int

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape))


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """A .tflite the harness can run (:func:`read_model_file`); held in memory, never written."""

    path: Path
    data: bytes
    ops: tuple[str, ...]  # distinct operator names, in first-use order
    input: IoTensor
    output: IoTensor

    @property
    def sha256(self) -> str:
        return artifacts.sha256_bytes(self.data)


def _refuse_operators(path: Path, ops: list[str]) -> None:
    unknown = sorted({o for o in ops if o not in TFLM_MUTABLE_RESOLVER_METHODS})
    if not unknown:
        return
    not_built = [o for o in unknown if o in TFLM_OPS_NOT_BUILT]
    lacking = [o for o in unknown if o not in TFLM_OPS_NOT_BUILT]
    parts = []
    if lacking:
        parts.append(f"operator(s) {lacking} are not among the {len(TFLM_MUTABLE_RESOLVER_METHODS)} operators the "
                     "pinned TFLM's MicroMutableOpResolver registers (tflite-micro archive, "
                     "micro_mutable_op_resolver.h), so no TFLM firmware can run this model")
    if not_built:
        methods = ", ".join(TFLM_OPS_NOT_BUILT[o] for o in not_built)
        parts.append(f"operator(s) {not_built} are in TFLM's resolver ({methods}) but registered without a "
                     "default kernel argument, which this harness's firmware builds do not select")
    raise UnsupportedOperatorError(
        f"{path}: refused: {'; '.join(parts)}. Replace the layer that produces them with operators TFLM has (the "
        "list is TFLM_MUTABLE_RESOLVER_METHODS in tflite_export/flatbuffer.py) and convert the model again")


def read_model_file(model: Path | ModelSource | ModelFile) -> ModelFile:
    """Read ``model`` (a path is a .tflite of its own, :func:`firmware_harness.model_source.tflite_file`;
    a :class:`~firmware_harness.model_source.ModelSource` is used as resolved, its bytes read once;
    a :class:`ModelFile` is returned as it is) and refuse what the harness cannot run (one
    :class:`AnyModelError` subclass per reason, naming the file and the tensor or operator).

    A ``-1`` in the first dimension of a shape_signature whose shape is 1 is accepted: it is the
    converter's mark of an unspecified batch, and TFLM and LiteRT run the stored shape (batch 1);
    a ``-1`` anywhere else is a dynamic shape, refused."""
    if isinstance(model, ModelFile):
        return model
    source = model if isinstance(model, ModelSource) else tflite_file(Path(model))
    path, data = source.path, source.data
    try:
        fb = read_model_shared(data)
    except ModelCheckError as e:
        raise AnyModelError(f"{path}: {e}") from None
    if len(fb.subgraphs) != 1:
        raise SubgraphsError(
            f"{path}: refused: {len(fb.subgraphs)} subgraphs (control flow such as IF or WHILE, or several "
            "signatures); the harness and the firmware program run a model of one subgraph. Convert the model "
            "without control flow, one signature")
    graph = fb.subgraphs[0]
    tensors = describe_tensors(fb)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        names = [tensors[i].name for i in graph.inputs], [tensors[i].name for i in graph.outputs]
        raise ModelIoError(
            f"{path}: refused: {len(graph.inputs)} input tensor(s) {names[0]} and {len(graph.outputs)} output "
            f"tensor(s) {names[1]}; the firmware program feeds one input tensor and reads one output tensor per "
            "inference. Convert a model with exactly one input and one output")
    (inp,), (out,) = io_tensors(fb)
    for role, t in (("input", inp), ("output", out)):
        if t.dtype != "INT8":
            raise FloatModelError(
                f"{path}: refused: its {role} tensor '{t.name}' is {t.dtype}, not INT8: a float model, or one "
                f"with float {role}, needs float pre/post-processing that the int8 firmware path does not have. "
                "Convert it fully to int8 (TFLiteConverter with optimizations=[DEFAULT], a representative dataset, "
                "supported_ops=[TFLITE_BUILTINS_INT8], inference_input_type and inference_output_type tf.int8)")
    ops = operator_names(fb)
    _refuse_operators(path, ops)
    for i, t in enumerate(graph.tensors):
        sig = [int(v) for v in t.shapeSignature] if t.shapeSignature is not None else []
        shape = tensors[i].shape
        dynamic = [k for k, v in enumerate(sig) if v == -1 and not (k == 0 and shape[:1] == (1,))]
        if dynamic:
            raise DynamicShapeError(
                f"{path}: refused: tensor '{tensors[i].name}' has a dynamic shape (shape_signature {sig}, -1 in "
                f"dimension(s) {dynamic}); TFLM plans every tensor's memory once, for fixed shapes. Convert the "
                "model with every dimension but the batch fixed (a concrete input shape)")
    for role, t in (("input", inp), ("output", out)):
        if not t.shape or t.shape[0] != 1:
            raise ModelIoError(f"{path}: refused: its {role} tensor '{t.name}' has shape {list(t.shape)}; the harness "
                               "runs batch-1 models (first dimension 1). Convert the model with batch size 1")
        if len(t.scales) != 1 or len(t.zero_points) != 1:
            raise ModelIoError(f"{path}: refused: its {role} tensor '{t.name}' has {len(t.scales)} scales; an int8 "
                               "input or output needs one (per-tensor) scale and zero point")
    io = [IoTensor(name=t.name, shape=tuple(t.shape), scale=float(t.scales[0]), zero_point=int(t.zero_points[0]))
          for t in (inp, out)]
    return ModelFile(path=path, data=data, ops=tuple(dict.fromkeys(ops)), input=io[0], output=io[1])


def _stage_inputs(model: ModelFile, inputs_path: Path | None) -> tuple[Path, ...]:
    return (model.path,) + ((Path(inputs_path),) if inputs_path is not None else ())


# ----------------------------------------------------------------------------- validate
@dataclasses.dataclass(frozen=True)
class ModelValidationReport:
    """``validation_report.json`` of ``asc validate MODEL.tflite`` (no export folder)."""

    model: str
    tflite_sha256: str
    flatbuffer_bytes: int
    ops: tuple[str, ...]
    input: IoTensor
    output: IoTensor
    inputs: InputsUsed
    truth: str
    agreement_with_tflm: dict[str, Agreement]  # litert_ref, litert_opt
    reference_divergences: tuple[ClipDivergence, ...]  # clip: "input K"
    known_differences: dict[str, str]
    optimized_note: str
    arena: ArenaCheck  # header_bytes: TFLM Python's need plus the margin (the arena the runtimes ran in)
    throughput: Throughput  # clips_per_second: inferences per second, all three runtimes each
    failures: tuple[str, ...]
    seconds_total: float
    packages: dict[str, str]
    git_commit: str
    stage: str = VALIDATE_STAGE
    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("passed",)

    @property
    def passed(self) -> bool:
        return not self.failures


def read_model_validation_report(folder: Path) -> ModelValidationReport:
    return records.read(ModelValidationReport, Path(folder) / "validation_report.json")


def validate_model(model_path: Path | ModelSource, *, inputs_path: Path | None = None,
                   random_count: int | None = None, seed: int = 0, out_dir: Path | None = None, workers: int = 2,
                   log=print) -> ModelValidationReport:
    """Validate any int8 .tflite on its int8 inputs (:func:`load_inputs`; ``random_count`` defaults
    to :data:`DEFAULT_RANDOM_INPUTS` when no ``inputs_path`` is given) and write the reports into
    ``out_dir`` (default :func:`~firmware_harness.model_source.out_dir_beside`); ``report.failures``
    lists what failed."""
    t_start = time.perf_counter()
    model = read_model_file(model_path)
    if inputs_path is None and random_count is None:
        random_count = DEFAULT_RANDOM_INPUTS
    out = Path(out_dir) if out_dir is not None else out_dir_beside(model.path, "validation")
    stage_inputs = _stage_inputs(model, inputs_path)
    artifacts.check_replaceable(out, stage=VALIDATE_STAGE, inputs=stage_inputs)  # before any work
    x = load_inputs(model, inputs_path=inputs_path, random_count=random_count, seed=seed)
    used = describe_inputs(x, inputs_path=inputs_path, random_count=random_count, seed=seed)
    log("validate: measuring the TFLM tensor arena")
    arena = measure_arena(model.path)
    run_arena = recommended_arena(arena.min_bytes)
    xs = x.reshape(len(x), *model.input.shape)
    cmp = compare_runtimes(model.data, xs, arena=run_arena, workers=workers, name_of=lambda i: f"input {i}",
                           unit="input")
    log(f"validate: {len(x)} inputs x 3 runtimes in {cmp.seconds:.1f} s; LiteRT reference kernels differ from TFLM on "
        f"{cmp.agreement['litert_ref'].clips_with_any_difference}")
    report = ModelValidationReport(
        model=str(model.path.resolve()), tflite_sha256=model.sha256, flatbuffer_bytes=len(model.data), ops=model.ops,
        input=model.input, output=model.output, inputs=used, truth="tflm", agreement_with_tflm=cmp.agreement,
        reference_divergences=cmp.divergences, known_differences=dict(KNOWN_DIFFERENCES),
        optimized_note=OPTIMIZED_KERNELS_NOTE,
        arena=ArenaCheck(measured_min_bytes=arena.min_bytes, recorded_total_bytes=arena.recorded_total,
                         header_bytes=run_arena, allocation_report=arena.report),
        throughput=Throughput(workers=workers, seconds=round(cmp.seconds, 2),
                              clips_per_second=round(len(x) / max(cmp.seconds, 1e-9), 2)),
        failures=cmp.failures, seconds_total=round(time.perf_counter() - t_start, 1), **artifacts.provenance())
    with artifacts.staging_dir(out, stage=VALIDATE_STAGE, inputs=stage_inputs) as tmp:
        records.write(tmp / "validation_report.json", report)
        artifacts.atomic_write_text(tmp / "validation_report.md", format_model_validation(report))
        np.save(tmp / "inputs.npy", xs)  # (n, *input shape) int8
        np.save(tmp / "outputs.npy", cmp.outputs["tflm"])  # (n, output elements) int8, TFLM's
    return report


def _io_text(model: str, sha256: str, ops: tuple[str, ...], inp: IoTensor, out: IoTensor, nbytes: int) -> list[str]:
    return [f"Model: {model}, {nbytes:,d} bytes, sha256 {sha256}; operators: {', '.join(ops)}.",
            f"Input '{inp.name}': int8 {list(inp.shape)}, scale {inp.scale:g}, zero point {inp.zero_point}. "
            f"Output '{out.name}': int8 {list(out.shape)}, scale {out.scale:g}, zero point {out.zero_point}."]


def format_model_validation(r: ModelValidationReport) -> str:
    """``validation_report.md``; also what the CLI prints."""
    lines = [f"# Validation of {Path(r.model).name}", "",
             f"{r.inputs.describe()}; TFLM is the truth. Result: **{'PASSED' if r.passed else 'FAILED'}**", ""]
    lines += [f"- FAILURE: {f}" for f in r.failures] + ([""] if r.failures else [])
    lines += _io_text(r.model, r.tflite_sha256, r.ops, r.input, r.output, r.flatbuffer_bytes)
    lines += litert_section(r.agreement_with_tflm, r.reference_divergences, optimized_note=r.optimized_note,
                            unit="inputs", item="input(s)")
    a = r.arena
    lines += ["", "## Memory", "",
              f"- tensor arena: {a.measured_min_bytes:,d} bytes measured minimum (TFLM's Python runtime, reference "
              f"kernels); allocator total with a large arena {a.recorded_total_bytes:,d}; with {ARENA_MARGIN_TEXT}: "
              f"{a.header_bytes:,d} (`asc firmware` also measures each target's build and sizes kTensorArenaSize "
              "from the largest need)",
              f"- throughput: {r.throughput.clips_per_second} inputs/s with {r.throughput.workers} worker(s) "
              "(all three runtimes per input)", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- C sources
@dataclasses.dataclass(frozen=True)
class GeneratedSources:
    """``config.json`` of a sources folder generated for a .tflite (:func:`prepare_model_sources`)."""

    model: str  # the .tflite it was generated from (absolute path at the time)
    tflite_sha256: str
    flatbuffer_bytes: int
    ops: tuple[str, ...]  # distinct, in first-use order: what RegisterModelOps registers
    input: IoTensor
    output: IoTensor
    arena_needs: dict[str, int]  # measured arena need per interpreter build: TFLM Python, and each firmware build
    arena_bytes: int  # kTensorArenaSize: the largest need plus max(1 KiB, 10 %), rounded up to 16
    arena_report: str  # TFLM's allocation report (Python runtime, reference kernels)
    files_sha256: dict[str, str]  # the generated sources (SOURCE_FILES): compiled as code, never edited
    packages: dict[str, str]
    git_commit: str
    stage: str = "model-sources"


@dataclasses.dataclass(frozen=True)
class PreparedModel:
    """A sources folder :func:`prepare_model_sources` wrote, what
    :func:`firmware_harness.builds.program.build_program` builds for any target."""

    folder: Path  # model_data.cc, model_data.h, model_settings.h, config.json
    model: ModelFile
    sources: GeneratedSources

    @property
    def ops(self) -> tuple[str, ...]:
        return self.sources.ops

    @property
    def arena_bytes(self) -> int:
        """``kTensorArenaSize``: the largest measured need plus the margin."""
        return self.sources.arena_bytes

    @property
    def python_arena_bytes(self) -> int:
        """What TFLM's Python runtime needs (the arena the truth runs in is at least this)."""
        return self.sources.arena_needs[PYTHON_NEED]

    @property
    def input(self) -> IoTensor:
        return self.sources.input

    @property
    def output(self) -> IoTensor:
        return self.sources.output


def _write_sources(folder: Path, model: ModelFile, *, arena_needs: dict[str, int], arena_report: str) -> PreparedModel:
    """Write ``model_data.cc/.h``, ``model_settings.h`` (kTensorArenaSize: the largest of
    ``arena_needs`` plus the margin) and ``config.json`` into ``folder``."""
    need = max(arena_needs.values())
    arena_bytes = recommended_arena(need)
    measured = ", ".join(f"{name} {n:,d}" for name, n in arena_needs.items())
    i, o = model.input, model.output
    artifacts.atomic_write_text(folder / "model_data.h", c_sources.cc_array_header(generator=GENERATOR))
    artifacts.atomic_write_text(folder / "model_data.cc", c_sources.cc_array_source(model.data, generator=GENERATOR))
    artifacts.atomic_write_text(folder / "model_settings.h", c_sources.model_only_settings_header(
        model_name=model.path.name, input_shape=i.shape, input_scale=i.scale, input_zero_point=i.zero_point,
        output_shape=o.shape, output_scale=o.scale, output_zero_point=o.zero_point, ops=model.ops,
        arena_min_bytes=need, arena_bytes=arena_bytes, arena_margin_text=f"{ARENA_MARGIN_TEXT} (measured: {measured})"))
    sources = GeneratedSources(
        model=str(model.path.resolve()), tflite_sha256=model.sha256, flatbuffer_bytes=len(model.data), ops=model.ops,
        input=i, output=o, arena_needs=dict(arena_needs), arena_bytes=arena_bytes, arena_report=arena_report,
        files_sha256={f: artifacts.sha256_file(folder / f) for f in SOURCE_FILES}, **artifacts.provenance())
    records.write(folder / "config.json", sources)
    return PreparedModel(folder=folder, model=model, sources=sources)


def prepare_model_sources(model_path: Path | ModelSource | ModelFile, out_dir: Path, *, log=print) -> PreparedModel:
    """Refuse or read ``model_path`` (:func:`read_model_file`), measure its arena with TFLM's Python
    runtime (in a child process) and write the firmware's C sources and ``config.json`` into
    ``out_dir``, which must be absent or empty (the caller stages it:
    :func:`keras_asc.artifacts.staging_dir`). A firmware build with other kernels may need more
    arena than TFLM Python (CMSIS-NN's scratch buffers: measured 27,300 bytes on Cortex-M55 for
    KWS DS-CNN against Python's 24,272); :func:`fit_arena_to_builds` measures the targets' builds
    and raises ``kTensorArenaSize`` to cover them."""
    model = read_model_file(model_path)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise artifacts.RefusedOverwrite(f"{out}: exists and is not an empty folder; the generated sources go into a "
                                         "folder of their own. Give an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    log(f"firmware: measuring the TFLM tensor arena of {model.path.name}")
    arena = measure_arena(model.path)
    return _write_sources(out, model, arena_needs={PYTHON_NEED: arena.min_bytes}, arena_report=arena.report)


def fit_arena_to_builds(prepared: PreparedModel, targets: tuple[str, ...], *, tree: Path, work: Path,
                        log=print) -> PreparedModel:
    """Build ``prepared`` for each of ``targets`` in ``work`` (scratch, removed), measure the arena
    each build needs (the program's ``--measure-arena``: one inference in a large scratch arena),
    and rewrite ``model_settings.h`` and ``config.json`` so that ``kTensorArenaSize`` is the largest
    need (TFLM Python's or a build's) plus the margin, as ``asc export`` sizes its header from its
    arena probes. Returns the sources as they now are; build the programs after this."""
    needs = dict(prepared.sources.arena_needs)
    for name in targets:
        target = get_target(name)
        prog = fw_program.build_program(prepared.folder, target, Path(work) / name, tree=tree, log=log)
        needs[f"{name} ({target.kernels})"] = fw_program.measure_arena(prog, Path(work) / name / "run",
                                                                        input_elements=prepared.input.elements)
    shutil.rmtree(work, ignore_errors=True)
    if needs == prepared.sources.arena_needs:
        return prepared
    log(f"firmware: arena needs {', '.join(f'{k} {v:,d}' for k, v in needs.items())}")
    return _write_sources(prepared.folder, prepared.model, arena_needs=needs,
                          arena_report=prepared.sources.arena_report)


# ----------------------------------------------------------------------------- firmware
@dataclasses.dataclass(frozen=True)
class ModelFirmwareReport:
    """``firmware_report.json`` of ``asc firmware MODEL.tflite`` (no export folder)."""

    model: str
    tflite_sha256: str
    build_inputs_sha256: str  # the program's sources, the generated sources, TFLM, the targets' flags
    inputs: InputsUsed
    sources: GeneratedSources
    targets: tuple[TargetResult, ...]  # clips: inferences run; inputs_identical: the program read them back
    failures: tuple[str, ...]
    seconds: float
    packages: dict[str, str]
    git_commit: str
    truth: str = TRUTH
    qemu_note: str = QEMU_NOTE
    stage: str = FIRMWARE_STAGE
    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("passed",)

    @property
    def passed(self) -> bool:
        return not self.failures


def read_model_firmware_report(folder: Path) -> ModelFirmwareReport:
    return records.read(ModelFirmwareReport, Path(folder) / "firmware_report.json")


def check_model_target(name: str, prepared: PreparedModel, *, tree: Path, out_dir: Path, x: np.ndarray,
                       truth_outputs: np.ndarray, log=print) -> tuple[TargetResult, list[str]]:
    """Build ``prepared`` for target ``name`` into ``out_dir``, run ``x`` (n, input elements) int8
    and compare its outputs with ``truth_outputs`` (n, output elements) int8; returns the result and
    its failures. The first differing input is run again with every tensor dumped and its first
    differing operator named. Writes ``out_dir/outputs.npy`` (n, output elements) int8."""
    target = get_target(name)
    model = prepared.model
    prog = fw_program.build_program(prepared.folder, target, out_dir, tree=tree, log=log)
    work = out_dir / "work"
    log(f"firmware: {name}: running {len(x)} input(s){' under QEMU' if target.emulated else ''}")
    try:
        run = fw_program.run_program(prog, work, int8=x)
    except fw_program.ArenaTooSmall:
        need = fw_program.measure_arena(prog, work, input_elements=prepared.input.elements)
        raise FirmwareError(
            f"{prepared.folder / 'model_settings.h'}: kTensorArenaSize ({prepared.arena_bytes:,d} bytes, sized from "
            f"{', '.join(prepared.sources.arena_needs)}) is smaller than the {need:,d} bytes TFLM needs on target "
            f"{name} ({target.kernels} kernels). Size it with this target's build (fit_arena_to_builds), as "
            f"`asc firmware {model.path}` does") from None
    failures = []
    same_in = (run.inputs == x).all(axis=1)
    same_out = (run.outputs == truth_outputs).all(axis=1)
    first_in = first_out = None
    if not same_in.all():
        i = int(np.flatnonzero(~same_in)[0])
        diff = np.abs(run.inputs[i].astype(int) - x[i].astype(int))
        first_in = {"input": i, "elements_differing": int((diff > 0).sum()), "max_abs_diff": int(diff.max())}
        failures.append(f"{name}: the program ran other int8 inputs than it was given on {int((~same_in).sum())} of "
                        f"{len(x)} input(s), e.g. {first_in}")
    if not same_out.all():
        i = int(np.flatnonzero(~same_out)[0])
        first_out = {"input": i, **localize_output_difference(prog, model.data, x[i].reshape(model.input.shape)[0],
                                                              arena=prepared.arena_bytes, work=work)}
        failures.append(f"{name}: int8 outputs differ from TFLM Python on {int((~same_out).sum())} of {len(x)} "
                        f"input(s); first at operator {first_out.get('op_index')} {first_out.get('op')} (input {i})")
    footprint = None
    if prog.map_file is not None:
        footprint = measure_footprint(prog.path, prog.map_file, size_tool=f"{target.prefix}size",
                                      stack_bytes=run.stack_used_bytes)
    np.save(out_dir / "outputs.npy", run.outputs)
    shutil.rmtree(work, ignore_errors=True)
    result = TargetResult(
        target=name, description=target.description, kernels=target.kernels, emulated=target.emulated,
        clips=len(x), inputs_identical=int(same_in.sum()), outputs_identical=int(same_out.sum()),
        first_input_difference=first_in, first_output_divergence=first_out,
        arena_used_bytes=run.arena_used_bytes, header_arena_bytes=run.header_arena_bytes,
        seconds_per_inference=run.invoke_seconds / max(len(run.outputs), 1), build_seconds=round(prog.build_seconds, 1),
        tflm_objects_compiled=prog.library.compiled, footprint=footprint)
    return result, failures


def check_model_firmware(model_path: Path | ModelSource, *, inputs_path: Path | None = None,
                         random_count: int | None = None, seed: int = 0, targets: tuple[str, ...] = DEFAULT_TARGETS,
                         out_dir: Path | None = None, third_party_dir: Path | None = None,
                         log=print) -> ModelFirmwareReport:
    """Generate the C sources of any int8 .tflite, build them for every target and compare each
    with TFLM Python on the same int8 inputs (:func:`load_inputs`; ``random_count`` defaults to
    :data:`DEFAULT_RANDOM_INPUTS`), every target on all of them. Writes ``out_dir`` (default
    :func:`~firmware_harness.model_source.out_dir_beside`): the sources and ``config.json``,
    ``inputs.npy`` (n, *input shape) int8,
    ``expected_outputs.npy`` (TFLM Python's, n x output elements), ``<target>/`` (the program,
    ``outputs.npy``) and ``firmware_report.json/.md``; ``report.failures`` lists what failed."""
    t0 = time.perf_counter()
    model = read_model_file(model_path)
    if inputs_path is None and random_count is None:
        random_count = DEFAULT_RANDOM_INPUTS
    out = Path(out_dir) if out_dir is not None else out_dir_beside(model.path, "firmware")
    stage_inputs = _stage_inputs(model, inputs_path)
    artifacts.check_replaceable(out, stage=FIRMWARE_STAGE, inputs=stage_inputs)  # before any work
    for name in targets:
        get_target(name).check_tools()
    x = load_inputs(model, inputs_path=inputs_path, random_count=random_count, seed=seed)
    used = describe_inputs(x, inputs_path=inputs_path, random_count=random_count, seed=seed)
    tp = third_party.locate_third_party(third_party_dir, log=log)
    tree = third_party.prepare_tflm_tree(tp, log=log)
    with artifacts.staging_dir(out, stage=FIRMWARE_STAGE, inputs=stage_inputs) as tmp:
        prepared = prepare_model_sources(model, tmp, log=log)
        prepared = fit_arena_to_builds(prepared, targets, tree=tree, work=tmp / ".arena-probes", log=log)
        truth = TflmTruth(model.data, x.reshape(len(x), *model.input.shape[1:]), arena=prepared.arena_bytes)
        truth_outputs = truth.outputs(np.arange(len(x)))
        np.save(tmp / "inputs.npy", x.reshape(len(x), *model.input.shape))
        np.save(tmp / "expected_outputs.npy", truth_outputs)
        results, failures = [], []
        for name in targets:
            r, f = check_model_target(name, prepared, tree=tree, out_dir=tmp / name, x=x, truth_outputs=truth_outputs,
                                      log=log)
            results.append(r)
            failures += f
            log(f"firmware: {name}: {r.outputs_identical}/{r.clips} inputs bit-identical, arena "
                f"{r.arena_used_bytes:,d} B, {1000 * r.seconds_per_inference:.1f} ms per inference"
                f"{' (QEMU emulation)' if r.emulated else ''}")
        report = ModelFirmwareReport(
            model=str(model.path.resolve()), tflite_sha256=model.sha256,
            build_inputs_sha256=build_inputs_sha256(tmp, tp, targets), inputs=used, sources=prepared.sources,
            targets=tuple(results), failures=tuple(failures), seconds=round(time.perf_counter() - t0, 1),
            **artifacts.provenance())
        records.write(tmp / "firmware_report.json", report)
        artifacts.atomic_write_text(tmp / "firmware_report.md", format_model_firmware(report))
    return report


def format_model_firmware(r: ModelFirmwareReport) -> str:
    """``firmware_report.md``; also what the CLI prints."""
    s = r.sources
    lines = [f"# Firmware check of {Path(r.model).name}", "",
             f"Truth: TFLM's Python runtime on the same inputs ({r.inputs.describe()}). "
             f"Result: **{'PASSED' if r.passed else 'FAILED'}**", ""]
    lines += [f"- FAILURE: {f}" for f in r.failures] + ([""] if r.failures else [])
    lines += _io_text(r.model, r.tflite_sha256, s.ops, s.input, s.output, s.flatbuffer_bytes)
    needs = ", ".join(f"{k} {v:,d}" for k, v in s.arena_needs.items())
    lines += ["", f"Generated sources: model_data.cc/.h, model_settings.h (no front end: MODEL_NO_FRONTEND); "
                  f"kTensorArenaSize = {s.arena_bytes:,d}: the largest measured need (bytes: {needs}) plus "
                  f"{ARENA_MARGIN_TEXT}."]
    lines += targets_section(r.targets, unit="inputs")
    lines += ["", QEMU_NOTE, ""]
    return "\n".join(lines)
