"""Each stage answers "is this up to date?" itself (the pipeline only asks): a stored result is
reused for the same inputs and refused when one of them changed."""
from __future__ import annotations

import shutil

import pytest

from keras_asc import artifacts


@pytest.fixture
def run_copy(tmp_path, tiny_run, tiny_export):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    return run


def test_a_finished_run_is_reused_only_for_its_own_settings(run_copy):
    from keras_asc.training import RunExists, finished_run_matches
    from keras_asc.training_config import TrainConfig

    cfg = artifacts.read_json(run_copy / "config.json")
    same = TrainConfig.from_dict(cfg["train"])
    key = cfg["feature_cache"]["key"]
    assert finished_run_matches(run_copy, config=same, feature_key=key)
    assert not finished_run_matches(run_copy.parent / "absent", config=same, feature_key=key)
    with pytest.raises(RunExists, match="other settings or features"):
        finished_run_matches(run_copy, config=same, feature_key="another-key")


def test_metrics_are_up_to_date_for_the_same_model_and_data(run_copy, tiny_dataset):
    from keras_asc.evaluation import metrics_up_to_date

    metrics = artifacts.read_json(run_copy / "metrics.json") if (run_copy / "metrics.json").is_file() else None
    if metrics is None:
        artifacts.write_json(run_copy / "metrics.json", {"model_sha256": artifacts.sha256_file(
            run_copy / "model.keras"), "data_dir": str(tiny_dataset.resolve())})
    else:
        metrics["data_dir"] = str(tiny_dataset.resolve())
        artifacts.write_json(run_copy / "metrics.json", metrics)
    assert metrics_up_to_date(run_copy, tiny_dataset)
    assert not metrics_up_to_date(run_copy, tiny_dataset.parent)  # other data
    (run_copy / "model.keras").write_bytes(b"other")
    assert not metrics_up_to_date(run_copy, tiny_dataset)  # another model


def test_an_export_is_reused_only_for_the_same_model_options_and_files(run_copy):
    from tflite_export.export_result import read_export, reusable_export

    export = run_copy / "export"
    exp = read_export(export)
    same = dict(source_model_sha256=exp.source_model_sha256, budget=exp.budget_bytes,
                calibration_size=exp.calibration.requested, seed=exp.calibration.seed)
    assert reusable_export(export, **same) == exp
    assert reusable_export(export, **{**same, "budget": exp.budget_bytes - 1}) is None
    assert reusable_export(export, **{**same, "seed": exp.calibration.seed + 1}) is None
    assert reusable_export(export, **same, quantization_path="qat") is None
    (export / "model_data.cc").write_text((export / "model_data.cc").read_text() + "\n")  # an edited source
    assert reusable_export(export, **same) is None


def test_a_validation_is_reused_only_for_the_same_model_and_data(run_copy, tmp_path, tiny_dataset, tiny_work):
    from firmware_harness.validation.export_validation import validate_export
    from firmware_harness.validation.report import reusable_validation
    from tflite_export.export_result import read_export

    export = run_copy / "export"
    for name in ("validation_report.json", "validation_report.md"):
        (export / name).unlink(missing_ok=True)
    exp = read_export(export)
    assert reusable_validation(export, tflite_sha256=exp.tflite_sha256, data_dir=tiny_dataset) is None  # none yet
    report = validate_export(export / "model.tflite", tiny_dataset, tiny_work, log=lambda *_: None)
    assert reusable_validation(export, tflite_sha256=exp.tflite_sha256, data_dir=tiny_dataset) == report
    assert reusable_validation(export, tflite_sha256="0" * 64, data_dir=tiny_dataset) is None
    assert reusable_validation(export, tflite_sha256=exp.tflite_sha256, data_dir=tmp_path) is None
