"""``asc fit`` for real (slow: builds firmware and runs QEMU, starts a local Ray; with CI=true a missing
toolchain is a failure, never a skip): the premise of the feasibility check, and a search on the tiny
dataset on both engines."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import firmware_harness
from asc_cli.fitting.feasibility import untrained_model
from asc_cli.fitting.space import Candidate
from asc_cli.main import main
from keras_asc import artifacts
from tests.conftest import TINY_CLIP_SECONDS

pytestmark = pytest.mark.slow
ARCHITECTURE = {"model": "resnet11", "width": 0.125, "input": [64, 32], "graph": "int8"}


#: The operators that carry the MACs, whose CMSIS-NN kernels take one path for any weights and inputs.
#: ADD, MEAN and SOFTMAX do not: their counts move by a few hundred instructions with the values
#: (saturation and look-up branches), measured below 0.1 % of an Invoke (docs/fit.md).
MAC_OPERATORS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D"}
#: How far the untrained model's Invoke may be from another set of weights' (the estimate's error).
INVOKE_TOLERANCE = 0.005


@pytest.fixture(scope="module")
def two_initialisations(tmp_path_factory):
    """The per-operator instruction counts and Invoke count of two random initialisations of one
    architecture (two flatbuffers that differ), each profiled on the Cortex-M4."""
    tmp = tmp_path_factory.mktemp("init")
    out = []
    for seed in (0, 1):
        data = untrained_model(ARCHITECTURE, seed=seed).data
        (tmp / f"m{seed}.tflite").write_bytes(data)
        report = firmware_harness.profile(source=tmp / f"m{seed}.tflite", out_dir=tmp / f"profile{seed}",
                                          targets=("cortex-m4",), mcus=("stm32f407",), log=lambda *_: None)
        out.append(([(o.op_type, o.instructions) for o in report.targets[0].operators],
                    report.targets[0].invoke_instructions))
    assert artifacts.sha256_file(tmp / "m0.tflite") != artifacts.sha256_file(tmp / "m1.tflite")
    return out


def test_the_mac_operators_count_the_same_instructions_for_any_weights(two_initialisations):
    (ops0, _), (ops1, _) = two_initialisations
    assert [op for op, _ in ops0] == [op for op, _ in ops1]
    pairs = [(a, b) for a, b in zip(ops0, ops1) if a[0] in MAC_OPERATORS]
    assert pairs and all(a == b for a, b in pairs)


def test_the_untrained_invoke_is_within_the_tolerance_of_other_weights(two_initialisations):
    (_, invoke0), (_, invoke1) = two_initialisations
    assert abs(invoke0 - invoke1) <= INVOKE_TOLERANCE * invoke0


#: A search small enough for the slow lane: one architecture at two windows, two trainings.
FIT_ARGS = ["--mcu", "stm32f407", "--budget-trials", "2", "--models", "resnet11", "--widths", "0.25", "--windows",
            "16,clip", "--frames", "28", "--mels", "64", "--quantization", "ptq", "--epochs", "3", "--batch-size", "16",
            "--calibration-size", "40", "--finalists", "2", "--clip-seconds", str(TINY_CLIP_SECONDS), "--workers", "1"]


def _fit(data: Path, out: Path, *extra: str) -> dict:
    assert main(["fit", "--data", str(data), "--out", str(out), *FIT_ARGS, *extra]) == 0
    return json.loads((out / "fit_report.json").read_text())


@pytest.fixture(scope="module")
def local_fit(tiny_dataset, tmp_path_factory) -> tuple[Path, dict]:
    """``asc fit`` on the tiny dataset with the local engine: (its folder, fit_report.json)."""
    out = tmp_path_factory.mktemp("fit") / "local"
    return out, _fit(tiny_dataset, out)


def test_fit_on_the_tiny_dataset_returns_a_proven_winner_within_the_stm32f407(local_fit):
    out, report = local_fit
    assert report["winner"] is not None, (out / "fit_report.md").read_text()
    winner = next(f for f in report["finalists"] if _name(f["candidate"]) == report["winner"])
    assert winner["linked_on"] == "board stm32f407" and winner["linked_ram_bytes"] <= 128 * 1024
    assert winner["ms_per_clip"] <= 1000 * TINY_CLIP_SECONDS
    done, clips = map(int, winner["bit_exact_clips"].split("/"))
    assert winner["firmware_passed"] and done == clips > 0
    assert (out / "fit_chart.png").stat().st_size > 0 and (out / "fit_report.md").is_file()
    assert (Path(report["bundle"]) / "CMakeLists.txt").is_file()


#: Bound of the Ray engine's search (a local Ray started and stopped by the command itself).
RAY_FIT_TIMEOUT = 1800.0


def _kill_session(sid: int) -> None:
    """Kill what is left of session ``sid`` (the command's, and the local Ray it started)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            try:
                os.kill(int(stat.parent.name), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture(scope="module")
def ray_fit(tiny_dataset, tmp_path_factory) -> tuple[dict, str]:
    """The same ``asc fit`` with ``--engine ray``, as a command of its own session (so its local Ray
    is kept on 127.0.0.1, whatever this process imported, and nothing of it outlives the test):
    (fit_report.json, its output)."""
    out = tmp_path_factory.mktemp("fit") / "ray"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("asc")), "fit", "--data", str(tiny_dataset), "--out",
                             str(out), *FIT_ARGS, "--engine", "ray"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=RAY_FIT_TIMEOUT)
    finally:
        _kill_session(proc.pid)
        proc.wait()
    assert proc.returncode == 0, output[-3000:]
    return json.loads((out / "fit_report.json").read_text()), output


def test_the_ray_engine_keeps_a_local_ray_on_127_0_0_1(ray_fit):
    _, output = ray_fit
    seen = [line for line in output.splitlines() if "Ray node(s) see --out and --data" in line]
    assert seen and all("(127.0.0.1)" in line for line in seen)


def test_the_ray_engine_trains_the_same_candidates_in_the_same_order(local_fit, ray_fit):
    (_, local), (on_ray, _) = local_fit, ray_fit
    assert [(c["name"], c["status"], c["trial"]) for c in on_ray["candidates"]] == [
        (c["name"], c["status"], c["trial"]) for c in local["candidates"]]


def test_the_ray_engine_gives_the_local_engine_s_front_and_winner(local_fit, ray_fit):
    (_, local), (on_ray, _) = local_fit, ray_fit
    assert (on_ray["front"], on_ray["winner"]) == (local["front"], local["winner"])


def _name(candidate: dict) -> str:
    return Candidate(**candidate).name
