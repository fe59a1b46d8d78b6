"""A run's and an export's files are checked by content, and a stage never replaces a file the
user edited (the health issue's must-fix items, continued from test_nothing_lost.py): a truncated
or replaced model, an edited run config or normalization, other training data, an edited export
record, and a report, a table or a bundle the user changed since the stage wrote it."""
from __future__ import annotations

import shutil

import pytest

from asc_cli.main import EXIT_USER_ERROR
from keras_asc import artifacts
from keras_asc.errors import AscError
from tests.asc_cli.cli_run import file_tree, run_asc, staged_folder


# ----------------------------------------------------------------------------- a run's files, checked by content
@pytest.fixture
def run_copy(tmp_path, tiny_run, tiny_export):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    return run


def test_a_truncated_model_is_named(run_copy, tiny_dataset, tiny_work, capsys):
    model = run_copy / "model.keras"
    model.write_bytes(model.read_bytes()[:5000])
    status, err = run_asc(["evaluate", run_copy, "--data", tiny_dataset, "--work", tiny_work], capsys)
    assert status == EXIT_USER_ERROR and f"{model}: is not the model this run trained" in err, err
    cfg = artifacts.read_json(run_copy / "config.json")
    del cfg["model_sha256"]  # a run of an older version: the model itself cannot be read
    artifacts.write_json(run_copy / "config.json", cfg)
    status, err = run_asc(["evaluate", run_copy, "--data", tiny_dataset, "--work", tiny_work], capsys)
    assert status == EXIT_USER_ERROR and f"{model}: not a readable Keras model" in err and "Traceback" not in err, err


def test_a_replaced_model_is_refused(run_copy, tmp_path, tiny_dataset, tiny_work, capsys):
    from keras_asc.models import build_model
    from keras_asc.run_record import load_run_model

    other = build_model("resnet11", (128, 56, 1), width=0.25)
    other.save(run_copy / "model.keras")  # a valid model, not the one trained
    with pytest.raises(AscError, match="is not the model this run trained"):
        load_run_model(run_copy)


@pytest.mark.parametrize("edit", ["no normalization", "labels reordered", "input shape edited", "train not an object",
                                  "mel bands edited"])
def test_an_edited_run_config_names_the_field(edit, run_copy, tiny_dataset, tiny_work, capsys):
    cfg = artifacts.read_json(run_copy / "config.json")
    field = {"no normalization": "normalization", "labels reordered": "labels", "input shape edited": "input_shape",
             "train not an object": "train", "mel bands edited": "features"}[edit]
    if edit == "no normalization":
        del cfg["normalization"]
    elif edit == "labels reordered":
        cfg["labels"] = cfg["labels"][::-1]
    elif edit == "input shape edited":
        cfg["input_shape"] = [128, "56"]
    elif edit == "mel bands edited":
        cfg["features"]["n_mels"] = 64  # the model and the normalization have 128
    else:
        cfg["train"] = 3
    artifacts.write_json(run_copy / "config.json", cfg)
    status, err = run_asc(["evaluate", run_copy, "--data", tiny_dataset, "--work", tiny_work], capsys)
    assert status == EXIT_USER_ERROR and f"field {field!r}" in err and "Traceback" not in err, err


def _run_record(run, edit):
    """The run's config.json as a RunRecord after ``edit`` (applied to the JSON)."""
    from keras_asc.run_record import RunRecord

    cfg = artifacts.read_json(run / "config.json")
    edit(cfg)
    return RunRecord.from_dict(cfg, path=run / "config.json")


def _shift_mean(cfg):
    cfg["normalization"]["mean"] = [v + 0.5 for v in cfg["normalization"]["mean"]]


def test_an_edited_normalization_of_the_same_features_is_refused(run_copy, tiny_dataset, tiny_work):
    from keras_asc.run_record import RunError, feature_set_for_run

    run = _run_record(run_copy, _shift_mean)
    with pytest.raises(RunError, match="field 'normalization' differs from the one computed from the very features"):
        feature_set_for_run(run, tiny_dataset, tiny_work, run_dir=run_copy, log=lambda *_: None)


def test_other_training_data_is_warned_about(run_copy, tiny_dataset, tiny_work):
    from keras_asc.run_record import feature_set_for_run

    def trained_elsewhere(cfg):  # what a run trained on another dataset records
        _shift_mean(cfg)
        cfg["feature_cache"]["key"] = "trained-on-other-data"

    logged = []
    feature_set_for_run(_run_record(run_copy, trained_elsewhere), tiny_dataset, tiny_work, run_dir=run_copy,
                        log=logged.append)
    assert any(m.startswith(f"warning: --data {tiny_dataset}: its train split is not the data") for m in logged)


def test_resume_with_other_options_names_them(tiny_features, tmp_path):
    from keras_asc.training import RunExists, train
    from keras_asc.training_config import TrainConfig
    from tests.conftest import TINY_TRAIN

    run = tmp_path / "run"
    train(tiny_features, run, config=TrainConfig(**{**TINY_TRAIN, "epochs": 1}), log=lambda *_: None)
    with pytest.raises(RunExists, match=r"learning_rate 0\.003 \(now 0\.001\)"):
        train(tiny_features, run, config=TrainConfig(**{**TINY_TRAIN, "epochs": 1, "learning_rate": 0.001}),
              resume=True, log=lambda *_: None)


def test_an_edited_export_record_is_refused(tmp_path, tiny_export):
    from tflite_export.export_result import StaleExport, check_export_files, read_export

    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    exp = read_export(export)
    check_export_files(export, exp)  # as written
    text = (export / "config.json").read_text()
    (export / "config.json").write_text(text + " ")  # one byte more
    with pytest.raises(StaleExport, match=r"config.json: differs from the record `asc export` wrote"):
        check_export_files(export, exp)


# ----------------------------------------------------------------------------- ownership by hash, per stage
def _edited(path, text="\nmy notes\n"):
    with open(path, "a") as f:
        f.write(text)
    return path


@pytest.mark.parametrize("stage", ["validate", "firmware", "profile"])
def test_a_stage_rerun_refuses_to_replace_a_report_the_user_edited(stage, run_copy, tiny_dataset, tiny_work, capsys):
    export = run_copy / "export"
    if stage == "validate":
        with artifacts.adding_files(export, stage="export", names=("validation_report.md",)) as tmp:
            (tmp / "validation_report.md").write_text("report")
        edited = _edited(export / "validation_report.md")
        argv = ["validate", export, "--data", tiny_dataset, "--work", tiny_work]
    else:
        edited = _edited(staged_folder(export / stage, stage, {f"{stage}_report.md": "report"}) / f"{stage}_report.md")
        argv = (["firmware", export, "--data", tiny_dataset, "--work", tiny_work, "--targets", "host"]
                if stage == "firmware" else ["profile", export, "--targets", "cortex-m4"])
    before = file_tree(run_copy)
    status, err = run_asc(argv, capsys)
    assert status == EXIT_USER_ERROR and edited.name in err and "--write-beside" in err and "Traceback" not in err, err
    assert file_tree(run_copy) == before


def test_a_grid_rerun_refuses_to_replace_a_table_the_user_edited(tmp_path, tiny_dataset, capsys):
    from asc_cli.grid import GRID_TABLES

    grid = artifacts.claim_folder(tmp_path / "grid", stage="grid", writes=GRID_TABLES)
    with artifacts.adding_files(grid, stage="grid", names=GRID_TABLES) as tmp:
        for name in GRID_TABLES:
            (tmp / name).write_text("table")
    _edited(grid / "results.md")
    before = file_tree(grid)
    status, err = run_asc(["grid", "--data", tiny_dataset, "--out", grid, "--model-arg", "width=0.25"], capsys)
    assert status == EXIT_USER_ERROR and "results.md" in err and "--write-beside" in err, err
    assert file_tree(grid) == before


@pytest.fixture
def cortex_m_bundle(tmp_path, tiny_export):
    """A Cortex-M4 bundle of the tiny export (it has board/), then edited as BUNDLE.md invites and
    built into build/ (a file of the user's stands for CMake's outputs and the user's own)."""
    from firmware_harness.builds.bundle import make_bundle
    from tests.firmware_harness.conftest import require_targets

    require_targets()  # the TFLM source archives
    out = tmp_path / "bundle"
    make_bundle(tiny_export, out, target="cortex-m4", log=lambda *_: None)
    _edited(out / "board" / "board.ld", "/* my board's memory */\n")
    (out / "build").mkdir()
    (out / "build" / "flash.sh").write_text("my script")
    return out


def test_a_bundle_rerun_keeps_the_users_board_and_build_files(cortex_m_bundle, tiny_export, capsys):
    before = file_tree(cortex_m_bundle)
    status, err = run_asc(["bundle", tiny_export, "--out", cortex_m_bundle, "--target", "cortex-m4"], capsys)
    assert status == EXIT_USER_ERROR and "board/board.ld" in err and "--write-beside" in err, err
    assert file_tree(cortex_m_bundle) == before


def test_a_bundle_rerun_with_write_beside_writes_the_new_board_beside_the_users(cortex_m_bundle, tiny_export,
                                                                                 capsys):
    from firmware_harness.builds.bundle import TEMPLATE_DIR

    board = cortex_m_bundle / "board" / "board.ld"
    mine = board.read_text()
    status, err = run_asc(["bundle", tiny_export, "--out", cortex_m_bundle, "--target", "cortex-m4", "--write-beside"],
                       capsys)
    assert status == 0 and f"{board}: kept yours" in err, err
    assert board.read_text() == mine and (cortex_m_bundle / "build" / "flash.sh").read_text() == "my script"
    new = board.with_name("board.ld" + artifacts.BESIDE_SUFFIX)
    assert new.read_text() == (TEMPLATE_DIR / "board" / "board.ld").read_text()


def test_a_bundle_rerun_keeps_the_build_folder_and_refreshes_its_own_files(tmp_path, tiny_export):
    from firmware_harness.builds.bundle import make_bundle
    from tests.firmware_harness.conftest import require_targets

    require_targets()
    out = tmp_path / "bundle"
    make_bundle(tiny_export, out, target="host", log=lambda *_: None)
    (out / "build").mkdir()
    (out / "build" / "CMakeCache.txt").write_text("cmake's")
    (out / "bundle.json").unlink()  # one of its own files, gone: written again
    make_bundle(tiny_export, out, target="host", log=lambda *_: None)
    assert (out / "build" / "CMakeCache.txt").read_text() == "cmake's" and (out / "bundle.json").is_file()


def test_grid_tables_written_again_with_write_beside_keep_the_users_table(tmp_path):
    from asc_cli.grid import GRID_TABLES, write_grid_tables

    def row(accuracy):
        return {"name": "a", "window_frames": None, "params": 1000, "float_accuracy": accuracy, "float_log_loss": 1.0,
                "int8_bytes": 2000, "within_budget": True, "int8_accuracy": accuracy, "arena_bytes": 3000,
                "macs_per_inference": None, "macs_per_clip": None, "ram_estimate_bytes": 4000, "hostname": "h",
                "node_ip": "h", "attempts": 1}

    grid = artifacts.claim_folder(tmp_path / "grid", stage="grid", writes=GRID_TABLES)
    write_grid_tables(grid, [row(0.5)], log=lambda *_: None)
    _edited(grid / "results.md")
    mine = (grid / "results.md").read_text()
    with artifacts.writing_beside(True):
        write_grid_tables(grid, [row(0.6)], log=lambda *_: None)
    assert (grid / "results.md").read_text() == mine
    assert "60.0" in (grid / ("results.md" + artifacts.BESIDE_SUFFIX)).read_text()
    assert "0.6" in (grid / "results.csv").read_text()  # unchanged since written: replaced
