"""The bad-input matrix: every user mistake is a one-paragraph error naming the file or option,
with the documented exit status and no traceback; an internal bug shows its traceback and says so.

One parametrized test per class of mistake (issue "Code health and bad input").
"""
from __future__ import annotations

import errno
import os
import shutil

import pytest

from asc_cli.main import main
from keras_asc import artifacts, atomic


def _run(argv, capsys) -> tuple[int, str]:
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:  # argparse rejects an option value before any work
        status = e.code
    err = capsys.readouterr().err
    return status, err


# ----------------------------------------------------------------------------- numeric options
NUMERIC = [
    (["train", "--data", "D", "--out", "O", "--epochs", "0"], "--epochs"),
    (["train", "--data", "D", "--out", "O", "--batch-size", "-1"], "--batch-size"),
    (["train", "--data", "D", "--out", "O", "--lr", "0"], "--lr"),
    (["train", "--data", "D", "--out", "O", "--lr", "nan"], "--lr"),
    (["train", "--data", "D", "--out", "O", "--mixup", "-0.5"], "--mixup"),
    (["train", "--data", "D", "--out", "O", "--model-arg", "width=abc"], "--model-arg"),
    (["train", "--data", "D", "--out", "O", "--model-arg", "width"], "--model-arg"),
    (["features", "--data", "D", "--out", "O", "--clip-seconds", "0"], "--clip-seconds"),
    (["features", "--data", "D", "--out", "O", "--workers", "0"], "--workers"),
    (["export", "R", "--data", "D", "--calibration-size", "0"], "--calibration-size"),
    (["export", "R", "--data", "D", "--budget", "-5"], "--budget"),
    (["export", "R", "--data", "D", "--qat-epochs", "0"], "--qat-epochs"),
    (["validate", "M", "--data", "D", "--max-drop", "-1"], "--max-drop"),
    (["make-dataset", "O", "--size", "-3"], "--size"),
    (["make-dataset", "O", "--clip-seconds", "-1"], "--clip-seconds"),
    (["grid", "--data", "D", "--out", "O", "--frames", "30"], "--frames"),
    (["grid", "--data", "D", "--out", "O", "--mels", "100"], "--mels"),
    (["grid", "--data", "D", "--out", "O", "--losses", "mse"], "--losses"),
    (["grid", "--data", "D", "--out", "O", "--epochs", "x"], "--epochs"),
    (["grid", "--data", "D", "--out", "O", "--window-frames", "clip,0"], "--window-frames"),
    (["train", "--data", "D", "--out", "O", "--window-frames", "0"], "--window-frames"),
    (["export", "R", "--data", "D", "--ram-budget", "0"], "--ram-budget"),
    (["export", "R", "--data", "D", "--target", "stm32f4"], "--target"),
    (["export", "R", "--data", "D", "--compress", "--compress-bits", "8"], "--compress-bits"),
    (["export", "R", "--data", "D", "--compress", "--compress-granularity", "layer"], "--compress-granularity"),
    (["firmware", "E", "--data", "D", "--chunk", "4096"], "--chunk"),
    (["firmware", "E", "--data", "D", "--clips", "0"], "--clips"),
    (["firmware", "E", "--data", "D", "--targets", "cortex-m3"], "--targets"),
    (["demo", "--firmware-clips", "0"], "--firmware-clips"),
]


@pytest.mark.parametrize("argv,option", NUMERIC, ids=[" ".join(a[:1] + a[-2:]) for a, _ in NUMERIC])
def test_bad_option_values_are_refused_before_any_work(argv, option, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, err = _run(argv, capsys)
    assert status == 2 and option in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing was started


# ----------------------------------------------------------------------------- paths and files
def _paths_cases(tmp_path, tiny_dataset, tiny_export):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    empty_meta = tmp_path / "empty_meta"
    shutil.copytree(tiny_dataset, empty_meta)
    (empty_meta / "meta.csv").write_text("")
    bad_json = tmp_path / "bad_json"
    shutil.copytree(tiny_export, bad_json)
    (bad_json / "config.json").write_text('{"stage": "export", "tflite_sha')
    return {
        "data is a file": (["describe", "--data", a_file], a_file),
        "data is missing": (["describe", "--data", tmp_path / "nowhere"], tmp_path / "nowhere"),
        "work is under a file": (["features", "--data", tiny_dataset, "--out", a_file / "w"], a_file),
        "empty meta.csv": (["describe", "--data", empty_meta], empty_meta / "meta.csv"),
        "truncated config.json": (["validate", bad_json / "model.tflite", "--data", tiny_dataset,
                                   "--work", tmp_path / "w"], bad_json / "config.json"),
        "run folder is not a run": (["evaluate", tmp_path, "--data", tiny_dataset], tmp_path / "config.json"),
    }


PATH_CASES = ["data is a file", "data is missing", "work is under a file", "empty meta.csv",
              "truncated config.json", "run folder is not a run"]


@pytest.mark.parametrize("case", PATH_CASES)
def test_bad_paths_name_the_file(case, tmp_path, tiny_dataset, tiny_export, capsys):
    argv, path = _paths_cases(tmp_path, tiny_dataset, tiny_export)[case]
    status, err = _run(argv, capsys)
    assert status == 1 and "Traceback" not in err
    assert str(path) in err, err
    assert err.startswith("asc ") and err.count("\n") <= 3  # one paragraph


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "no space left"), (errno.EACCES, "not writable"),
                                        (errno.EROFS, "read-only file system")])
def test_disk_errors_name_the_file(code, words, tmp_path, tiny_dataset, capsys, monkeypatch):
    """A full disk or a read-only folder while writing (simulated: CI runs as root, which ignores
    permissions) is a message naming the file, not a traceback."""
    target = tmp_path / "out" / "meta.csv"

    def fail(path, data):
        raise OSError(code, "simulated", str(target))

    monkeypatch.setattr(atomic, "atomic_write_bytes", fail)  # where every stage's records are written
    status, err = _run(["make-dataset", tmp_path / "out", "--size", "tiny"], capsys)
    assert status == 1 and words in err and str(target) in err and "Traceback" not in err


# ----------------------------------------------------------------------------- stale artifacts
def test_export_of_an_earlier_model_is_refused(tmp_path, tiny_run, tiny_export, tiny_dataset, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model.keras").write_bytes((run / "model.keras").read_bytes() + b"\0")  # the run moved on
    status, err = _run(["validate", run / "export" / "model.tflite", "--data", tiny_dataset,
                        "--work", tmp_path / "w"], capsys)
    assert status == 1 and "Traceback" not in err
    assert str(run / "model.keras") in err and "asc export" in err


def test_unfinished_run_is_named(tmp_path, tiny_run, tiny_dataset, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = artifacts.read_json(run / "config.json")
    artifacts.write_json(run / "config.json", {**cfg, "status": "training"})
    for argv in (["evaluate", run, "--data", tiny_dataset, "--work", tmp_path / "w"],
                 ["export", run, "--data", tiny_dataset, "--work", tmp_path / "w"]):
        status, err = _run(argv, capsys)
        assert status == 1 and "has not finished" in err and str(run) in err and "--resume" in err


# ----------------------------------------------------------------------------- suspect data
def _split_case(tmp_path, tiny_dataset, case):
    from tests.conftest import copy_dataset

    data = copy_dataset(tiny_dataset, tmp_path / "data")
    split = data / "evaluation_setup" / "fold1_evaluate.csv"
    lines = split.read_text().splitlines()
    if case == "empty split":
        split.write_text(lines[0] + "\n")
    elif case == "duplicate rows":
        split.write_text("\n".join(lines + [lines[1]]) + "\n")
    return data, split


@pytest.mark.parametrize("case", ["empty split", "duplicate rows"])
def test_unusable_splits_are_errors_naming_the_file(case, tmp_path, tiny_dataset, capsys):
    data, split = _split_case(tmp_path, tiny_dataset, case)
    status, err = _run(["describe", "--data", data], capsys)
    assert status == 1 and str(split) in err and "Traceback" not in err
    assert ("no clips" if case == "empty split" else "duplicate") in err


ANOMALIES = ("low sample rate", "cancelling stereo", "silence", "beyond full scale", "short clip",
             "scene missing from a split")


@pytest.fixture(scope="module")
def suspect_features(tiny_dataset, tmp_path_factory):
    """A copy of the tiny dataset with one file per audio anomaly and one scene dropped from the
    evaluate split; ``asc features`` on it. Returns (files by anomaly, log text, cache config)."""
    import numpy as np
    import soundfile as sf

    from tests.conftest import TINY_CLIP_SECONDS, copy_dataset

    tmp = tmp_path_factory.mktemp("suspect")
    data = copy_dataset(tiny_dataset, tmp / "data")
    wavs = sorted((data / "audio").glob("*.wav"))
    rng = np.random.default_rng(0)
    n = int(44100 * TINY_CLIP_SECONDS)
    noise = (0.1 * rng.standard_normal(n)).astype(np.float32)
    files = dict(zip(ANOMALIES[:5], wavs[:5]))
    for anomaly, wav in files.items():
        wav.unlink()  # hard-linked to the original: replace, never write through
        if anomaly == "low sample rate":
            sf.write(wav, noise[: n * 8000 // 44100], 8000, subtype="PCM_16")
        elif anomaly == "cancelling stereo":
            sf.write(wav, np.stack([noise, -noise], axis=1), 44100, subtype="PCM_24")
        elif anomaly == "silence":
            sf.write(wav, np.zeros(n, np.float32), 44100, subtype="PCM_24")
        elif anomaly == "beyond full scale":
            sf.write(wav, 4 * noise, 44100, subtype="FLOAT")
        elif anomaly == "short clip":
            sf.write(wav, noise[: n // 4], 44100, subtype="PCM_24")
    split = data / "evaluation_setup" / "fold1_evaluate.csv"
    lines = split.read_text().splitlines()
    split.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if not ln.endswith("\tpark")]) + "\n")
    files["scene missing from a split"] = split
    out = tmp / "work"
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        status = main(["features", "--data", str(data), "--out", str(out), "--clip-seconds", str(TINY_CLIP_SECONDS),
                       "--workers", "1"])
    assert status == 0
    config = artifacts.read_json(next((out / "features").glob("*/config.json")))
    return files, buf.getvalue(), config


@pytest.mark.parametrize("anomaly", ANOMALIES)
def test_suspect_data_is_named_in_the_log_and_the_config(anomaly, suspect_features):
    files, log, config = suspect_features
    words = {"low sample rate": "below the feature rate", "cancelling stereo": "channels cancel",
             "silence": "silent", "beyond full scale": "beyond full scale", "short clip": "padded with silence",
             "scene missing from a split": "no clips of scene(s) ['park']"}[anomaly]
    named = [w for w in config["warnings"] if str(files[anomaly]) in w]
    assert len(named) == 1 and words in named[0], config["warnings"]
    assert named[0] in log or "more warning(s)" in log


# ----------------------------------------------------------------------------- kills
@pytest.mark.parametrize("resume", [False, True], ids=["rerun", "resume"])
def test_a_run_killed_in_its_first_epoch_can_be_rerun_or_resumed(resume, tmp_path, tiny_dataset, tiny_work, capsys):
    """Killed before its first epoch ended, a run leaves config.json (status "training"),
    tensorboard/ and maybe a temp file, but no state.json: nothing to keep, so it starts again."""
    from tests.conftest import TINY_CLIP_SECONDS

    run = tmp_path / "run"
    (run / "tensorboard" / "train").mkdir(parents=True)
    (run / "tensorboard" / "train" / "events.out").write_bytes(b"\0")
    artifacts.write_json(run / "config.json", {"stage": "train", "status": "training"})
    (run / ".config.json.abc.tmp").write_text("{")
    argv = ["train", "--data", tiny_dataset, "--out", run, "--work", tiny_work, "--clip-seconds", TINY_CLIP_SECONDS,
            "--model-arg", "width=0.25", "--epochs", "1", "--batch-size", "16"] + (["--resume"] if resume else [])
    status, err = _run(argv, capsys)
    assert status == 0, err
    assert artifacts.read_json(run / "config.json")["status"] == "done"
    assert not (run / "tensorboard" / "train" / "events.out").exists()


def test_a_folder_that_is_not_a_run_is_still_refused(tmp_path, tiny_dataset, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    work = tmp_path / "work"
    status, err = _run(["train", "--data", tiny_dataset, "--out", run, "--work", work, "--epochs", "1"], capsys)
    assert status == 1 and str(run) in err and "not a training run" in err
    assert (run / "notes.txt").read_text() == "mine"
    assert not work.exists()  # refused before any features were computed


def test_an_unreadable_file_is_called_unreadable(tmp_path, monkeypatch):
    """Permission denied on a file that exists and cannot be read is not a writing problem (CI
    runs as root, which reads everything: the permission check is simulated)."""
    from keras_asc.errors import describe_os_error

    meta = tmp_path / "meta.csv"
    meta.write_text("filename\n")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    message = describe_os_error(OSError(errno.EACCES, "Permission denied", str(meta)))
    assert message.startswith(f"{meta}: not readable") and "writable" not in message


@pytest.mark.parametrize("case,words", [
    ("missing", "no such file or folder; give the folder `asc export` wrote"),
    ("a run folder", "is a training run folder, not an export; give"),
    ("a folder with only model.tflite", "holds model.tflite but no export config.json"),
    ("an export without model.tflite", "holds an export's config.json but no model.tflite"),
    ("an empty folder", "not an export folder (no config.json, no model.tflite)"),
    ("a text file", "not a .tflite file or an export folder"),
])
@pytest.mark.parametrize("command", ["validate", "firmware", "profile", "bundle"])
def test_the_export_argument_is_named_with_what_to_give(case, words, command, tmp_path, capsys):
    path = {"missing": tmp_path / "nothing", "a run folder": tmp_path / "run", "an empty folder": tmp_path / "empty",
            "a folder with only model.tflite": tmp_path / "bare", "a text file": tmp_path / "notes.txt",
            "an export without model.tflite": tmp_path / "export"}[case]
    if case == "a run folder":
        path.mkdir()
        (path / "config.json").write_text('{"stage": "train"}')
    elif case == "a folder with only model.tflite":
        path.mkdir()
        (path / "model.tflite").write_bytes(b"x")
    elif case == "an export without model.tflite":
        path.mkdir()
        (path / "config.json").write_text('{"stage": "export"}')
    elif case == "an empty folder":
        path.mkdir()
    elif case == "a text file":
        path.write_text("x")
    status, err = _run([command, path] + (["--out", tmp_path / "bundle"] if command == "bundle" else []), capsys)
    assert status == 1 and f"{path}: {words}" in err and "Traceback" not in err, err


def test_a_folder_where_meta_csv_belongs_is_named(tmp_path, capsys):
    (tmp_path / "data" / "meta.csv").mkdir(parents=True)
    status, err = _run(["describe", "--data", tmp_path / "data"], capsys)
    assert status == 1 and f"{tmp_path / 'data' / 'meta.csv'}: is a folder where a tab-separated file" in err, err


def test_a_file_in_the_way_of_an_output_folder_is_named(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep")
    status, err = _run(["make-dataset", tmp_path / "notes.txt" / "data", "--size", "tiny"], capsys)
    assert status == 1 and "notes.txt" in err and ("in the way" in err or "file where a folder" in err), err
    assert (tmp_path / "notes.txt").read_text() == "keep"
