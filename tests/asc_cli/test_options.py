"""Option values are refused with exit 2 before anything is created, each message naming the
option; suspect but usable inputs are warned about, naming the file; one registry per option
lists exactly what it takes."""
from __future__ import annotations

import os

import numpy as np
import pytest

from asc_cli.main import build_parser, main, recipe_options


def _run(argv, capsys) -> tuple[int, str]:
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:  # argparse rejects an option value before any work
        status = e.code
    return status, capsys.readouterr().err


REFUSED = {
    "train-split 0": (["describe", "--data", "D", "--train-split", "0"], "--train-split"),
    "train-split 7": (["describe", "--data", "D", "--train-split", "7"], "--train-split"),
    "train-split 101": (["train", "--data", "D", "--out", "O", "--train-split", "101"], "--train-split"),
    "profile mcu not in targets": (["profile", "E", "--targets", "cortex-m4", "--mcu", "stm32h743"], "--mcu"),
    "profile inferences": (["profile", "E", "--inferences", "100000000000"], "--inferences"),
    "validate random": (["validate", "M.tflite", "--random", "100000000000"], "--random"),
    "kd-temperature overflow": (["train", "--data", "D", "--out", "O", "--kd-temperature", "1e30"],
                                "--kd-temperature"),
    "kd-temperature vanishing": (["grid", "--data", "D", "--out", "O", "--kd-temperature", "0.001"],
                                 "--kd-temperature"),
    "address http": (["grid", "--data", "D", "--out", "O", "--engine", "ray", "--address", "http://127.0.0.1:8265"],
                     "--address"),
    "connect-timeout 0": (["grid", "--data", "D", "--out", "O", "--engine", "ray", "--connect-timeout", "0"],
                          "--connect-timeout"),
    "profile targets host": (["profile", "E", "--targets", "host"], "--targets"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_option_values_are_refused_with_exit_2_before_any_work(case, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv, option = REFUSED[case]
    status, err = _run(argv, capsys)
    assert status == 2 and option in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_storage_on_a_file_names_the_option_and_the_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "records").write_text("a file")
    status, err = _run(["grid", "--data", "D", "--out", "O", "--engine", "ray", "--storage", "records"], capsys)
    assert status == 2 and "--storage records" in err and "is a file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records"]


def test_ray_address_from_the_environment_is_named_as_such(tmp_path, capsys, monkeypatch):
    """An unusable RAY_ADDRESS is blamed on RAY_ADDRESS; an unusable --address never is."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    status, err = _run(["grid", "--data", "D", "--out", "O", "--engine", "ray"], capsys)
    assert status == 2 and "RAY_ADDRESS=http://127.0.0.1:8265" in err
    monkeypatch.delenv("RAY_ADDRESS")
    status, err = _run(["grid", "--data", "D", "--out", "O", "--engine", "ray", "--address", "http://h:8265"], capsys)
    assert status == 2 and "RAY_ADDRESS" not in err


def test_profile_targets_list_only_what_profile_takes(capsys):
    from firmware_harness.profiling.latency import PROFILE_TARGETS

    status, err = _run(["profile", "E", "--targets", "cortex-m99"], capsys)
    listed = err.rsplit("one or more of ", 1)[1].split()
    assert status == 2 and [t.strip(",") for t in listed] == list(PROFILE_TARGETS) and "host" not in listed


def test_a_train_split_fifo_is_refused_without_being_opened(tmp_path, capsys):
    fifo = tmp_path / "split25.csv"
    os.mkfifo(fifo)
    status, err = _run(["describe", "--data", tmp_path, "--train-split", fifo], capsys)
    assert status == 2 and "--train-split" in err and "named pipe (FIFO)" in err


def test_a_teacher_whose_term_is_zero_is_warned_naming_it(capsys):
    a = build_parser().parse_args(["train", "--data", "D", "--out", "O", "--teacher", "runs/teacher_a",
                                   "--kd-weight", "0"])
    recipe_options(a)
    err = capsys.readouterr().err
    assert "asc: warning: --kd-weight 0" in err and "runs/teacher_a" in err


def test_a_label_term_of_zero_is_warned(capsys):
    a = build_parser().parse_args(["train", "--data", "D", "--out", "O", "--teacher", "runs/t", "--kd-weight", "1"])
    recipe_options(a)
    assert "--kd-weight 1: the label term is zero" in capsys.readouterr().err


def _wav(path, *, samples: int = 1000):
    import soundfile as sf

    sf.write(path, 0.1 * np.random.default_rng(0).normal(size=samples), 44100, subtype="PCM_24")
    return path


def test_a_truncated_impulse_response_is_warned_naming_it(tmp_path):
    from keras_asc.augment import impulse_response_warnings

    whole, cut = _wav(tmp_path / "whole.wav"), tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:1500])
    (message,) = impulse_response_warnings([whole, cut])
    assert message.startswith(f"--dir-aug: {cut}: truncated")


def test_a_complete_impulse_response_is_not_warned(tmp_path):
    from keras_asc.augment import impulse_response_warnings

    assert impulse_response_warnings([_wav(tmp_path / "ir.wav")]) == []


def test_a_binary_table_gets_the_fix(tmp_path, capsys):
    (tmp_path / "evaluation_setup").mkdir()
    (tmp_path / "meta.csv").write_bytes(bytes(range(256)) * 4)
    status, err = _run(["describe", "--data", tmp_path], capsys)
    assert status == 1 and str(tmp_path / "meta.csv") in err and "UTF-8 tab-separated text file" in err


def _int8_model(tmp_path):
    """A model record with an int8 input of shape (1, 3) (load_inputs reads only its input tensor)."""
    from firmware_harness.model_file import IoTensor, ModelFile

    return ModelFile(path=tmp_path / "m.tflite", data=b"", ops=(), input=IoTensor("x", (1, 3), 0.5, 0),
                     output=IoTensor("y", (1, 2), 1.0, 0))


def test_inputs_npz_of_one_array_is_read(tmp_path):
    from firmware_harness.model_inputs import load_inputs

    model = _int8_model(tmp_path)
    x = np.arange(6, dtype=np.int8).reshape(2, 3)
    np.savez(tmp_path / "x.npz", inputs=x)
    assert (load_inputs(model, inputs_path=tmp_path / "x.npz") == x).all()


def test_inputs_npz_of_several_arrays_is_refused_naming_it(tmp_path):
    from firmware_harness.model_inputs import InputsFileError, load_inputs

    model = _int8_model(tmp_path)
    np.savez(tmp_path / "x.npz", a=np.zeros((1, 3), np.int8), b=np.zeros((1, 3), np.int8))
    with pytest.raises(InputsFileError, match=r"x\.npz: an \.npz archive of 2 arrays \['a', 'b'\]"):
        load_inputs(model, inputs_path=tmp_path / "x.npz")


def test_an_inputs_fifo_is_refused_without_being_opened(tmp_path):
    from firmware_harness.model_inputs import InputsFileError, load_inputs

    model = _int8_model(tmp_path)
    os.mkfifo(tmp_path / "x.npy")
    with pytest.raises(InputsFileError, match="named pipe"):
        load_inputs(model, inputs_path=tmp_path / "x.npy")


def test_the_moved_export_warning_goes_to_stderr(tiny_export, tmp_path, capsys):
    import shutil

    from firmware_harness.validation.export_validation import load_checked_export

    moved = tmp_path / "moved_export"  # away from its run: the staleness check cannot run
    shutil.copytree(tiny_export, moved)
    load_checked_export(moved / "model.tflite")
    captured = capsys.readouterr()
    assert "the staleness check could not run" in captured.err and captured.out == ""
