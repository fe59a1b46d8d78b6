"""Nothing lost, nothing stale, nothing unexplained (the must-fix items of the health issue).

Each test failed before its fix: an ``--out`` that replaced a user's folder or the run itself; a
PCM check that streamed another dataset's audio; a staleness check that followed an absolute path;
C sources not tied to ``model.tflite``; option values that reached the work and crashed there;
options silently ignored; exit statuses that did not tell a bug from a bad option.
"""
from __future__ import annotations

import os
import shutil

import pytest

from asc_cli.main import EXIT_BAD_OPTION, EXIT_BUG, EXIT_USER_ERROR
from keras_asc import artifacts
from tests.asc_cli.cli_run import file_tree, run_asc, staged_folder


# ----------------------------------------------------------------------------- 1. --out never replaces
def test_staging_refuses_a_folder_its_stage_did_not_write(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(artifacts.RefusedOverwrite, match=rf"{mine}: exists and holds files asc export did not write"):
        with artifacts.staging_dir(mine, stage="export"):
            pass
    assert (mine / "notes.txt").read_text() == "keep"


def test_staging_refuses_a_file(tmp_path):
    a_file = tmp_path / "out"
    a_file.write_text("keep")
    with pytest.raises(artifacts.RefusedOverwrite, match="is not a folder"):
        with artifacts.staging_dir(a_file, stage="export"):
            pass
    assert a_file.read_text() == "keep"


def test_staging_replaces_what_the_same_stage_wrote(tmp_path):
    for text in ("first", "second"):
        with artifacts.staging_dir(tmp_path / "export", stage="export") as tmp:
            (tmp / "f").write_text(text)
    assert (tmp_path / "export" / "f").read_text() == "second"
    assert artifacts.written_by(tmp_path / "export", "export") and not artifacts.written_by(tmp_path / "export", "firmware")


def test_staging_refuses_another_stages_folder(tmp_path):
    with artifacts.staging_dir(tmp_path / "x", stage="features") as tmp:
        (tmp / "f").write_text("features")
    with pytest.raises(artifacts.RefusedOverwrite):
        with artifacts.staging_dir(tmp_path / "x", stage="export"):
            pass
    assert (tmp_path / "x" / "f").read_text() == "features"


def test_staging_refuses_a_folder_holding_its_input(tmp_path):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    for final in (run, tmp_path / "runs"):
        with pytest.raises(artifacts.RefusedOverwrite, match="input"):
            artifacts.check_replaceable(final, stage="export", inputs=(run,))


@pytest.mark.parametrize("case", ["a file", "a folder of the user's", "the run itself", "a folder holding the run"])
def test_export_out_never_replaces_what_it_did_not_write(case, tmp_path, tiny_run, tiny_dataset, tiny_work, capsys):
    run = tmp_path / "runs" / "run"
    shutil.copytree(tiny_run, run)
    out = {"a file": tmp_path / "out.txt", "a folder of the user's": tmp_path / "mine",
           "the run itself": run, "a folder holding the run": tmp_path / "runs"}[case]
    if case == "a file":
        out.write_text("keep")
    elif case == "a folder of the user's":
        out.mkdir()
        (out / "notes.txt").write_text("keep")
    before = file_tree(tmp_path)
    status, err = run_asc(["export", run, "--data", tiny_dataset, "--work", tiny_work, "--out", out,
                        "--arena-targets", "none"], capsys)
    assert status == EXIT_USER_ERROR and str(out) in err and "--out" in err and "Traceback" not in err
    assert file_tree(tmp_path) == before


def test_staging_keeps_a_users_file_in_its_own_folder(tmp_path):
    export = staged_folder(tmp_path / "export", "export", {"model.tflite": "m", "sub/x.h": "h"})
    (export / "sub" / "NOTES.md").write_text("keep")
    staged_folder(export, "export", {"model.tflite": "new"})
    assert (export / "sub" / "NOTES.md").read_text() == "keep" and (export / "model.tflite").read_text() == "new"
    assert not (export / "sub" / "x.h").exists()  # its own, unchanged and no longer written


def test_staging_leaves_another_stages_subfolder_whole_while_it_holds_a_users_file(tmp_path):
    export = staged_folder(tmp_path / "export", "export", {"model.tflite": "m"})
    staged_folder(export / "firmware", "firmware", {"firmware_report.md": "r"})
    (export / "firmware" / "NOTES.md").write_text("keep")
    staged_folder(export, "export", {"model.tflite": "new"})
    staged_folder(export / "firmware", "firmware", {"firmware_report.md": "r2"})
    assert (export / "firmware" / "NOTES.md").read_text() == "keep"
    assert (export / "firmware" / "firmware_report.md").read_text() == "r2"


def test_staging_replaces_its_folder_with_later_stages_files_in_it(tmp_path):
    export = staged_folder(tmp_path / "export", "export", {"model.tflite": "m"})
    staged_folder(export / "firmware", "firmware", {"firmware_report.md": "r"})
    with artifacts.adding_files(export, stage="export", names=("validation_report.md",)) as tmp:
        (tmp / "validation_report.md").write_text("v")
    staged_folder(export, "export", {"model.tflite": "new"})
    assert sorted(p.name for p in export.iterdir()) == [artifacts.STAGE_MARKER, "model.tflite"]


def test_staging_never_deletes_the_build_folder_its_instructions_fill(tmp_path):
    bundle = staged_folder(tmp_path / "bundle", "bundle", {"CMakeLists.txt": "old"})
    (bundle / "build" / "CMakeFiles").mkdir(parents=True)
    (bundle / "build" / "CMakeFiles" / "x.o").write_text("built")  # cmake -B OUT/build, as BUNDLE.md says
    staged_folder(bundle, "bundle", {"CMakeLists.txt": "new"})
    assert (bundle / "CMakeLists.txt").read_text() == "new"
    assert (bundle / "build" / "CMakeFiles" / "x.o").read_text() == "built"


def test_reexport_refuses_an_export_file_the_user_edited(tmp_path, tiny_run, tiny_export, tiny_dataset, tiny_work,
                                                         capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    with open(run / "export" / "size_report.txt", "a") as f:
        f.write("my notes\n")
    before = file_tree(tmp_path)
    status, err = run_asc(["export", run, "--data", tiny_dataset, "--work", tiny_work, "--arena-targets", "none"], capsys)
    assert status == EXIT_USER_ERROR and "size_report.txt" in err and "--write-beside" in err, err
    assert file_tree(tmp_path) == before


def test_export_out_refuses_another_runs_export(tmp_path, tiny_run, tiny_export, tiny_dataset, tiny_work, capsys):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    shutil.copytree(tiny_run, ours)
    shutil.copytree(tiny_run, theirs)
    before = file_tree(tmp_path)
    status, err = run_asc(["export", ours, "--data", tiny_dataset, "--work", tiny_work, "--out", theirs / "export",
                        "--arena-targets", "none"], capsys)
    assert status == EXIT_USER_ERROR and "holds the export of another run" in err and str(theirs) in err, err
    assert file_tree(tmp_path) == before


# ----------------------------------------------------------------------------- 2. --from-audio streams --data
def test_pcm_audio_comes_from_data_and_is_the_features_audio(tmp_path, tiny_dataset, tiny_features):
    """A copy of the dataset has the same cache key (hard links keep name, size and mtime): the
    cache's paths are the original's, yet the audio streamed is the copy's, checked by content."""
    from firmware_harness.firmware.from_audio import dataset_audio
    from tests.conftest import copy_dataset

    data = copy_dataset(tiny_dataset, tmp_path / "copy")
    table = tiny_features.table("evaluate")
    paths = dataset_audio(data, table)
    assert [p.name for p in paths] == [os.path.basename(f) for f in table["filename"]]
    assert all(str(p).startswith(str(data)) for p in paths)


def test_pcm_audio_with_other_content_is_refused_by_name(tmp_path, tiny_dataset, tiny_features):
    from firmware_harness.firmware.from_audio import dataset_audio
    from firmware_harness.builds.third_party import FirmwareError
    from tests.conftest import copy_dataset

    data = copy_dataset(tiny_dataset, tmp_path / "copy")
    table = tiny_features.table("evaluate")
    wav = data / table["filename"].iloc[1]
    raw = bytearray(wav.read_bytes())
    stat = wav.stat()
    wav.unlink()  # hard-linked to the original: replace, never write through
    raw[-100] ^= 0x55  # other audio, same size and (below) the same mtime: the cache key cannot see it
    wav.write_bytes(bytes(raw))
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(FirmwareError, match=rf"{wav}: holds other audio than the file the cached features"):
        dataset_audio(data, table)


# ----------------------------------------------------------------------------- 3. staleness by content
@pytest.fixture
def moved_run(tmp_path, tiny_run, tiny_export):
    """A copy of the tiny run (with its export inside), then renamed: the absolute path the export
    once recorded no longer exists."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    renamed = tmp_path / "renamed"
    run.rename(renamed)
    return renamed


def test_a_stale_export_of_a_renamed_run_is_refused(moved_run, capsys):
    from firmware_harness.validation.export_validation import load_checked_export
    from tflite_export.export_result import StaleExport

    (moved_run / "model.keras").write_bytes((moved_run / "model.keras").read_bytes() + b"\0")  # the run moved on
    with pytest.raises(StaleExport, match=rf"{moved_run / 'model.keras'}: is not the model"):
        load_checked_export(moved_run / "export" / "model.tflite")


def test_a_renamed_run_with_its_export_still_checks(moved_run):
    from firmware_harness.validation.export_validation import load_checked_export

    logged = []
    load_checked_export(moved_run / "export" / "model.tflite", log=logged.append)
    assert logged == []


def test_an_export_away_from_its_run_warns_that_the_check_could_not_run(tmp_path, tiny_export):
    from firmware_harness.validation.export_validation import load_checked_export

    export = tmp_path / "elsewhere" / "export"
    shutil.copytree(tiny_export, export)
    logged = []
    load_checked_export(export / "model.tflite", log=logged.append)
    assert len(logged) == 1 and "staleness check could not run" in logged[0] and str(export) in logged[0]


# ----------------------------------------------------------------------------- 4. C sources tied to the model
@pytest.mark.parametrize("name", ["model_data.cc", "model_settings.h", "model_frontend.cc", "calibration.csv"])
def test_every_exported_file_is_tied_by_hash(name, tmp_path, tiny_export):
    from firmware_harness.validation.export_validation import load_checked_export
    from tflite_export.export_result import StaleExport

    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    with open(export / name, "a") as f:
        f.write("\n// edited\n")
    with pytest.raises(StaleExport, match=rf"{export / name}: differs from the file `asc export` wrote"):
        load_checked_export(export / "model.tflite", log=lambda *_: None)


def test_the_export_records_every_file_it_wrote(tiny_export):
    from tflite_export.export_result import read_export

    exp = read_export(tiny_export)
    written = {p.name for p in tiny_export.iterdir() if p.is_file()} - {"config.json", artifacts.STAGE_MARKER}
    written = {n for n in written if not n.startswith("validation_")}
    assert set(exp.files_sha256) == written
    assert exp.files_sha256["model_data.cc"] == artifacts.sha256_file(tiny_export / "model_data.cc")
    assert not os.path.isabs(exp.source_run)


# ----------------------------------------------------------------------------- 5. options checked before work
TRAIN, GRID = ["train", "--data", "D", "--out", "O"], ["grid", "--data", "D", "--out", "O"]
OPTION_CASES = {
    "window the network cannot process": (TRAIN + ["--model-arg", "width=0.25", "--window-frames", "4"],
                                          "--window-frames 4"),
    "window longer than the clip": (TRAIN + ["--window-frames", "500", "--clip-seconds", "2"], "--window-frames 500"),
    "hop without a window": (TRAIN + ["--window-hop", "8"], "--window-hop"),
    "a model argument the builder does not take": (TRAIN + ["--model-arg", "depth=3"], "--model-arg"),
    "grid window the network cannot process": (GRID + ["--window-frames", "clip,5"], "--window-frames 5"),
    "grid window longer than the clip": (GRID + ["--window-frames", "400"], "--window-frames 400"),
    "grid model argument": (GRID + ["--model-arg", "depth=3"], "--model-arg"),
    "grid unknown model": (GRID + ["--models", "resnet11,resnet99"], "resnet99"),
    "a firmware target twice": (["firmware", "E", "--data", "D", "--targets", "host,host"], "--targets"),
    "an arena target twice": (["export", "R", "--data", "D", "--arena-targets", "host,cortex-m4,host"],
                              "--arena-targets"),
    "a profile of a host target": (["profile", "E", "--targets", "host"], "--targets"),
    "a model argument of 0": (TRAIN + ["--model-arg", "width=0"], "--model-arg"),
    "an infinite model argument": (TRAIN + ["--model-arg", "width=inf"], "--model-arg"),
    "a model argument given twice": (TRAIN + ["--model-arg", "width=0.25", "--model-arg", "width=0.5"],
                                     "--model-arg width given more than once"),
    "a grid model listed twice": (GRID + ["--models", "resnet11,resnet11"], "listed more than once"),
    "a grid frame rate listed twice": (GRID + ["--frames", "28,28"], "listed more than once"),
    "a demo of too few segments": (["demo", "--size", "2"], "--size"),
    "a demo model argument the builder does not take": (["demo", "--model-arg", "depth=3"], "--model-arg"),
    "a profile of an unknown MCU": (["profile", "E", "--mcu", "stm32f4"], "--mcu"),
    "--qat with --compress": (["export", "R", "--data", "D", "--qat", "--compress"], "--qat and --compress"),
}


@pytest.mark.parametrize("case", OPTION_CASES)
def test_option_values_the_stages_cannot_take_are_refused_before_any_work(case, tmp_path, monkeypatch, capsys):
    argv, named = OPTION_CASES[case]
    monkeypatch.chdir(tmp_path)
    status, err = run_asc(argv, capsys)
    assert status == EXIT_BAD_OPTION and named in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []  # nothing was started


def test_a_corrupt_archive_without_a_checksum_file_is_named(tmp_path, monkeypatch):
    from firmware_harness.builds import third_party
    from firmware_harness.builds.third_party import FirmwareError

    src = third_party.default_third_party_dir()
    if not src.is_dir():
        pytest.skip(f"{src}: no TFLM source archives")
    folder = tmp_path / "third_party"
    folder.mkdir()
    for name in third_party.ARCHIVES:
        (folder / name).symlink_to(src / name)
    (folder / "tflite-micro.tar.gz").unlink()
    (folder / "tflite-micro.tar.gz").write_bytes((src / "tflite-micro.tar.gz").read_bytes()[:100_000])  # truncated
    monkeypatch.setenv(third_party.ENV_CACHE, str(tmp_path / "cache"))
    logged = []
    tp = third_party.locate_third_party(folder, log=logged.append)
    assert "SHA256SUMS is missing" in logged[0] and str(folder) in logged[0]
    with pytest.raises(FirmwareError, match=rf"{folder / 'tflite-micro.tar.gz'}: not a readable gzip'd tar archive"):
        third_party.prepare_tflm_tree(tp, log=lambda *_: None)


# ----------------------------------------------------------------------------- 6. nothing accepted silently
IGNORED = {
    "--compress-bits without --compress": (["export", "R", "--data", "D", "--compress-bits", "3"], "--compress-bits 3"),
    "--qat-epochs without --qat": (["export", "R", "--data", "D", "--qat-epochs", "5"], "--qat-epochs 5"),
    "--budget lowered by --target": (["export", "R", "--data", "D", "--budget", "2000000", "--target", "stm32f407"],
                                     "--budget 2000000 is lowered by --target"),
    "--chunk without --from-audio": (["firmware", "E", "--data", "D", "--chunk", "512"], "--chunk 512"),
    "--clips with host targets only": (["firmware", "E", "--data", "D", "--targets", "host", "--clips", "5"],
                                       "--clips 5"),
    "--host-clips with emulated targets only": (["firmware", "E", "--data", "D", "--targets", "cortex-m4",
                                                 "--host-clips", "5"], "--host-clips 5"),
}


@pytest.mark.parametrize("case", IGNORED)
def test_ignored_or_overridden_options_are_named(case, tmp_path, monkeypatch, capsys):
    argv, words = IGNORED[case]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "E").mkdir()  # an export folder by its record's stage and files, but not a real export
    (tmp_path / "E" / "config.json").write_text('{"stage": "export"}')
    (tmp_path / "E" / "model.tflite").write_bytes(b"x")
    status, err = run_asc(argv, capsys)  # then fails on the missing files: the warning came first
    assert f"asc: warning: {words}" in err and status == EXIT_USER_ERROR, err


def test_data_warnings_are_repeated_when_the_cache_is_reused(tmp_path, tiny_dataset, tiny_work):
    from keras_asc.feature_cache import build_feature_cache
    from keras_asc.features import FeatureConfig
    from tests.conftest import TINY_CLIP_SECONDS, copy_dataset

    data = copy_dataset(tiny_dataset, tmp_path / "data")
    split = data / "evaluation_setup" / "fold1_evaluate.csv"
    lines = split.read_text().splitlines()
    split.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if not ln.endswith("\tpark")]) + "\n")
    cfg = FeatureConfig.seed(clip_seconds=TINY_CLIP_SECONDS)
    logs = [[], []]
    for log in logs:
        build_feature_cache(data, tmp_path / "work", config=cfg, workers=1, log=log.append)
    assert "reusing cache" in " ".join(logs[1])
    for log in logs:
        assert any("no clips of scene(s) ['park']" in line for line in log), log


def test_windows_that_leave_frames_unclassified_are_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, err = run_asc(["train", "--data", "D", "--out", "O", "--window-frames", "16", "--window-hop", "24"], capsys)
    assert "asc: warning: --window-hop 24 is longer than --window-frames 16: the 8 frames" in err
    assert status == EXIT_USER_ERROR  # then the missing dataset


# ----------------------------------------------------------------------------- 7. exit statuses
def test_a_bug_exits_70_with_its_traceback(capsys, monkeypatch, tmp_path):
    import keras_asc.api

    def broken(*a, **k):
        raise KeyError("oops")

    monkeypatch.setattr(keras_asc.api, "read_fold1", broken)
    status, err = run_asc(["describe", "--data", tmp_path], capsys)
    assert status == EXIT_BUG == 70 and "Traceback" in err and "KeyError" in err and "bug" in err


def test_user_error_and_bad_option_exit_statuses_differ(tmp_path, capsys):
    assert (EXIT_USER_ERROR, EXIT_BAD_OPTION) == (1, 2)
    status, _ = run_asc(["describe", "--data", tmp_path / "nowhere"], capsys)
    assert status == EXIT_USER_ERROR
    status, _ = run_asc(["train", "--data", "D", "--out", "O", "--epochs", "0"], capsys)
    assert status == EXIT_BAD_OPTION


def test_grid_never_writes_into_a_folder_of_the_users(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.md").write_text("keep")
    status, err = run_asc(GRID[:4] + [mine, "--model-arg", "width=0.25"], capsys)
    assert status == EXIT_USER_ERROR and str(mine) in err and "--out" in err
    assert file_tree(mine) == {mine.joinpath("results.md").relative_to(mine): b"keep"}


def test_grid_claims_an_empty_or_its_own_folder(tmp_path):
    out = artifacts.claim_folder(tmp_path / "g", stage="grid")
    assert artifacts.written_by(out, "grid")
    (out / "results.csv").write_text("x")
    assert artifacts.claim_folder(out, stage="grid") == out  # a rerun of the same grid
