"""The TAU-scale speed-ups of the harness keep every check on every clip: host programs in parallel
processes (clips split in contiguous slices), the PCM path's second Invoke skipped only for an input
identical to the log-mel path's, TFLM's outputs shared with `asc validate` only when they are provably
the same computation, validation workers reading one memory-mapped input file. An introduced one-step
difference in one clip is still caught and named by its evaluate index."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from firmware_harness.builds import program as fw_program
from firmware_harness.firmware.check import check_firmware
from firmware_harness.validation.export_validation import read_validated_truth, run_all, write_validated_truth
from tests.firmware_harness.conftest import QUIET, require_targets


def test_slices_cover_every_clip_once_in_order():
    for n in (1, 2, 7, 240, 2968):
        for parts in (1, 2, 3, 8):
            s = fw_program._slices(n, parts)
            assert [i for a, b in s for i in range(a, b)] == list(range(n))
            assert len(s) == min(parts, n)


def test_validation_workers_on_a_shared_file_equal_one_process(tiny_export):
    from firmware_harness.validation.runners import make_runner
    from tflite_export.arena import measure_arena

    model = (tiny_export / "model.tflite").read_bytes()
    arena = measure_arena(tiny_export / "model.tflite").min_bytes
    shape = tuple(make_runner("tflm", model, arena_bytes=arena).input_details["shape"])
    x = np.random.default_rng(1).integers(-128, 128, size=(11, *shape), dtype=np.int8)
    one = run_all(model, x, arena=arena, workers=1, chunk=4)
    two = run_all(model, x, arena=arena, workers=2, chunk=4)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])


def test_validated_truth_is_reused_only_for_the_same_inputs_model_and_bytes(tmp_path):
    x = np.random.default_rng(0).integers(-128, 128, size=(5, 4, 6, 1), dtype=np.int8)
    out = np.random.default_rng(1).integers(-128, 128, size=(5, 10), dtype=np.int8)
    write_validated_truth(tmp_path, x, out, tflite_sha256="a" * 64)
    np.testing.assert_array_equal(read_validated_truth(tmp_path, x, tflite_sha256="a" * 64).outputs, out)
    assert read_validated_truth(tmp_path, x, tflite_sha256="b" * 64) is None  # another model
    y = x.copy()
    y[3, 2, 1, 0] ^= 1  # one input element one step away
    assert read_validated_truth(tmp_path, y, tflite_sha256="a" * 64) is None
    from firmware_harness.validation.export_validation import TRUTH_OUTPUTS

    raw = bytearray((tmp_path / TRUTH_OUTPUTS).read_bytes())
    raw[-1] ^= 1  # an edited output
    (tmp_path / TRUTH_OUTPUTS).write_bytes(bytes(raw))
    assert read_validated_truth(tmp_path, x, tflite_sha256="a" * 64) is None


@pytest.mark.slow
def test_pcm_path_skips_exactly_the_identical_inputs(firmware_run):
    """The session's firmware run (2 workers): every PCM-path inference whose int8 input equals the log-mel
    path's was not invoked again, every other one was, and all are compared."""
    export, report = firmware_run
    for t in report.targets:
        if t.emulated:
            assert t.from_audio.invokes_skipped == 0 and t.worker_processes == 1
            continue
        d = export / "firmware" / t.target
        same = (np.load(d / "inputs.npy") == np.load(d / "inputs_from_audio.npy")).all(axis=1)
        assert t.worker_processes == 2
        assert 0 < t.from_audio.invokes_skipped == int(same.sum())
        assert t.from_audio.model_bit_exact == t.from_audio.clips


@pytest.mark.slow
def test_a_one_step_difference_in_one_clip_is_caught_and_named_in_parallel(tiny_export, tiny_dataset, tiny_work,
                                                                           tmp_path, monkeypatch):
    """The host program's output of one clip (the first of the second worker's slice) is moved one step:
    the log-mel check fails naming that clip's evaluate index, and so does the PCM path, whose skipped
    Invoke reuses that (wrong) output: the skip cannot hide a difference."""
    require_targets("host")
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    real = fw_program.run_program

    def one_step_off(program, work, **kw):
        run = real(program, work, **kw)
        if Path(work).name == "part1":
            run.outputs[0, 3] = run.outputs[0, 3] + 1 if run.outputs[0, 3] < 127 else 126
        return run

    monkeypatch.setattr(fw_program, "run_program", one_step_off)
    report = check_firmware(export, tiny_dataset, tiny_work, targets=("host",), from_audio=True, workers=2, **QUIET)
    (host,) = report.targets
    k = fw_program._slices(host.clips, 2)[1][0]
    assert not report.passed
    assert host.worker_processes == 2 and host.outputs_identical == host.clips - 1
    assert host.first_output_divergence["index"] == k
    assert any(f"evaluate index {k}" in f for f in report.failures)
    d = export / "firmware" / "host"
    if (np.load(d / "inputs.npy")[k] == np.load(d / "inputs_from_audio.npy")[k]).all():  # so its Invoke was skipped
        assert host.from_audio.model_bit_exact == host.clips - 1
        assert any("--from-audio" in f and f"evaluate indices [{k}]" in f for f in report.failures)
