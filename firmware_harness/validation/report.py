"""What ``asc validate`` found, as a typed record (``validation_report.json``), and its Markdown.

:func:`firmware_harness.validation.export_validation.validate_export` builds a :class:`ValidationReport`; the CLI,
the pipeline, the grid and the notebook read it by attribute (:func:`read_validation_report`).
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np

from firmware_harness.validation.layers import Divergence
from firmware_harness.validation.runners import OUTPUTS_ONLY, REGISTRY, with_role
from firmware_harness.validation.witnesses import SamplePlan, WitnessClips, format_witnesses
from keras_asc import artifacts, records
from keras_asc.windows import WindowPlan


@dataclasses.dataclass(frozen=True)
class Agreement:
    """int8 outputs of one interpreter against TFLM's, over the same clips."""

    clips: int
    clips_with_any_difference: int
    max_abs_diff_lsb: int
    top1_changed: int
    differing_clip_indices: tuple[int, ...]


def agreement(reference: np.ndarray, other: np.ndarray) -> Agreement:
    """``reference``, ``other``: (clips, classes) int8."""
    diff = np.abs(reference.astype(np.int32) - other.astype(np.int32))
    differs = diff.max(axis=1) > 0
    return Agreement(clips=int(len(reference)), clips_with_any_difference=int(differs.sum()),
                     max_abs_diff_lsb=int(diff.max()) if diff.size else 0,
                     top1_changed=int((reference.argmax(1) != other.argmax(1)).sum()),
                     differing_clip_indices=tuple(int(i) for i in np.flatnonzero(differs)))


@dataclasses.dataclass(frozen=True)
class ClipDivergence:
    """Where one clip's reference-kernel run first left TFLM's (None: no operator output differed)."""

    clip: str
    index: int
    divergence: Divergence | None

    @property
    def op(self) -> str | None:
        return self.divergence.op if self.divergence else None

    @property
    def known(self) -> bool:
        return bool(self.divergence and self.divergence.known)

    @property
    def explanation(self) -> str:
        return (self.divergence.explanation if self.divergence else
                "outputs differed but no operator output did (non-deterministic run?)")


@dataclasses.dataclass(frozen=True)
class OutputError:
    """The figures ST Edge AI's ``validate`` gives, int8 (dequantized) against float probabilities."""

    rmse: float
    max_abs_diff: float
    mean_cosine: float
    min_cosine: float
    top1_agreement: float


def output_error(float_probs: np.ndarray, int8_probs: np.ndarray) -> OutputError:
    d = int8_probs.astype(np.float64) - float_probs
    num = np.sum(float_probs * int8_probs, axis=1)
    den = np.linalg.norm(float_probs, axis=1) * np.linalg.norm(int8_probs, axis=1) + 1e-12
    return OutputError(rmse=float(np.sqrt(np.mean(d ** 2))), max_abs_diff=float(np.abs(d).max()),
                       mean_cosine=float(np.mean(num / den)), min_cosine=float(np.min(num / den)),
                       top1_agreement=float(np.mean(float_probs.argmax(1) == int8_probs.argmax(1))))


@dataclasses.dataclass(frozen=True)
class ScoreRow:
    """One group of the DCASE score table, float and int8 side by side."""

    group: str  # overall, device or scene
    name: str
    clips: int
    unseen_device: bool
    float_accuracy: float
    int8_accuracy: float
    float_log_loss: float
    int8_log_loss: float
    accuracy_drop_pp: float  # float minus int8, percentage points


@dataclasses.dataclass(frozen=True)
class LayerError:
    layer: str
    tensor: str
    shape: tuple[int, ...]
    scale: float
    rmse: float
    relative_rmse: float  # RMSE / std of the float activation
    cosine: float


@dataclasses.dataclass(frozen=True)
class ArenaCheck:
    measured_min_bytes: int
    recorded_total_bytes: int
    header_bytes: int  # kTensorArenaSize in model_settings.h
    allocation_report: str


@dataclasses.dataclass(frozen=True)
class Throughput:
    workers: int
    seconds: float
    clips_per_second: float


@dataclasses.dataclass(frozen=True)
class ValidationReport(records.PassedWithoutFailures):
    model: str
    tflite_sha256: str
    data_dir: str
    split: str
    clips: int
    truth: str
    quantization_path: str
    agreement_with_tflm: dict[str, Agreement]  # every compared runner of the registry (runners.py)
    reference_divergences: tuple[ClipDivergence, ...]
    known_differences: dict[str, str]
    optimized_note: str
    scores: tuple[ScoreRow, ...]  # overall first
    accuracy_drop_pp: float
    output_error: OutputError
    worst_layers: tuple[LayerError, ...]
    arena: ArenaCheck
    flatbuffer_bytes: int
    budget_bytes: int
    throughput: Throughput
    failures: tuple[str, ...]
    seconds_total: float
    packages: dict[str, str]
    git_commit: str
    windows: WindowPlan | None = None  # a windowed model: agreement counts windows, scores clips
    # a compressed export: TFLM on model.tflite against TFLM on model_uncompressed.tflite (which
    # LiteRT runs, as it has no TFLM_DECODE); any difference is a failure
    compressed_agreement: Agreement | None = None
    # which executor ran on which clips (the truth and the every-clip ones, the witnesses' sample)
    witnesses: tuple[WitnessClips, ...] = ()
    sample: SamplePlan | None = None
    stage: str = "validate"

    @property
    def overall(self) -> ScoreRow:
        return next(s for s in self.scores if s.group == "overall")


def write_validation_report(export_dir: Path, report: ValidationReport) -> None:
    records.write(Path(export_dir) / "validation_report.json", report)


def read_validation_report(export_dir: Path) -> ValidationReport:
    return records.read(ValidationReport, Path(export_dir) / "validation_report.json")


def litert_section(agreement_with_tflm: dict[str, Agreement], divergences: tuple[ClipDivergence, ...], *,
                   optimized_note: str, unit: str, item: str = "clip(s)") -> list[str]:
    """The report's "LiteRT against TFLM" lines: agreement per runtime of the registry
    (``unit``: what the counts count, e.g. clips), then the first diverging operator of every
    disagreement of a localizable runner (``item``: one of them, counted), then the note of each
    outputs-only runner that differed (the registry's, else ``optimized_note``)."""

    lines = ["", "## LiteRT against TFLM", "", f"| runtime | {unit} differing | max diff (LSB) | top-1 changed |",
             "|---|---|---|---|"]
    for n, a in agreement_with_tflm.items():
        lines.append(f"| {n} | {a.clips_with_any_difference} / {a.clips} | {a.max_abs_diff_lsb} | {a.top1_changed} |")
    divs = divergences
    if divs:
        by_op = Counter(str(d.op) for d in divs)
        lines += ["", f"First diverging operator of the reference kernels ({len(divs)} {item}, each localized): "
                  + ", ".join(f"{op} x{c}" for op, c in by_op.most_common())]
        for op, _ in by_op.most_common():
            ex = next(d for d in divs if str(d.op) == op)
            v = ex.divergence
            where = (f"tensor {v.tensor} {list(v.shape)}, {v.elements_differing} element(s) differ by up to "
                     f"{v.max_abs_diff_lsb} LSB. " if v else "")
            lines.append(f"- {op}: {'documented' if ex.known else 'NOT a documented difference'}; "
                         f"e.g. {ex.clip}, {where}{ex.explanation}")
    for n in with_role(OUTPUTS_ONLY):
        if n in agreement_with_tflm and agreement_with_tflm[n].clips_with_any_difference:
            lines += ["", f"{n}: {REGISTRY[n].note or optimized_note}"]
    return lines


def format_report(r: ValidationReport) -> str:
    """The Markdown report; also what the CLI prints."""
    lines = [f"# Validation of {Path(r.model).name}", "",
             f"{r.clips} clips of the evaluate split; the truth is {r.truth} (TFLM's reference kernels). "
             f"Result: **{'PASSED' if r.passed else 'FAILED'}**", ""]
    lines += [f"- FAILURE: {f}" for f in r.failures]
    unit = "windows" if r.windows else "clips"
    if r.windows:
        lines += [f"Windowed model: {r.windows.per_clip} windows of {r.windows.frames} frames per clip (starts "
                  f"{list(r.windows.starts)}); the clip's class is the largest sum of its windows' int8 outputs "
                  "(model_settings.h's ClipAccumulator), its probabilities their mean."]
    c = r.compressed_agreement
    if c is not None:
        lines += ["", f"Compressed model: TFLM's outputs on model.tflite (LUT-compressed weights) and on "
                  f"model_uncompressed.tflite differ on {c.clips_with_any_difference} of {c.clips} {unit}. LiteRT has "
                  "no TFLM_DECODE operator, so it runs model_uncompressed.tflite below."]
    lines += format_witnesses(r.witnesses, r.sample, total=r.clips)
    lines += litert_section(r.agreement_with_tflm, r.reference_divergences, optimized_note=r.optimized_note, unit=unit)
    e = r.output_error
    drop = r.accuracy_drop_pp
    lines += ["", "## int8 (TFLM) against float", "",
              f"int8 {'lost' if drop > 0 else 'did not lose'} accuracy overall: {drop:+.2f} points "
              f"(float minus int8). Top-1 agreement {100 * e.top1_agreement:.1f} %, output RMSE {e.rmse:.4f}, "
              f"max abs diff {e.max_abs_diff:.4f}, mean cosine {e.mean_cosine:.4f}.", "",
              "| group | name | clips | float acc | int8 acc | drop (pp) | float log loss | int8 log loss |",
              "|---|---|---|---|---|---|---|---|"]
    for s in r.scores:
        name = f"{s.name}*" if s.unseen_device else s.name
        lines.append(f"| {s.group} | {name} | {s.clips} | {100 * s.float_accuracy:.1f} % | "
                     f"{100 * s.int8_accuracy:.1f} % | {s.accuracy_drop_pp:+.1f} | {s.float_log_loss:.3f} | "
                     f"{s.int8_log_loss:.3f} |")
    worst = sorted((s for s in r.scores if s.group != "overall"), key=lambda s: -s.accuracy_drop_pp)[:3]
    lines += ["", "Largest drops: " + ", ".join(f"{s.group} {s.name} ({s.accuracy_drop_pp:+.1f} pp)" for s in worst), ""]
    if r.worst_layers:
        lines += ["Layers with the largest quantization error (TFLM dequantized vs float activations):", "",
                  "| layer | shape | relative RMSE | cosine |", "|---|---|---|---|"]
        lines += [f"| {w.layer} | {list(w.shape)} | {w.relative_rmse:.4f} | {w.cosine:.4f} |" for w in r.worst_layers]
    a = r.arena
    lines += ["", "## Memory", "",
              f"- flatbuffer: {r.flatbuffer_bytes:,d} bytes (budget {r.budget_bytes:,d})",
              f"- tensor arena: {a.measured_min_bytes:,d} bytes measured minimum; header kTensorArenaSize "
              f"{a.header_bytes:,d}; allocator total with a large arena {a.recorded_total_bytes:,d}",
              f"- throughput: {r.throughput.clips_per_second} clips/s with {r.throughput.workers} worker(s) "
              "(every executor of the table above on its clips)", ""]
    return "\n".join(lines)


def reusable_validation(export_dir: Path, *, tflite_sha256: str, data_dir: Path) -> ValidationReport | None:
    """The stored validation of ``export_dir`` when it validated this model (``tflite_sha256``) on
    ``data_dir`` with the interpreters installed now; None when ``asc validate`` must run again."""
    report = artifacts.read_or_none(read_validation_report, export_dir)
    if (report is None or report.tflite_sha256 != tflite_sha256 or report.data_dir != str(Path(data_dir).resolve())
            or not artifacts.same_runtime_packages(report.packages)):
        return None
    return report
