"""The pipeline's configuration (:class:`asc_cli.stages.PipelineConfig`) is composed of the stages'
own records: its defaults are theirs, and the demo's and the grid's options default to them; a grid
cell's record in ``grid_result.json``, also as asc wrote it before the configuration was composed,
lets a finished cell be reused."""
from __future__ import annotations

import dataclasses
import json
import pickle
import types
from pathlib import Path

import pandas as pd
import pytest

import asc_cli.demo
import asc_cli.grid
from asc_cli.grid import GRID_RESULT, GRID_TABLES, finished_cell_row, grid_configs, write_grid_tables
from asc_cli.main import main
from asc_cli.stages import PIPELINE_EXPORT_FIELDS, PipelineConfig, PipelineFeatures
from keras_asc import FeatureConfig, TrainConfig, artifacts
from tflite_export import ExportConfig

COPY_2022 = Path(__file__).parents[1] / "keras_asc" / "layout_copies" / "tau2022"


def _flat_record(cfg: PipelineConfig, *, recipe: bool = True) -> dict:
    """``cfg`` as asc wrote a cell's configuration before PipelineConfig was composed: one flat
    record, the recipe (TrainConfig fields off their defaults) as ``[name, value]`` pairs; without
    ``recipe``, as before the recipe and the training subset were options."""
    t, e, f = cfg.train, cfg.export, cfg.features
    default = TrainConfig()
    record = {"model": t.model, "model_overrides": [list(o) for o in t.model_overrides],
              "frames_per_second": f.frames_per_second, "n_mels": f.n_mels, "loss": t.loss, "epochs": t.epochs,
              "batch_size": t.batch_size, "learning_rate": t.learning_rate, "seed": t.seed, "budget": e.budget,
              "calibration_size": e.calibration_size, "firmware_clips": cfg.firmware_clips,
              "window_frames": t.window_frames, "window_hop": t.window_hop}
    if recipe:
        record["train_split"] = f.train_split
        record["recipe"] = [[k, getattr(t, k)] for k in ("dir_folder", "dir_p", "freq_mixstyle_p", "kd_weight")
                            if getattr(t, k) != getattr(default, k)]
    return json.loads(json.dumps(record))


def test_the_pipeline_defaults_are_the_stage_records_defaults():
    d = PipelineConfig()
    assert d.train == TrainConfig()
    assert all(getattr(d.export, k) == getattr(ExportConfig(), k) for k in PIPELINE_EXPORT_FIELDS)
    clip = FeatureConfig().clip_seconds
    assert d.features.feature_config(clip_seconds=clip) == FeatureConfig.seed(clip_seconds=clip)


def test_the_demo_options_default_to_the_pipeline_defaults(monkeypatch, tmp_path):
    seen = {}

    def run_demo(work, *, cfg, **kw):
        seen["cfg"] = cfg
        return types.SimpleNamespace(validation=types.SimpleNamespace(passed=True), firmware=None)

    monkeypatch.setattr(asc_cli.demo, "run_demo", run_demo)
    assert main(["demo", "--work", str(tmp_path / "demo")]) == 0
    assert seen["cfg"] == PipelineConfig()


def test_the_grid_options_default_to_the_pipeline_defaults(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(asc_cli.grid, "run_grid", lambda data, out, configs, **kw: seen.update(configs=configs))
    assert main(["grid", "--data", str(COPY_2022), "--out", str(tmp_path / "g")]) == 0
    assert seen["configs"] == [PipelineConfig()]


def test_a_pipeline_config_survives_pickling():
    """Ray hands each grid cell's configuration to its trial pickled (tune.with_parameters)."""
    cfg = PipelineConfig(train=TrainConfig(model_overrides=(("width", 0.25),), window_frames=32, kd_weight=0.3),
                         export=ExportConfig(budget=5_000), features=PipelineFeatures(n_mels=64, train_split="25"))
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and again.name == cfg.name


@pytest.mark.parametrize("field,value", [("qat", True), ("mcu_target", "stm32f407"), ("export_dir", Path("x"))])
def test_export_options_the_pipeline_cannot_honour_are_refused(field, value):
    with pytest.raises(ValueError, match=f"PipelineConfig.export: {field} cannot be chosen"):
        PipelineConfig(export=ExportConfig(**{field: value}))


def test_a_cell_record_is_reused_for_its_configuration_only(tmp_path):
    cfg = PipelineConfig(train=TrainConfig(epochs=2, freq_mixstyle_p=0.4))
    (tmp_path / GRID_RESULT).write_text(json.dumps({"config": cfg.record(), "row": {"name": "cell"}}))
    assert finished_cell_row(tmp_path, cfg) == {"name": "cell"}
    assert finished_cell_row(tmp_path, dataclasses.replace(cfg, export=ExportConfig(budget=5_000))) is None


def test_a_grid_cell_finished_before_the_recipe_options_is_reused(tmp_path):
    """A grid_result.json written before PipelineConfig had train_split and recipe still matches
    the configuration that leaves them at their defaults, and only that one."""
    (tmp_path / GRID_RESULT).write_text(json.dumps({"config": _flat_record(PipelineConfig(), recipe=False),
                                                    "row": {"name": "cell"}}))
    assert finished_cell_row(tmp_path, PipelineConfig()) == {"name": "cell"}
    assert finished_cell_row(tmp_path, PipelineConfig(train=TrainConfig(freq_mixstyle_p=0.4))) is None


def test_a_cell_recorded_before_the_config_was_composed_is_reused(tmp_path):
    """A flat record with overrides, a window, a subset and a recipe matches the composed
    configuration it describes, and not one that differs in any part."""
    cfg = PipelineConfig(train=TrainConfig(model_overrides=(("width", 0.25),), window_frames=32, seed=3,
                                           freq_mixstyle_p=0.4),
                         export=ExportConfig(calibration_size=40, seed=3), features=PipelineFeatures(train_split="25"))
    (tmp_path / GRID_RESULT).write_text(json.dumps({"config": _flat_record(cfg), "row": {"name": "cell"}}))
    assert finished_cell_row(tmp_path, cfg) == {"name": "cell"}
    for other in (dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, freq_mixstyle_p=0.5)),
                  dataclasses.replace(cfg, export=dataclasses.replace(cfg.export, budget=5_000)),
                  dataclasses.replace(cfg, features=PipelineFeatures())):
        assert finished_cell_row(tmp_path, other) is None


def test_an_old_grid_folder_is_tabulated_without_running_its_finished_cells(tmp_path, monkeypatch):
    """`asc grid` on a grid folder of asc before the composed configuration: its finished cells
    (folders named as then) are reused, the tables written, nothing run."""
    out = tmp_path / "grid"
    base = PipelineConfig(train=TrainConfig(model_overrides=(("width", 0.25),), epochs=2))
    cells = grid_configs(base, models=["resnet11"], frames=[43], mels=[64], losses=["ce", "focal"])
    old_names = ["resnet11_width0.25_43fps_64mel_ce", "resnet11_width0.25_43fps_64mel_focal"]  # as asc named them
    artifacts.claim_folder(out, stage="grid", writes=GRID_TABLES)
    rows = []
    for cfg, name in zip(cells, old_names):
        row = {"name": name, "model": "resnet11", "frames_per_second": 43, "n_mels": 64, "loss": cfg.train.loss,
               "window_frames": None, "params": 1000, "float_accuracy": 0.5, "float_log_loss": 1.0,
               "int8_bytes": 2000, "within_budget": True, "int8_accuracy": 0.5, "arena_bytes": 100,
               "macs_per_inference": None, "macs_per_clip": None, "ram_estimate_bytes": 300}
        (out / name).mkdir(parents=True)
        (out / name / GRID_RESULT).write_text(json.dumps({"config": _flat_record(cfg, recipe=False), "row": row}))
        rows.append(row)
    write_grid_tables(out, rows[:1], log=lambda *_: None)  # as a grid of the first cell alone left it

    def never(*a, **kw):
        raise AssertionError("a finished cell ran again")

    monkeypatch.setattr(asc_cli.grid, "run_pipeline", never)
    assert main(["grid", "--data", str(COPY_2022), "--out", str(out), "--frames", "43", "--mels", "64",
                 "--losses", "ce,focal", "--model-arg", "width=0.25", "--epochs", "2"]) == 0
    assert list(pd.read_csv(out / "results.csv")["name"]) == old_names


def test_the_ray_engine_builds_each_feature_configuration_once(monkeypatch, tmp_path):
    """One feature task per distinct (features, impulse responses) of the cells, with the cell's
    feature configuration, training subset and impulse responses (Ray stood in for by direct calls)."""
    import asc_cli.grid_ray as grid_ray

    calls = []

    def build(data_dir, work_dir, feature_config, workers, train_split, impulse_responses):
        calls.append((FeatureConfig.from_dict(feature_config), train_split, impulse_responses))
        return {"key": "k", "path": "p", "computed": True, "hostname": "h", "log": []}

    class Task:
        def __init__(self, fn):
            self.fn = fn

        def remote(self, *args):
            return self.fn(*args)

    fake_ray = types.SimpleNamespace(remote=lambda **kw: lambda fn: Task(fn), get=lambda ref: ref,
                                     exceptions=types.SimpleNamespace(RayTaskError=RuntimeError))
    monkeypatch.setattr(grid_ray, "_build_features", build)
    base = PipelineConfig(features=PipelineFeatures(train_split="25"))
    cells = grid_configs(base, models=["resnet11", "cnn5"], frames=[43], mels=[64], losses=["ce"])
    with_dir = dataclasses.replace(base, train=TrainConfig(dir_folder=str(tmp_path), dir_p=0.5, dir_copies=2))
    grid_ray._build_feature_caches(fake_ray, [*cells, with_dir], data_dir=tmp_path, work_dir=tmp_path,
                                   clip_seconds=1.0, cpus_per_cell=1, workers=1, log=lambda *_: None)
    expected = {(cells[0].features.feature_config(clip_seconds=1.0), "25", None),
                (base.features.feature_config(clip_seconds=1.0), "25", (str(tmp_path), 2))}
    assert len(calls) == 2 and set(calls) == expected
