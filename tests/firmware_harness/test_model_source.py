"""What a MODEL argument means (``firmware_harness.model_source``): an export folder or its
model.tflite is that export; any other .tflite is that file's bytes, wherever it lies, with its
outputs beside it; what is not a model source is refused by name, a FIFO without being opened."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from firmware_harness.model_source import ModelSourceError, resolve_model_source
from keras_asc import artifacts
from tests.firmware_harness.test_any_model import IC, KWS


def _models() -> tuple[bytes, bytes]:
    if not (IC.is_file() and KWS.is_file()):
        pytest.skip(f"{IC.parent} not found (the MLPerf Tiny reference models of ../shared/reference)")
    return IC.read_bytes(), KWS.read_bytes()


@pytest.fixture
def export_with_other(tiny_export, tmp_path) -> tuple[Path, Path]:
    """A copy of the tiny export with another model copied in beside its model.tflite."""
    export = tmp_path / "run" / "export"
    shutil.copytree(tiny_export, export)
    other = export / "other.tflite"
    other.write_bytes(_models()[1])
    return export, other


def test_a_tflite_in_an_export_folder_is_that_file(export_with_other):
    export, other = export_with_other
    source = resolve_model_source(other)
    assert source.path == other and source.export is None
    assert source.sha256 == artifacts.sha256_file(other) != artifacts.sha256_file(export / "model.tflite")
    assert source.data == other.read_bytes()


def test_outputs_of_a_tflite_in_an_export_go_beside_it(export_with_other):
    export, other = export_with_other
    source = resolve_model_source(other)
    assert {c: source.default_out_dir(c) for c in ("validation", "firmware", "profile")} == {
        "validation": export / "other.validation", "firmware": export / "other.firmware",
        "profile": export / "other.profile"}


def test_an_export_folder_and_its_model_tflite_are_the_export(tiny_export):
    by_folder, by_model = resolve_model_source(tiny_export), resolve_model_source(tiny_export / "model.tflite")
    assert by_folder == by_model
    assert by_folder.path == tiny_export / "model.tflite" and by_folder.export_dir == tiny_export
    assert by_folder.export.tflite_sha256 == by_folder.sha256
    assert by_folder.default_out_dir("validation") == tiny_export
    assert by_folder.default_out_dir("profile") == tiny_export / "profile"


def test_a_model_tflite_without_an_export_record_is_a_file_of_its_own(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(_models()[0])
    source = resolve_model_source(path)
    assert source.export is None and source.default_out_dir("firmware") == tmp_path / "model.firmware"


def test_a_fifo_is_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    with pytest.raises(ModelSourceError, match=r"named pipe \(FIFO\), not a regular file"):
        resolve_model_source(fifo)  # opening it would wait for a writer: the test would hang


@pytest.mark.parametrize("case", ["missing", "not a tflite", "run folder", "empty folder"])
def test_what_is_not_a_model_source_is_named(case, tmp_path):
    path = {"missing": tmp_path / "nowhere.tflite", "not a tflite": tmp_path / "model.onnx",
            "run folder": tmp_path / "run", "empty folder": tmp_path / "empty"}[case]
    if case == "not a tflite":
        path.write_bytes(b"x")
    elif case == "run folder":
        path.mkdir()
        artifacts.write_json(path / "config.json", {"stage": "train"})
    elif case == "empty folder":
        path.mkdir()
    with pytest.raises(ModelSourceError) as e:
        resolve_model_source(path)
    assert str(e.value).startswith(f"{path}: ") and "give" in str(e.value)
