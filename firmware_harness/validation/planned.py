"""``asc validate`` without ``--full``: one TFLM truth and LiteRT's default interpreter on every clip, the
redundant witnesses on a sample (:mod:`firmware_harness.validation.witnesses`).

The truth is a :class:`TruthProgram` when the caller gives one (``asc validate`` gives the host C++ build
of TFLM's reference kernels, :mod:`firmware_harness.firmware.host_truth`, when the toolchain and the
pinned archives are present), else TFLM's Python runtime on every clip. The witnesses then run on the
sample: TFLM's Python runtime (only when the C++ build is the truth) and LiteRT's reference kernels.

Failures, localized as in the full run: a witness that differs from the truth. When TFLM's Python runtime
and LiteRT's reference kernels agree with each other and not with the C++ truth, the C++ build is named;
every difference of the C++ build is localized by its tensor dump against TFLM's Python runtime, every
difference of LiteRT's reference kernels by :class:`~firmware_harness.validation.layers.LayerComparer`
(its documented differences pass, as in the full run).
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import time
from typing import Callable, ContextManager, Protocol

import numpy as np
import pandas as pd

from firmware_harness.validation.layers import LayerComparer
from firmware_harness.validation.report import Agreement, ClipDivergence, agreement
from firmware_harness.validation.runners import REGISTRY, make_runner, truth_runner
from firmware_harness.validation.witnesses import (
    EVERY_CLIP,
    SAMPLE,
    SAMPLE_CLIPS,
    TRUTH_ROLE,
    SamplePlan,
    WitnessClips,
    inference_rows,
    plan_sample,
)

OPTIMIZED = "litert_opt"  # every clip: what a PC user runs
REFERENCE = "litert_ref"  # the sample: a second, independent reference


class TruthProgram(Protocol):
    """A compiled TFLM program with reference kernels, the every-clip truth in place of TFLM Python."""

    name: str  # as in the reports, e.g. "host"
    description: str
    build_inputs_sha256: str  # sources, archives and flags it was built from

    def run_logmel(self, logmel: np.ndarray, *, workers: int) -> tuple[np.ndarray, np.ndarray]:
        """(clips, mels, frames) float32 -> the int8 inputs it computed (inferences, elements) and its
        int8 outputs (inferences, classes), ``workers`` processes."""

    def localize(self, x: np.ndarray) -> dict:
        """One int8 input (the model's input shape, batch 1) -> its first operator differing from TFLM
        Python (``op``, ``op_index``, ``tensor``, ...)."""


#: (export folder, model bytes, arena bytes) -> a context holding the truth program, or None when it
#: cannot be built here (the reason is logged)
TruthProgramFactory = Callable[..., ContextManager["TruthProgram | None"]]


@dataclasses.dataclass(frozen=True)
class PlannedComparison:
    """What :func:`compare_planned` found; the validation report takes its parts."""

    truth: str  # the truth's executor: a TruthProgram's name, or truth_runner()
    truth_outputs: np.ndarray  # (inferences, classes) int8
    agreement: dict[str, Agreement]  # each compared runner, over the inferences it ran (indices: inferences)
    divergences: tuple[ClipDivergence, ...]
    failures: tuple[str, ...]
    witnesses: tuple[WitnessClips, ...]
    sample: SamplePlan
    seconds: float
    program_input_mismatches: int = 0  # inferences whose program-computed input differed from the formula


def _agreement_on(truth: np.ndarray, other: np.ndarray, idx: np.ndarray) -> Agreement:
    """:func:`agreement` of ``other`` (len(idx), classes) with ``truth[idx]``, differing indices as inferences."""
    a = agreement(truth[idx], other)
    return dataclasses.replace(a, differing_clip_indices=tuple(int(idx[i]) for i in a.differing_clip_indices))


def _in_process(model: bytes, x: np.ndarray, *, arena: int, runner: str) -> np.ndarray:
    r = make_runner(runner, model, arena_bytes=arena)
    return np.concatenate([r.run(np.ascontiguousarray(xi)) for xi in x]) if len(x) else np.zeros((0, 0), np.int8)


def compare_planned(model: bytes, x: np.ndarray, *, table: pd.DataFrame, arena: int, workers: int,
                    windows_per_clip: int, name_of: Callable[[int], str], logmel: np.ndarray,
                    program: TruthProgram | None, run_all: Callable[..., dict[str, np.ndarray]],
                    sample_clips: int = SAMPLE_CLIPS, log=print) -> PlannedComparison:
    """``x`` (inferences, *input shape*, batch 1 included) int8, ``windows_per_clip`` inferences per clip of
    ``table`` (evaluate order), ``logmel`` (clips, mels, frames) float32 the features they were quantized
    from (what ``program`` reads). ``run_all`` is :func:`~firmware_harness.validation.export_validation.run_all`
    (runners in ``workers`` processes)."""
    t0 = time.perf_counter()
    k, n_clips = windows_per_clip, len(table)
    tflm = truth_runner()
    mismatched = np.zeros(len(x), bool)
    with cf.ThreadPoolExecutor(1) as pool:  # the program's processes run while LiteRT's default runs here
        if program is not None:
            future = pool.submit(program.run_logmel, logmel, workers=workers)
            optimized = _in_process(model, x, arena=arena, runner=OPTIMIZED)
            prog_inputs, truth_out = future.result()
            mismatched = ~(prog_inputs == x.reshape(len(x), -1)).all(axis=1)
            truth_name = program.name
        else:
            outs = run_all(model, x, arena=arena, workers=workers, runners=(tflm, OPTIMIZED))
            truth_out, optimized = outs[tflm], outs[OPTIMIZED]
            truth_name = tflm
    truth_out = np.array(truth_out, copy=True)
    if mismatched.any():
        log(f"validate: {int(mismatched.sum())} inference(s) where {truth_name}'s QuantizeLogMel differs from the "
            "Python formula: TFLM Python is their truth (asc firmware checks the header's quantization)")
    every = {OPTIMIZED: optimized}
    plan = plan_sample(table, truth=truth_out, every_clip=every, windows_per_clip=k, size=sample_clips)
    extra = np.unique(np.flatnonzero(mismatched) // k)
    rows = np.union1d(np.asarray(plan.rows, np.int64), extra)
    plan = dataclasses.replace(plan, disagreeing=tuple(int(i) for i in np.union1d(plan.disagreeing, extra)),
                               rows=tuple(int(i) for i in rows))
    idx = inference_rows(rows, windows_per_clip=k)
    witnesses = ((tflm,) if program is not None else ()) + (REFERENCE,)
    sampled = run_all(model, x[idx], arena=arena, workers=workers, runners=witnesses)
    if mismatched.any():  # the program ran other inputs there: TFLM Python on the formula's is the truth
        pos = np.searchsorted(idx, np.flatnonzero(mismatched))
        truth_out[np.flatnonzero(mismatched)] = sampled[tflm][pos]
    seconds = time.perf_counter() - t0
    agree = {}
    if program is not None:
        agree[tflm] = _agreement_on(truth_out, sampled[tflm], idx)
    agree[REFERENCE] = _agreement_on(truth_out, sampled[REFERENCE], idx)
    agree[OPTIMIZED] = agreement(truth_out, optimized)
    failures: list[str] = []
    divergences: list[ClipDivergence] = []
    if program is not None and agree[tflm].differing_clip_indices:
        failures.append(_truth_program_failure(program, agree[tflm].differing_clip_indices, x=x, idx=idx,
                                               sampled=sampled, name_of=name_of))
    bad = agree[REFERENCE].differing_clip_indices
    if program is not None:  # where LiteRT agrees with TFLM Python, the truth program's failure names the cause
        off = ~(sampled[tflm] == sampled[REFERENCE]).all(axis=1)  # LiteRT against TFLM Python, per sampled inference
        bad = tuple(int(idx[j]) for j in np.flatnonzero(off))
    found, failure = localize_disagreements(model, x, bad, arena=arena, runner=REFERENCE, name_of=name_of,
                                            truth="TFLM", counted=f"of the {len(rows)} sampled clip(s)")
    divergences += found
    failures += [failure] if failure else []
    truth_desc = program.description if program is not None else REGISTRY[tflm].description
    wit = [WitnessClips(truth_name, TRUTH_ROLE, truth_desc, n_clips),
           WitnessClips(OPTIMIZED, EVERY_CLIP, REGISTRY[OPTIMIZED].description, n_clips),
           WitnessClips("float", EVERY_CLIP, "the float Keras model the int8 model was converted from", n_clips)]
    wit += [WitnessClips(n, SAMPLE, REGISTRY[n].description, len(rows), tuple(int(i) for i in rows))
            for n in witnesses]
    return PlannedComparison(truth=truth_name, truth_outputs=truth_out, agreement=agree, divergences=tuple(divergences),
                             failures=tuple(failures), witnesses=tuple(wit), sample=plan, seconds=seconds,
                             program_input_mismatches=int(mismatched.sum()))


def localize_disagreements(model: bytes, x: np.ndarray, indices, *, arena: int, runner: str,
                           name_of: Callable[[int], str], truth: str, counted: str
                           ) -> tuple[list[ClipDivergence], str | None]:
    """Each of inferences ``indices`` of ``x`` (inferences, *input shape*) localized to the first operator where
    localizable ``runner`` leaves TFLM Python (:class:`LayerComparer`); and the failure when some first
    divergences are not among the runner's documented differences (``truth``: what it is compared with,
    ``counted``: what the count is out of, in the message), else None."""
    if not len(indices):
        return [], None
    comparer = LayerComparer(model, arena_bytes=arena, runner=runner)
    found = [ClipDivergence(clip=name_of(int(i)), index=int(i), divergence=comparer.first_divergence(x[i]))
             for i in indices]
    unknown = [d for d in found if not d.known]
    if not unknown:
        return found, None
    ops = sorted({str(d.op) for d in unknown})
    return found, (f"{REGISTRY[runner].description} ({runner}) diverges from {truth} first at {ops}, not a documented "
                   f"kernel difference, on {len(unknown)} {counted}, e.g. {[d.clip for d in unknown[:3]]}")


def _truth_program_failure(program: TruthProgram, differing: tuple[int, ...], *, x: np.ndarray, idx: np.ndarray,
                           sampled: dict[str, np.ndarray], name_of: Callable[[int], str]) -> str:
    """The failure of a truth program that differs from TFLM Python on inferences ``differing``: named
    (the program when LiteRT's reference kernels side with TFLM Python there), the first one localized."""
    pos = np.searchsorted(idx, np.asarray(differing))
    sides = (sampled[truth_runner()][pos] == sampled[REFERENCE][pos]).all(axis=1)
    first = int(differing[0])
    where = program.localize(x[first])
    clips = [name_of(i) for i in differing[:3]]
    who = (f"{program.name} ({program.description}) is the executor at fault: TFLM Python and LiteRT's reference "
           "kernels agree with each other there" if sides.all() else
           f"{program.name} ({program.description}) and TFLM Python differ")
    return (f"{who}; {program.name}'s int8 outputs differ from TFLM Python on {len(differing)} sampled inference(s), "
            f"clips {clips}; first at operator {where.get('op_index')} {where.get('op')} (clip {clips[0]})")


@contextlib.contextmanager
def no_truth_program(*_args, **_kwargs):
    """A :data:`TruthProgramFactory` that builds nothing: TFLM Python is the every-clip truth."""
    yield None
