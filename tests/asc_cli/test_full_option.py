"""`asc validate --full` and `asc firmware --full` reach the public API (every witness on every clip);
without it the API is called with full=False (the truth on every clip, the witnesses on a sample)."""
from __future__ import annotations

import pytest

import firmware_harness
from asc_cli.main import main
from keras_asc.errors import AscError


class Called(AscError):
    """Raised by the stand-in API function once it has recorded its keywords (main returns 1)."""


@pytest.mark.parametrize("command,api", [("validate", "validate"), ("firmware", "check_firmware")])
@pytest.mark.parametrize("full", [False, True])
def test_full_reaches_the_api(command, api, full, monkeypatch, tmp_path):
    seen = {}

    def fake(**kw):
        seen.update(kw)
        raise Called("recorded")

    export = tmp_path / "run" / "export"
    export.mkdir(parents=True)
    monkeypatch.setattr(firmware_harness, api, fake)
    source = type("Source", (), {"export": object(), "path": export / "model.tflite",
                                 "export_dir": export})()
    module = f"asc_cli.commands.{command}"
    monkeypatch.setattr(f"{module}.check_model_source", lambda p: source)
    monkeypatch.setattr(f"{module}._refuse_any_model_options", lambda *a: None)
    if command == "firmware":
        monkeypatch.setattr(f"{module}.firmware_harness.names_an_export", lambda p: False)
    target = str(export / "model.tflite") if command == "validate" else str(export)
    main([command, target, "--data", str(tmp_path), *(["--full"] if full else [])])
    assert seen["full"] is full
