import os
import sys

import pandas as pd
import pytest

from asc_cli.main import main
from asc_cli.demo import run_demo
from asc_cli.grid import grid_configs, run_grid
from asc_cli.stages import PipelineConfig
from keras_asc import TrainConfig
from tflite_export import ExportConfig
from tests.conftest import TINY_CLIP_SECONDS


def test_demo_end_to_end(tiny_demo):
    work, result = tiny_demo
    v = result.validation
    assert v.passed and v.clips == 80
    summary = (work / "demo_summary.md").read_text()
    for text in ("int8 (TFLM) acc", "device s6*", "of 131,072", "tensor arena", "LiteRT reference kernels",
                 "model_settings.h", "not TAU"):
        assert text in summary
    run = work / "runs" / result.name
    for name in ("model.keras", "metrics.json", "export/model.tflite", "export/model_data.cc",
                 "export/validation_report.md"):
        assert (run / name).is_file()


def test_demo_estimates_latency_on_the_three_named_mcus(tiny_demo):
    work, result = tiny_demo
    if result.profile is None:
        pytest.skip("no Arm toolchain or QEMU: the demo ran without a latency estimate")
    summary = (work / "demo_summary.md").read_text()
    rows = {m.mcu: m for m in result.profile.mcus}
    for name in ("stm32f407", "stm32h743", "nrf5340"):
        m = rows[name]
        assert f"{name.upper()} ({m.core}, {m.clock_hz / 1e6:.0f} MHz) {m.ms_per_inference:,.1f} ms per inference" in summary
        assert m.real_time_factor > 0
    assert (result.run_dir / "export" / "profile" / "profile_report.md").is_file()


def test_demo_second_run_reuses_every_stage(tiny_demo):
    work, result = tiny_demo
    messages = []
    again = run_demo(work, size="tiny", cfg=result.config, log=messages.append)
    text = "\n".join(map(str, messages))
    for reused in ("already holds this dataset; reusing it", "features: reusing cache", "train: reusing finished run",
                   "evaluate: reusing metrics.json", "export: reusing export/", "validate: reusing validation_report.json",
                   *(("profile: reusing profile/profile_report.json",) if result.profile else ())):
        assert reused in text
    assert again.validation.tflite_sha256 == result.validation.tflite_sha256
    assert again.export == result.export and again.validation == result.validation


def test_report_made_with_another_tflm_version_is_not_reused(tiny_demo, tmp_path):
    import shutil

    from keras_asc import artifacts

    work, result = tiny_demo
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    report = copy / "runs" / result.name / "export" / "validation_report.json"
    data = artifacts.read_json(report)
    data["packages"]["tflite-micro"] = "0.dev20200101000000"
    artifacts.write_json(report, data)
    marker = artifacts.read_json(report.parent / artifacts.STAGE_MARKER)  # as that version's asc wrote it
    marker["sha256"]["validation_report.json"] = artifacts.sha256_file(report)
    artifacts.write_json(report.parent / artifacts.STAGE_MARKER, marker)
    messages = []
    again = run_demo(copy, size="tiny", cfg=result.config, log=messages.append)
    assert "validate: reusing validation_report.json" not in "\n".join(map(str, messages))
    assert again.validation.packages["tflite-micro"] == artifacts.package_versions()["tflite-micro"]


def test_grid_runs_resumes_and_tabulates(tiny_dataset, tmp_path):
    base = PipelineConfig(train=TrainConfig(model_overrides=(("width", 0.25),), epochs=2),
                          export=ExportConfig(calibration_size=20))
    first = grid_configs(base, models=["resnet11"], frames=[28], mels=[128], losses=["ce"])
    run_grid(tiny_dataset, tmp_path / "grid", first, clip_seconds=TINY_CLIP_SECONDS, log=lambda *_: None)
    both = grid_configs(base, models=["resnet11"], frames=[28], mels=[128], losses=["ce", "focal"])
    messages = []
    table = run_grid(tiny_dataset, tmp_path / "grid", both, clip_seconds=TINY_CLIP_SECONDS, log=messages.append)
    assert sum("already finished" in str(m) for m in messages) == 1  # the first cell was reused
    saved = pd.read_csv(tmp_path / "grid" / "results.csv")
    assert list(saved["loss"]) == ["ce", "focal"] and len(table) == 2
    assert saved["int8_bytes"].gt(0).all() and saved["within_budget"].all()
    assert saved[["float_accuracy", "int8_accuracy", "params"]].notna().all().all()
    assert "| resnet11_width0.25_28fps_128mel_focal |" in (tmp_path / "grid" / "results.md").read_text()


def test_grid_records_over_budget_cells(tiny_dataset, tmp_path):
    base = PipelineConfig(train=TrainConfig(model_overrides=(("width", 0.25),), epochs=1),
                          export=ExportConfig(calibration_size=10, budget=5_000))
    cfgs = grid_configs(base, models=["resnet11"], frames=[28], mels=[64], losses=["ce"])
    table = run_grid(tiny_dataset, tmp_path / "g", cfgs, clip_seconds=TINY_CLIP_SECONDS, log=lambda *_: None)
    row = table.iloc[0]
    assert not row["within_budget"] and row["int8_bytes"] > 5_000 and row["float_accuracy"] is not None


def test_notebook_executes(tiny_demo, tmp_path, monkeypatch):
    import jupytext
    import nbclient

    work, _ = tiny_demo
    nb = jupytext.read(os.path.join(os.path.dirname(__file__), "..", "..", "notebooks", "walkthrough.py"))
    kernels = tmp_path / "jupyter" / "kernels" / "asc-test"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        '{"argv": [%r, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "asc", "language": "python"}'
        .replace("%r", '"' + sys.executable + '"'))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("ASC_WORK", str(work))
    monkeypatch.setenv("ASC_SIZE", "tiny")
    client = nbclient.NotebookClient(nb, kernel_name="asc-test", timeout=600,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "weights (int8)" in outputs and "LiteRT vs TFLM" in outputs


def test_cli_errors_are_messages_not_tracebacks(tiny_dataset, tmp_path, capsys):
    assert main(["describe", "--data", str(tiny_dataset)]) == 0
    assert "clips per device" in capsys.readouterr().out
    assert main(["describe", "--data", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "meta.csv: file not found" in err and "Traceback" not in err
    assert main(["evaluate", str(tmp_path), "--data", str(tiny_dataset)]) == 1
    assert "not a training run folder" in capsys.readouterr().err
    assert main(["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "r"), "--model", "resnet12"]) == 2
    assert "unknown model(s) ['resnet12']; registered: cnn5" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["features", "--data", str(tiny_dataset), "--out", str(tmp_path), "--n-mels", "100"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--n-mels: invalid choice: 100" in err and "Traceback" not in err


def test_demo_refuses_a_stale_finished_run(tiny_demo, tmp_path):
    import shutil

    from keras_asc import artifacts
    from keras_asc.training import RunExists

    work, result = tiny_demo
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    run_cfg_path = copy / "runs" / result.name / "config.json"
    cfg = artifacts.read_json(run_cfg_path)
    cfg["feature_cache"]["key"] = "made-by-older-code"
    artifacts.write_json(run_cfg_path, cfg)
    with pytest.raises(RunExists, match="finished run made with other settings"):
        run_demo(copy, size="tiny", cfg=result.config, log=lambda *_: None)
