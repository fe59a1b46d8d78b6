"""`asc` on the TAU 2022 one-second layout: --train-split and --dcase-year through the CLI."""
from pathlib import Path

import pandas as pd
import pytest

from asc_cli.main import main

COPY_2022 = Path(__file__).parents[1] / "keras_asc" / "layout_copies" / "tau2022"


def test_describe_reads_a_training_subset(capsys):
    assert main(["describe", "--data", str(COPY_2022), "--no-audio-check", "--train-split", "25"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("layout: TAU Urban Acoustic Scenes 2022 Mobile (1 s clips); train split: ")
    assert "split_setup/split25.csv" in out.splitlines()[0]


def test_an_unknown_training_subset_is_refused_as_an_option_value(capsys):
    with pytest.raises(SystemExit) as stop:  # argparse: exit 2, before any work
        main(["describe", "--data", str(COPY_2022), "--no-audio-check", "--train-split", "30"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert stop.value.code == 2 and "--train-split" in err and "5, 10, 25, 50, 100" in err and "'30'" in err


@pytest.mark.slow
def test_one_second_dataset_features_train_export(tmp_path, capsys):
    """make-dataset --clip-seconds 1 -> features and a one-window-per-W model on the 50 % subset ->
    export under DCASE 2025's rules (the layout's default); calibration comes from the subset only."""
    import json

    from keras_asc.synth import make_dataset

    data = make_dataset(tmp_path / "data", size="3", seed=0, clip_seconds=1, parts_per_segment=2, workers=1,
                        log=lambda *_: None)
    work, run = tmp_path / "work", tmp_path / "run"
    common = ["--data", str(data), "--train-split", "50", "--frames-per-second", "43", "--workers", "1"]
    assert main(["features", "--out", str(work), *common]) == 0
    assert main(["train", "--out", str(run), "--work", str(work), *common, "--epochs", "1", "--window-frames", "32",
                 "--model", "resnet11", "--model-arg", "width=0.25"]) == 0
    assert main(["export", str(run), "--data", str(data), "--work", str(work), "--arena-targets", "none",
                 "--calibration-size", "20", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "DCASE 2025 complexity" in out and "within the limits" in out
    cfg = json.loads((run / "export" / "config.json").read_text())
    assert cfg["features"]["clip_seconds"] == 1.0 and cfg["size"]["dcase"]["year"] == 2025
    assert cfg["train_split"] == "50"
    assert cfg["size"]["dcase"]["macs_per_second_of_audio"] == cfg["size"]["macs_per_clip"]  # one-second clips
    subset = set(pd.read_csv(data / "split_setup" / "split50.csv", sep="\t")["filename"])
    calibration = set(pd.read_csv(run / "export" / "calibration.csv")["filename"])
    assert calibration <= subset
    assert main(["validate", str(run / "export"), "--data", str(data), "--work", str(work), "--workers", "1"]) == 0
    assert len(list((work / "features").iterdir())) == 1  # validate reused the subset's cache, made no other


@pytest.mark.slow
def test_todays_recipe_goes_through_export_validate_and_firmware(tmp_path, capsys):
    """Issue #22's end to end: on a one-second generated dataset, a student trained with a teacher,
    Freq-MixStyle and device impulse responses (all three at once) is exported, validated and built
    as host firmware from log-mel and from PCM, unchanged."""
    import json

    from firmware_harness.builds.third_party import FirmwareError, locate_third_party
    from keras_asc.synth import make_dataset

    data = make_dataset(tmp_path / "data", size="3", seed=0, clip_seconds=1, parts_per_segment=2, workers=1,
                        log=lambda *_: None)
    work, teacher, student = tmp_path / "work", tmp_path / "teacher", tmp_path / "student"
    common = ["--data", str(data), "--work", str(work), "--frames-per-second", "43", "--workers", "1",
              "--epochs", "1", "--window-frames", "32"]
    assert main(["train", "--out", str(teacher), *common, "--model", "resnet11", "--model-arg", "width=0.5"]) == 0
    assert main(["train", "--out", str(student), *common, "--model", "resnet11", "--model-arg", "width=0.25",
                 "--teacher", str(teacher), "--freq-mixstyle", "0.5,0.3",
                 "--dir-aug", f"{data / 'impulse_responses'},0.5"]) == 0
    train = json.loads((student / "config.json").read_text())["train"]
    assert train["teachers"] and train["freq_mixstyle_p"] == 0.5 and train["dir_p"] == 0.5
    assert main(["export", str(student), "--data", str(data), "--work", str(work), "--arena-targets", "none",
                 "--calibration-size", "20", "--workers", "1"]) == 0
    assert main(["validate", str(student / "export"), "--data", str(data), "--work", str(work), "--workers", "1"]) == 0
    try:
        locate_third_party()
    except FirmwareError as e:
        pytest.skip(f"no TFLM archives for the firmware step: {e}")
    assert main(["firmware", str(student / "export"), "--data", str(data), "--work", str(work), "--targets", "host",
                 "--from-audio", "--workers", "1"]) == 0
    report = json.loads((student / "export" / "firmware" / "firmware_report.json").read_text())
    assert report["passed"] and all(t["from_audio"] for t in report["targets"])
    capsys.readouterr()


def test_grid_takes_the_training_subset_the_recipe_and_the_layouts_clip_length(tmp_path, monkeypatch):
    import asc_cli.grid

    seen = {}
    monkeypatch.setattr(asc_cli.grid, "run_grid", lambda data, out, configs, **kw: seen.update(configs=configs, **kw))
    assert main(["grid", "--data", str(COPY_2022), "--out", str(tmp_path / "g"), "--frames", "43",
                 "--model-arg", "width=0.25", "--train-split", "25", "--freq-mixstyle", "0.4,0.3"]) == 0
    (cfg,) = seen["configs"]
    assert seen["clip_seconds"] == 1.0 and cfg.features.train_split == "25"  # TAU 2022's one-second clips
    assert (cfg.train.freq_mixstyle_p, cfg.train.freq_mixstyle_alpha) == (0.4, 0.3) and not cfg.train.teachers
    seen.clear()
    assert main(["grid", "--data", str(COPY_2022), "--out", str(tmp_path / "g2"), "--frames", "43",
                 "--model-arg", "width=0.25"]) == 0
    (plain,) = seen["configs"]
    assert plain.train.recipe_text() == "" and plain.features.train_split is None  # as grids made before the options


@pytest.mark.slow
def test_a_grid_cell_trains_on_the_subset_with_the_recipe(tmp_path):
    """`asc grid` on a one-second generated dataset: the cell's run is trained on the 50 % subset,
    with Freq-MixStyle, on one-second features, and gets its row."""
    import json

    from keras_asc.dataset import train_split_of_run
    from keras_asc.synth import make_dataset

    data = make_dataset(tmp_path / "data", size="3", seed=0, clip_seconds=1, parts_per_segment=2, workers=1,
                        log=lambda *_: None)
    out = tmp_path / "grid"
    assert main(["grid", "--data", str(data), "--out", str(out), "--frames", "43", "--model-arg", "width=0.25",
                 "--epochs", "1", "--calibration-size", "20", "--workers", "1", "--train-split", "50",
                 "--freq-mixstyle", "0.5,0.3"]) == 0
    (row,) = pd.read_csv(out / "results.csv").to_dict("records")
    run = json.loads((out / row["name"] / "config.json").read_text())
    assert run["train"]["freq_mixstyle_p"] == 0.5 and run["features"]["clip_seconds"] == 1.0
    assert train_split_of_run(run) == "50"
    assert str(row["train_split"]) == "50" and row["recipe"] == "Freq-MixStyle p 0.5, alpha 0.3"
    md = (out / "results.md").read_text()
    assert md.startswith("trained on the training subset: 50\n\nrecipe: Freq-MixStyle p 0.5, alpha 0.3\n")
