"""``asc validate/firmware/profile/bundle X.tflite`` work on X.tflite's bytes wherever it lies: a
.tflite copied into an export folder is that file (its hash in the report, its outputs beside it),
never the export's model.tflite, and the export's own folders are left alone."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from asc_cli.main import main
from keras_asc import artifacts

from tests.firmware_harness.test_any_model import KWS


def _run(argv, capsys) -> tuple[int, str, str]:
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): artifacts.sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def export_with_other(tiny_export, tmp_path) -> tuple[Path, Path]:
    """A copy of the tiny export with the MLPerf KWS model copied in as other.tflite."""
    if not KWS.is_file():
        pytest.skip(f"{KWS} not found (the MLPerf Tiny reference models of ../shared/reference)")
    export = tmp_path / "run" / "export"
    shutil.copytree(tiny_export, export)
    other = export / "other.tflite"
    other.write_bytes(KWS.read_bytes())
    return export, other


def test_validate_of_a_tflite_in_an_export_validates_that_file(export_with_other, capsys):
    export, other = export_with_other
    before = _tree(export)
    status, out, err = _run(["validate", other, "--random", "2", "--workers", "1"], capsys)
    assert status == 0, err
    report = artifacts.read_json(export / "other.validation" / "validation_report.json")
    assert report["tflite_sha256"] == artifacts.sha256_file(other) and report["model"] == str(other.resolve())
    assert "modified or replaced" not in out + err
    assert {k: v for k, v in _tree(export).items() if not k.startswith("other.validation/")} == before


def test_profile_of_a_tflite_in_an_export_profiles_that_file(export_with_other, capsys, monkeypatch):
    """The sources generated and profiled are other.tflite's, written beside it (QEMU replaced by a
    recorder: what is profiled and where it goes is the behaviour here)."""
    from firmware_harness import api
    from firmware_harness.profiling import profile

    export, other = export_with_other
    seen = {}

    def tflite_sources(source, folder, **kw):
        seen["model"] = source.data
        return profile.ModelSources(folder=Path(folder), model=source.data)

    def profile_sources(sources, out, **kw):
        seen["out"], seen["source"] = out, kw["source"]
        raise profile.FirmwareError("stop here")

    monkeypatch.setattr(api, "tflite_sources", tflite_sources)
    monkeypatch.setattr(api, "profile_sources", profile_sources)
    monkeypatch.setattr(api, "export_sources", lambda *a, **k: pytest.fail("profiled the export's model"))
    status, out, err = _run(["profile", other], capsys)
    assert status == 1 and "stop here" in err
    assert seen == {"model": other.read_bytes(), "out": export / "other.profile", "source": str(other)}
    assert f"sha256 {artifacts.sha256_file(other)}" in out


def test_firmware_of_a_tflite_in_an_export_builds_that_file(export_with_other, capsys, monkeypatch):
    from firmware_harness import api
    from firmware_harness.model_file import AnyModelError

    export, other = export_with_other
    seen = {}

    def check_model_firmware(source, **kw):
        seen["path"], seen["sha256"] = source.path, source.sha256
        raise AnyModelError("stop here")

    monkeypatch.setattr(api, "check_model_firmware", check_model_firmware)
    status, _, err = _run(["firmware", other], capsys)
    assert status == 1 and "stop here" in err
    assert seen == {"path": other, "sha256": artifacts.sha256_file(other)}


def test_bundle_of_a_tflite_in_an_export_is_refused_naming_it(export_with_other, tmp_path, capsys):
    """A bundle needs an export's C sources and front end: another .tflite is refused, never
    replaced by the export's model.tflite."""
    export, other = export_with_other
    status, _, err = _run(["bundle", other, "--out", tmp_path / "bundle"], capsys)
    assert status == 1 and f"{other}: a .tflite of its own" in err and "Traceback" not in err
    assert not (tmp_path / "bundle").exists()


def test_an_edited_export_model_is_still_refused_as_modified(export_with_other, tmp_path, tiny_dataset, capsys):
    """EXPORT/model.tflite is the export's: bytes other than the recorded ones are refused."""
    export, other = export_with_other
    shutil.copyfile(other, export / "model.tflite")
    status, _, err = _run(["validate", export / "model.tflite", "--data", tiny_dataset, "--work", tmp_path / "w"],
                          capsys)
    assert status == 1 and "modified or replaced after export" in err
