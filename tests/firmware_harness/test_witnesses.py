"""Issue #32: one TFLM truth on every clip, the redundant witnesses on a sample. The sample is
deterministic and covers every scene x device cell; a one-step difference planted in an every-clip
executor on a clip outside the stratified sample still fails the run, naming that clip and executor; the
report states each executor's clips; ``full`` runs every witness on every clip."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from firmware_harness.validation.export_validation import validate_export
from firmware_harness.validation.report import format_report, read_validation_report
from firmware_harness.validation.runners import make_runner
from firmware_harness.validation.witnesses import (
    SAMPLE,
    TRUTH_ROLE,
    disagreeing_clips,
    small_margin_clips,
    stratified_rows,
)
from keras_asc.feature_cache import build_feature_cache
from tflite_export.export_result import read_export
from tflite_export.input_quant import quantize_input

QUIET = dict(log=lambda *_: None)
SMALL_SAMPLE = 4  # the tiny split has 80 clips: a small stratified part leaves clips outside the sample


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"scene_label": rng.choice([f"scene{i}" for i in range(10)], n),
                         "device": rng.choice(["a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6"], n)})


def test_stratified_sample_is_deterministic_and_covers_every_cell():
    t = _table(2968)
    rows = stratified_rows(t, size=256)
    np.testing.assert_array_equal(rows, stratified_rows(t.copy(), size=256))
    assert len(rows) == 256 and np.all(np.diff(rows) > 0)
    cells = set(map(tuple, t[["scene_label", "device"]].to_numpy()))
    assert set(map(tuple, t.iloc[rows][["scene_label", "device"]].to_numpy())) == cells
    assert len(stratified_rows(t, size=3)) == len(cells)  # never fewer than one clip per cell


def test_small_margins_are_the_clips_one_step_could_flip():
    out = np.array([[10, 9, 0], [10, 8, 0], [-5, -5, -128], [127, -128, -128]], np.int8)
    np.testing.assert_array_equal(small_margin_clips(out), [0, 2])
    # two windows per clip: a window within one step, or sums within one step per window
    win = np.array([[10, 9], [0, 30], [10, 5], [3, 7], [20, 0], [0, 10]], np.int8)
    np.testing.assert_array_equal(small_margin_clips(win, windows_per_clip=2), [0, 1])


class PlantedTruth:
    """A truth program computing TFLM Python's outputs from the log-mel, on one clip with its outputs
    rotated by one class (another top-1 class: a wrong decision)."""

    name = "host"
    description = "a test's truth program with one planted difference"
    build_inputs_sha256 = "0" * 64

    def __init__(self, model: bytes, *, quant, arena: int, clip: int | None):
        self.model, self.quant, self.arena, self.clip = model, quant, arena, clip

    def run_logmel(self, logmel, *, workers):
        x = quantize_input(np.asarray(logmel), quant=self.quant)
        r = make_runner("tflm", self.model, arena_bytes=self.arena)
        out = np.concatenate([r.run(xi[None]) for xi in x])
        if self.clip is not None:
            out[self.clip] = np.roll(out[self.clip], 1)
        return x.reshape(len(x), -1), out

    def localize(self, x):
        return {"op": "PLANTED", "op_index": 0}


def _copy_export(tiny_export, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_export.parent, run)
    return run / tiny_export.name


def _planted_factory(clip, quant):
    import contextlib

    @contextlib.contextmanager
    def factory(export_dir, *, model, arena, log):
        yield PlantedTruth(model, quant=quant, arena=arena, clip=clip)
    return factory


def _outside_the_sample(tiny_export, tiny_dataset, tiny_work) -> tuple[int, str]:
    """A clip outside the stratified part whose top-1 margin is more than one step: (index, file name)."""
    exp = read_export(tiny_export)
    fs = build_feature_cache(tiny_dataset, tiny_work, config=exp.features, workers=1, **QUIET)
    table = fs.table("evaluate")
    x = quantize_input(fs.features("evaluate"), quant=exp.input.quantization)
    r = make_runner("tflm", (tiny_export / "model.tflite").read_bytes(), arena_bytes=exp.size.arena_recommended_bytes)
    out = np.concatenate([r.run(xi[None]) for xi in x])
    inside = set(stratified_rows(table, size=SMALL_SAMPLE)) | set(small_margin_clips(out))
    clip = next(i for i in range(len(table)) if i not in inside)
    return clip, str(table["filename"].iloc[clip])


def test_a_truth_deciding_otherwise_outside_the_stratified_part_fails_naming_clip_and_executor(
        tiny_export, tiny_dataset, tiny_work, tmp_path):
    clip, name = _outside_the_sample(tiny_export, tiny_dataset, tiny_work)
    exp = _copy_export(tiny_export, tmp_path)
    r = validate_export(exp / "model.tflite", tiny_dataset, tiny_work, workers=2, layer_clips=1,
                        sample_clips=SMALL_SAMPLE, truth_program=_planted_factory(clip, read_export(exp).input.quantization),
                        **QUIET)
    assert not r.passed and r.truth == "host"
    assert clip not in r.sample.stratified and clip in r.sample.disagreeing and clip in r.sample.rows
    (failure,) = r.failures
    assert "host" in failure and "at fault" in failure and "PLANTED" in failure
    assert r.sample.clips < r.clips  # the witnesses did not run every clip


def test_bits_alone_are_no_disagreement_a_decision_is():
    truth = np.array([[10, 2, 0], [5, 9, 0], [0, 0, 7], [3, 1, 0]], np.int8)
    other = np.array([[11, 2, 0], [9, 5, 0], [0, 0, 7], [3, 1, 1]], np.int8)  # clip 1 decides otherwise
    np.testing.assert_array_equal(disagreeing_clips(truth, other), [1])
    # two windows per clip: one window's decision, or the clip's summed decision
    win_truth = np.array([[10, 0], [0, 9], [10, 0], [0, 1]], np.int8)
    win_other = np.array([[10, 0], [1, 8], [10, 0], [1, 0]], np.int8)
    np.testing.assert_array_equal(disagreeing_clips(win_truth, win_other, windows_per_clip=2), [1])


def test_the_report_states_each_executors_clips(tiny_export, tiny_dataset, tiny_work, tmp_path):
    exp = _copy_export(tiny_export, tmp_path)
    quant = read_export(exp).input.quantization
    r = validate_export(exp / "model.tflite", tiny_dataset, tiny_work, workers=1, layer_clips=1,
                        sample_clips=SMALL_SAMPLE, truth_program=_planted_factory(None, quant), **QUIET)
    assert r.passed
    roles = {w.executor: w for w in r.witnesses}
    assert roles["host"].role == TRUTH_ROLE and roles["host"].clips == r.clips
    assert roles["litert_opt"].clips == roles["float"].clips == r.clips
    for n in ("tflm", "litert_ref"):
        assert roles[n].role == SAMPLE and roles[n].rows == r.sample.rows and roles[n].clips == len(r.sample.rows)
        assert r.agreement_with_tflm[n].clips == len(r.sample.rows)
    assert set(r.sample.stratified) <= set(r.sample.rows) and set(r.sample.small_margin) <= set(r.sample.rows)
    md = format_report(r)
    assert "## Executors and their clips" in md and f"| tflm | sample | {r.sample.clips} / {r.clips} |" in md
    assert read_validation_report(exp) == r  # witnesses and sample round-trip through the JSON


def test_full_runs_every_witness_on_every_clip(tiny_export, tiny_dataset, tiny_work, tmp_path):
    exp = _copy_export(tiny_export, tmp_path)
    quant = read_export(exp).input.quantization
    r = validate_export(exp / "model.tflite", tiny_dataset, tiny_work, workers=1, layer_clips=1, full=True,
                        sample_clips=SMALL_SAMPLE, truth_program=_planted_factory(None, quant), **QUIET)
    assert r.passed and r.sample.full and r.sample.clips == r.clips
    assert all(w.clips == r.clips and w.rows is None for w in r.witnesses)
    assert {w.executor for w in r.witnesses} == {"tflm", "litert_ref", "litert_opt", "float"}
    assert all(a.clips == r.clips for a in r.agreement_with_tflm.values())


# ----------------------------------------------------------------------------- with the host C++ build
@pytest.fixture(scope="module")
def host_truth_export(tiny_export, tiny_dataset, tiny_work, tmp_path_factory):
    """A copy of the tiny export validated with the host C++ build as the truth (small stratified part)."""
    from firmware_harness.firmware.host_truth import host_reference_truth
    from tests.firmware_harness.conftest import require_targets

    require_targets("host", "host-cmsis-nn")
    exp = _copy_export(tiny_export, tmp_path_factory.mktemp("host-truth"))
    r = validate_export(exp / "model.tflite", tiny_dataset, tiny_work, workers=2, layer_clips=1,
                        sample_clips=SMALL_SAMPLE, truth_program=host_reference_truth, **QUIET)
    return exp, r


@pytest.mark.slow
def test_the_host_build_is_the_truth_and_firmware_takes_its_run(host_truth_export, tiny_dataset, tiny_work):
    from firmware_harness.firmware.check import check_firmware

    exp, r = host_truth_export
    assert r.passed and r.truth == "host" and r.agreement_with_tflm["tflm"].clips_with_any_difference == 0
    report = check_firmware(exp, tiny_dataset, tiny_work, targets=("host", "host-cmsis-nn"), from_audio=True,
                            workers=2, **QUIET)
    assert report.passed, report.failures
    host, cmsis = report.targets
    assert host.logmel_run_from_validate and not cmsis.logmel_run_from_validate
    assert host.outputs_identical == cmsis.outputs_identical == r.clips
    assert "host C++ build" in report.truth


@pytest.mark.slow
def test_a_one_step_difference_in_cmsis_nn_outside_the_sample_fails_naming_clip_and_target(
        host_truth_export, tiny_dataset, tiny_work, tmp_path, monkeypatch):
    from pathlib import Path

    from firmware_harness.builds import program as fw_program
    from firmware_harness.firmware.check import check_firmware

    exp, r = host_truth_export
    clip = next(i for i in range(r.clips) if i not in r.sample.rows)
    export = tmp_path / "run" / "export"
    shutil.copytree(exp.parent, export.parent)
    real = fw_program.run_program

    def one_step_off(program, work, **kw):
        run = real(program, work, **kw)
        if program.target.name == "host-cmsis-nn" and kw.get("logmel") is not None and Path(work).name == "work":
            v = int(run.outputs[clip, 2])
            run.outputs[clip, 2] = v + 1 if v < 127 else v - 1
        return run

    monkeypatch.setattr(fw_program, "run_program", one_step_off)
    report = check_firmware(export, tiny_dataset, tiny_work, targets=("host", "host-cmsis-nn"), workers=1, **QUIET)
    assert not report.passed
    (failure,) = report.failures
    assert failure.startswith("host-cmsis-nn:") and f"evaluate indices [{clip}]" in failure
