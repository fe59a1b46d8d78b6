"""Which executor checks which clips (issue #32): one TFLM truth and every shipped executor on every
clip, the redundant witnesses on a sample.

Every clip: the truth (TFLM's reference kernels: the host C++ build of the pinned sources when the
toolchain is present, else TFLM's Python runtime), LiteRT's default interpreter, the float model and, in
``asc firmware``, every kernel set that ships (CMSIS-NN) from log-mel and the front end from PCM.

The sample (:func:`plan_sample`) of the redundant witnesses (TFLM's Python runtime when the C++ build is
the truth, LiteRT's reference kernels):

* a stratified scene x device sample of at least :data:`SAMPLE_CLIPS` clips (every cell covered; all
  clips when there are fewer), the same for the same table;
* every clip where an every-clip int8 executor decides otherwise than the truth (a different top-1
  class; bits alone do not count, :func:`disagreeing_clips`; the float model is not one: its decisions
  differ by quantization, which the report counts);
* every clip whose top-1 margin is within one int8 output step: the clips a rounding difference could
  flip (a windowed model: a window's margin, or the clip's accumulated margin within one step per window).

``full`` puts every clip in the sample: every witness on every clip.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from keras_asc.dataset import stratified_sample

#: The stratified part of the witnesses' sample: at least this many clips (all when fewer).
SAMPLE_CLIPS = 256
EVERY_CLIP = "every clip"
SAMPLE = "sample"
TRUTH_ROLE = "truth"


@dataclasses.dataclass(frozen=True)
class WitnessClips:
    """One executor and the evaluate clips it ran on."""

    executor: str
    role: str  # TRUTH_ROLE, EVERY_CLIP or SAMPLE
    description: str
    clips: int
    rows: tuple[int, ...] | None = None  # evaluate indices; None: every clip


@dataclasses.dataclass(frozen=True)
class SamplePlan:
    """The witnesses' clips (evaluate indices, sorted) and why each is in."""

    full: bool  # every clip (--full)
    stratified: tuple[int, ...]
    disagreeing: tuple[int, ...]  # an every-clip executor decides otherwise than the truth
    small_margin: tuple[int, ...]  # top-1 margin within one int8 output step
    rows: tuple[int, ...]  # the union (every clip with full)

    @property
    def clips(self) -> int:
        return len(self.rows)


def stratified_rows(table: pd.DataFrame, *, size: int = SAMPLE_CLIPS) -> np.ndarray:
    """Sorted row indices of a deterministic scene x device sample of ``table`` (evaluate order): at
    least ``size`` clips and at least one per cell, all rows when the table is no larger."""
    cells = table.groupby(["scene_label", "device"]).ngroups
    size = max(size, cells)
    if size >= len(table):
        return np.arange(len(table))
    picked = stratified_sample(table.reset_index(drop=True), size=size, seed=0)
    return np.sort(picked.index.to_numpy())


def _top2_margin(scores: np.ndarray) -> np.ndarray:
    """(n, classes) -> (n,) int64: the largest score minus the second largest."""
    s = np.sort(np.asarray(scores, np.int64), axis=1)
    return s[:, -1] - s[:, -2]


def small_margin_clips(outputs: np.ndarray, *, windows_per_clip: int = 1) -> np.ndarray:
    """Clips (sorted) whose decision a one-step rounding difference could change: ``outputs``
    (inferences, classes) int8, ``windows_per_clip`` inferences per clip (clip-major). A clip is in when
    any of its inferences has a top-1 margin of at most one step, or (windows) when its accumulated margin
    is at most one step per window."""
    k = windows_per_clip
    per_inference = (_top2_margin(outputs) <= 1).reshape(-1, k).any(axis=1)
    if k > 1:
        sums = np.asarray(outputs, np.int64).reshape(-1, k, outputs.shape[1]).sum(axis=1)
        per_inference |= _top2_margin(sums) <= k
    return np.flatnonzero(per_inference)


def disagreeing_clips(a: np.ndarray, b: np.ndarray, *, windows_per_clip: int = 1) -> np.ndarray:
    """Clips (sorted) where (inferences, classes) outputs ``a`` and ``b`` decide differently: a different
    top-1 class on any inference, or (windows) on the clip's summed outputs. Bits alone do not count:
    LiteRT's default kernels round differently from TFLM's reference kernels by design (on about half the
    clips of the 2,968-clip benchmark, 2026-12-07), which says nothing about the truth."""
    k, classes = windows_per_clip, a.shape[1]
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    per_inference = (a.argmax(axis=1) != b.argmax(axis=1)).reshape(-1, k).any(axis=1)
    if k > 1:
        per_inference |= a.reshape(-1, k, classes).sum(axis=1).argmax(axis=1) != b.reshape(
            -1, k, classes).sum(axis=1).argmax(axis=1)
    return np.flatnonzero(per_inference)


def plan_sample(table: pd.DataFrame, *, truth: np.ndarray, every_clip: dict[str, np.ndarray],
                windows_per_clip: int = 1, full: bool = False, size: int = SAMPLE_CLIPS) -> SamplePlan:
    """The witnesses' clips of ``table`` (evaluate order): the stratified part, every clip where an
    executor of ``every_clip`` decides otherwise than ``truth`` (:func:`disagreeing_clips`) and every
    clip one step could flip (:func:`small_margin_clips`). ``truth`` and each of ``every_clip`` (executor ->
    outputs): (inferences, classes) on every clip, ``windows_per_clip`` inferences per clip."""
    k = windows_per_clip
    strat = stratified_rows(table, size=size)
    differ = np.unique(np.concatenate([np.zeros(0, np.int64)] + [
        disagreeing_clips(truth, o, windows_per_clip=k) for o in every_clip.values()]))
    margin = small_margin_clips(truth, windows_per_clip=k)
    rows = np.arange(len(table)) if full else np.union1d(np.union1d(strat, differ), margin)
    as_tuple = lambda v: tuple(int(i) for i in v)  # noqa: E731
    return SamplePlan(full=full, stratified=as_tuple(strat), disagreeing=as_tuple(differ),
                      small_margin=as_tuple(margin), rows=as_tuple(rows))


def inference_rows(rows: np.ndarray | tuple[int, ...], *, windows_per_clip: int) -> np.ndarray:
    """Evaluate clip indices -> their inferences' indices (clip-major, ``windows_per_clip`` each)."""
    rows = np.asarray(rows, np.int64)
    return (rows[:, None] * windows_per_clip + np.arange(windows_per_clip)).ravel()


def format_witnesses(witnesses: tuple[WitnessClips, ...], sample: SamplePlan | None, *, total: int) -> list[str]:
    """The report's "who checked which clips" section (Markdown lines)."""
    if not witnesses:
        return []
    lines = ["", "## Executors and their clips", "", "| executor | role | clips | what |", "|---|---|---|---|"]
    for w in witnesses:
        lines.append(f"| {w.executor} | {w.role} | {w.clips} / {total} | {w.description} |")
    if sample is not None:
        why = ("--full: every clip" if sample.full else
               f"{len(sample.stratified)} stratified (scene x device, every cell), {len(sample.disagreeing)} where "
               f"an every-clip executor decides otherwise than the truth, {len(sample.small_margin)} with a top-1 margin within one int8 "
               f"output step")
        lines += ["", f"The sample: {sample.clips} clips ({why}); their evaluate indices are in the JSON report."]
    return lines
