"""``asc validate MODEL.tflite`` for a model without an export folder.

:func:`validate_model`: TFLM's Python runtime (the truth), LiteRT's reference kernels and LiteRT's
default interpreter on every input through the exports' own comparison
(:func:`firmware_harness.validation.export_validation.compare_runtimes`: every reference-kernel
disagreement localized to its first diverging operator, anything but a documented kernel difference
fails), and the arena measured; writes ``validation_report.md/.json``, ``inputs.npy`` and TFLM's
``outputs.npy`` into ``MODEL.validation/`` (beside the model), built aside and renamed into place.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from firmware_harness.model_file import ARENA_MARGIN_TEXT, VALIDATE_STAGE, IoTensor, io_text_lines
from firmware_harness.model_inputs import InputsUsed, describe_inputs, load_inputs, start_model_stage
from firmware_harness.model_source import ModelSource
from firmware_harness.validation.export_validation import compare_runtimes
from firmware_harness.validation.report import Agreement, ArenaCheck, ClipDivergence, Throughput, litert_section
from firmware_harness.validation.runners import KNOWN_DIFFERENCES, OPTIMIZED_KERNELS_NOTE
from keras_asc import artifacts, records
from keras_asc.parallel import DEFAULT_WORKERS
from tflite_export.arena import measure_arena, recommended_arena


# ----------------------------------------------------------------------------- validate
@dataclasses.dataclass(frozen=True)
class ModelValidationReport(records.PassedWithoutFailures):
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


def read_model_validation_report(folder: Path) -> ModelValidationReport:
    return records.read(ModelValidationReport, Path(folder) / "validation_report.json")


def validate_model(model_path: Path | ModelSource, *, inputs_path: Path | None = None,
                   random_count: int | None = None, seed: int = 0, out_dir: Path | None = None, workers: int = DEFAULT_WORKERS,
                   log=print) -> ModelValidationReport:
    """Validate any int8 .tflite on its int8 inputs (:func:`load_inputs`; ``random_count`` defaults
    to :data:`DEFAULT_RANDOM_INPUTS` when no ``inputs_path`` is given) and write the reports into
    ``out_dir`` (default :func:`~firmware_harness.model_source.out_dir_beside`); ``report.failures``
    lists what failed."""
    t_start = time.perf_counter()
    start = start_model_stage(model_path, inputs_path=inputs_path, random_count=random_count, out_dir=out_dir,
                              stage=VALIDATE_STAGE, command="validation")  # before any work
    model, out, stage_inputs, random_count = start.model, start.out, start.reads, start.random_count
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


def format_model_validation(r: ModelValidationReport) -> str:
    """``validation_report.md``; also what the CLI prints."""
    lines = [f"# Validation of {Path(r.model).name}", "",
             f"{r.inputs.describe()}; TFLM is the truth. Result: **{'PASSED' if r.passed else 'FAILED'}**", ""]
    lines += [f"- FAILURE: {f}" for f in r.failures] + ([""] if r.failures else [])
    lines += io_text_lines(r.model, r.tflite_sha256, r.ops, r.input, r.output, r.flatbuffer_bytes)
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
