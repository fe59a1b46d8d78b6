import numpy as np
import pytest

from firmware_harness.validation import runners
from firmware_harness.validation.export_validation import run_all
from firmware_harness.validation.layers import LayerComparer, explain
from firmware_harness.validation.report import agreement
from firmware_harness.validation.runners import KNOWN_DIFFERENCES, make_runner

ARENA = 200_000


def _random_inputs(n, seed=0):
    return np.random.default_rng(seed).integers(-128, 128, size=(n, 1, 16, 16, 1), dtype=np.int8)


def test_fc_divergence_is_localized_to_fully_connected(fc_tflite):
    x = _random_inputs(2000)
    outs = run_all(fc_tflite, x, arena=ARENA, workers=1)
    ref = agreement(outs["tflm"], outs["litert_ref"])
    # the documented behaviour: a few per thousand, never most of them
    assert 0 < ref.clips_with_any_difference < 40
    comparer = LayerComparer(fc_tflite, arena_bytes=ARENA)
    found = [comparer.first_divergence(x[i]) for i in ref.differing_clip_indices]
    assert all(d is not None for d in found)
    assert {d.op for d in found} == {"FULLY_CONNECTED"}
    assert all(d.known and "float" in d.explanation for d in found)
    assert all(d.max_abs_diff_lsb >= 1 and d.output_quant[0] > 0 for d in found)
    # identical outputs: no divergence anywhere
    same = next(i for i in range(len(x)) if i not in ref.differing_clip_indices)
    assert comparer.first_divergence(x[same]) is None


def test_unlisted_divergence_is_not_known(fc_tflite, monkeypatch):
    x = _random_inputs(2000)
    outs = run_all(fc_tflite, x, arena=ARENA, workers=1)
    first = agreement(outs["tflm"], outs["litert_ref"]).differing_clip_indices[0]
    monkeypatch.setattr(runners, "KNOWN_DIFFERENCES", {})  # without the documented entry ...
    d = LayerComparer(fc_tflite, arena_bytes=ARENA).first_divergence(x[first])
    assert d.op == "FULLY_CONNECTED" and not d.known  # ... the same divergence is unknown
    monkeypatch.undo()
    assert explain("CONV_2D") == (False, "not a documented kernel difference")
    assert set(KNOWN_DIFFERENCES) == {"FULLY_CONNECTED"}  # the list stays this small


def test_optimized_interpreter_is_not_localized(fc_tflite):
    with pytest.raises(ValueError, match="only comparable with the reference kernels"):
        make_runner("litert_opt", fc_tflite, arena_bytes=ARENA, preserve=True)


def test_parallel_equals_serial(fc_tflite):
    x = _random_inputs(40, seed=1)
    a = run_all(fc_tflite, x, arena=ARENA, workers=1, chunk=7)
    b = run_all(fc_tflite, x, arena=ARENA, workers=2, chunk=7)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    single = make_runner("tflm", fc_tflite, arena_bytes=ARENA)
    np.testing.assert_array_equal(single.run(x[3]), a["tflm"][3:4])


def tflm_runs_in_child(model_path, arena: int) -> bool:
    """Whether TFLM allocates and invokes with ``arena`` bytes, tried in a child process:
    a too-small arena can kill the process (segfault) instead of raising."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from firmware_harness.validation.runners import make_runner; "
            f"r = make_runner('tflm', open({str(model_path)!r}, 'rb').read(), arena_bytes={arena}); "
            "r.run(np.zeros(r.input_details['shape'], np.int8))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_too_small_arena_fails(fc_tflite, tmp_path):
    path = tmp_path / "fc.tflite"
    path.write_bytes(fc_tflite)
    assert tflm_runs_in_child(path, ARENA)
    assert not tflm_runs_in_child(path, 2048)  # (this one segfaults TFLM's Python runtime)
