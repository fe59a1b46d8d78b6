"""Ownership by hash (keras_asc/ownership.py): a rerun replaces only the files its stage wrote and
nobody changed since; everything else is kept, refused by name, or written beside."""
from __future__ import annotations

import json

import pytest

from keras_asc import artifacts


def _staged(folder, files, *, stage="bundle", **options):
    """``files`` ({relative path: text}) written as ``stage``'s whole output into ``folder``."""
    with artifacts.staging_dir(folder, stage=stage, **options) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
    return folder


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _marker(folder):
    return json.loads((folder / artifacts.STAGE_MARKER).read_text())


FIRST = {"board/board.ld": "ld 1", "app/main.cc": "main 1", "CMakeLists.txt": "cmake 1"}
SECOND = {"board/board.ld": "ld 2", "app/main.cc": "main 2", "CMakeLists.txt": "cmake 2"}


def test_the_marker_holds_the_sha256_of_every_file_written(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    assert _marker(out)["sha256"] == {name: artifacts.sha256_file(out / name) for name in FIRST}


def test_an_unchanged_file_is_replaced(tmp_path):
    out = _staged(_staged(tmp_path / "b", FIRST), SECOND)
    assert {name: (out / name).read_text() for name in SECOND} == SECOND


def test_a_changed_file_is_refused_by_name_and_nothing_changes(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    (out / "board" / "board.ld").write_text("my board")
    before = _tree(tmp_path)
    with pytest.raises(artifacts.RefusedOverwrite, match=r"changed since asc bundle wrote them.*: board/board\.ld\."):
        _staged(out, SECOND)
    assert _tree(tmp_path) == before


def test_write_beside_keeps_the_changed_file_and_writes_the_new_version_beside_it(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    (out / "board" / "board.ld").write_text("my board")
    _staged(out, SECOND, write_beside=True)
    assert (out / "board" / "board.ld").read_text() == "my board"
    assert (out / "board" / f"board.ld{artifacts.BESIDE_SUFFIX}").read_text() == "ld 2"
    assert (out / "app" / "main.cc").read_text() == "main 2"


def test_the_kept_file_is_the_users_and_its_new_version_asc_s(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    (out / "board" / "board.ld").write_text("my board")
    _staged(out, SECOND, write_beside=True)
    assert set(_marker(out)["sha256"]) == {"app/main.cc", "CMakeLists.txt", f"board/board.ld{artifacts.BESIDE_SUFFIX}"}


def test_write_beside_from_the_surrounding_setting(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    (out / "app" / "main.cc").write_text("my app")
    with artifacts.writing_beside(True):
        _staged(out, SECOND)
    assert (out / "app" / f"main.cc{artifacts.BESIDE_SUFFIX}").read_text() == "main 2"


def test_a_users_file_beside_asc_s_is_never_touched(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    (out / "build").mkdir()
    (out / "build" / "mine.txt").write_text("keep")
    (out / "NOTES.md").write_text("keep too")
    _staged(out, {"CMakeLists.txt": "only this"})
    assert (out / "build" / "mine.txt").read_text() == "keep" and (out / "NOTES.md").read_text() == "keep too"


def test_a_file_no_longer_written_is_deleted_when_unchanged(tmp_path):
    out = _staged(_staged(tmp_path / "b", FIRST), {"CMakeLists.txt": "cmake 2"})
    assert sorted(_tree(out)) == [artifacts.STAGE_MARKER, "CMakeLists.txt"]
    assert not (out / "board").exists()  # the folder its deletion emptied


def test_a_changed_file_no_longer_written_is_kept(tmp_path, capsys):
    out = _staged(tmp_path / "b", FIRST)
    (out / "app" / "main.cc").write_text("my app")
    _staged(out, {"CMakeLists.txt": "cmake 2"}, write_beside=True)
    assert (out / "app" / "main.cc").read_text() == "my app"
    assert f"{out / 'app' / 'main.cc'}: kept" in capsys.readouterr().err


def test_a_file_already_holding_the_new_content_is_no_conflict(tmp_path):
    out = _staged(tmp_path / "b", {"CMakeLists.txt": "cmake 1"})
    (out / "board").mkdir()
    (out / "board" / "board.ld").write_text("ld 2")  # put there by the user, byte for byte what asc writes
    _staged(out, SECOND)
    assert (out / "board" / "board.ld").read_text() == "ld 2"
    assert "board/board.ld" in _marker(out)["sha256"]


def test_a_file_of_the_user_where_asc_writes_is_refused(tmp_path):
    out = _staged(tmp_path / "b", {"CMakeLists.txt": "cmake 1"})
    (out / "app").mkdir()
    (out / "app" / "main.cc").write_text("mine")
    with pytest.raises(artifacts.RefusedOverwrite, match=r"not written by asc bundle.*: app/main\.cc"):
        _staged(out, SECOND)
    assert (out / "app" / "main.cc").read_text() == "mine"


def test_a_link_where_asc_wrote_a_file_is_never_written_through(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    theirs = tmp_path / "my_board.ld"
    theirs.write_text("my board")
    (out / "board" / "board.ld").unlink()
    (out / "board" / "board.ld").symlink_to(theirs)
    with pytest.raises(artifacts.RefusedOverwrite, match=r"board/board\.ld"):
        _staged(out, SECOND)
    assert theirs.read_text() == "my board"


def test_a_folder_of_an_older_version_without_hashes_is_refused(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    artifacts.write_json(out / artifacts.STAGE_MARKER, {"stage": "bundle", "files": sorted(FIRST)})  # older format
    before = _tree(tmp_path)
    with pytest.raises(artifacts.RefusedOverwrite, match="older version of asc that kept no sha256"):
        _staged(out, SECOND)
    assert _tree(tmp_path) == before


def test_another_stages_intact_subfolder_goes_with_the_old_version(tmp_path):
    export = _staged(tmp_path / "export", {"model.tflite": "m"}, stage="export")
    _staged(export / "profile", {"profile_report.md": "old model's"}, stage="profile")
    _staged(export, {"model.tflite": "new"}, stage="export")
    assert not (export / "profile").exists()


def test_another_stages_subfolder_with_a_changed_file_is_left_whole(tmp_path):
    export = _staged(tmp_path / "export", {"model.tflite": "m"}, stage="export")
    _staged(export / "profile", {"profile_report.md": "r", "cortex-m4/image.elf": "elf"}, stage="profile")
    (export / "profile" / "profile_report.md").write_text("my notes on it")
    _staged(export, {"model.tflite": "new"}, stage="export")
    assert (export / "profile" / "profile_report.md").read_text() == "my notes on it"
    assert (export / "profile" / "cortex-m4" / "image.elf").read_text() == "elf"


def test_added_files_are_recorded_and_replaced_when_unchanged(tmp_path):
    export = _staged(tmp_path / "export", {"model.tflite": "m"}, stage="export")
    for text in ("report 1", "report 2"):
        with artifacts.adding_files(export, stage="export", names=("validation_report.md",)) as tmp:
            (tmp / "validation_report.md").write_text(text)
    assert (export / "validation_report.md").read_text() == "report 2"
    assert set(_marker(export)["sha256"]) == {"model.tflite", "validation_report.md"}


def test_an_added_file_the_user_changed_is_refused_before_any_work(tmp_path):
    export = _staged(tmp_path / "export", {"model.tflite": "m"}, stage="export")
    with artifacts.adding_files(export, stage="export", names=("validation_report.md",)) as tmp:
        (tmp / "validation_report.md").write_text("report 1")
    (export / "validation_report.md").write_text("my edit")
    with pytest.raises(artifacts.RefusedOverwrite, match="validation_report.md"):
        artifacts.check_adding(export, stage="export", names=("validation_report.md",))


def test_adding_files_leaves_the_rest_of_the_folder_alone(tmp_path):
    export = _staged(tmp_path / "export", {"model.tflite": "m", "size_report.txt": "s"}, stage="export")
    (export / "size_report.txt").write_text("edited")  # not among the names added: not this write's business
    with artifacts.adding_files(export, stage="export", names=("validation_report.md",)) as tmp:
        (tmp / "validation_report.md").write_text("v")
    assert (export / "size_report.txt").read_text() == "edited" and (export / "model.tflite").read_text() == "m"


def test_a_grid_table_the_user_edited_is_refused_when_the_folder_is_claimed(tmp_path):
    grid = artifacts.claim_folder(tmp_path / "g", stage="grid", writes=("results.md",))
    with artifacts.adding_files(grid, stage="grid", names=("results.md",)) as tmp:
        (tmp / "results.md").write_text("table")
    (grid / "results.md").write_text("table, with my notes")
    with pytest.raises(artifacts.RefusedOverwrite, match="results.md"):
        artifacts.claim_folder(grid, stage="grid", writes=("results.md",))


def test_a_killed_merge_is_completed_by_the_next_run(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    marker = _marker(out)  # as a run killed halfway leaves it: one new file moved in, its hash pending
    marker["pending"] = {"app/main.cc": artifacts.sha256_bytes(b"main 2")}
    artifacts.write_json(out / artifacts.STAGE_MARKER, marker)
    (out / "app" / "main.cc").write_text("main 2")
    _staged(out, SECOND)
    assert {name: (out / name).read_text() for name in SECOND} == SECOND and "pending" not in _marker(out)


def test_a_command_without_the_option_is_not_told_to_use_it(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    (out / "CMakeLists.txt").write_text("mine")
    with artifacts.writing_beside(False, offered=False):
        with pytest.raises(artifacts.RefusedOverwrite) as refused:
            _staged(out, SECOND)
    assert "Move those files out of" in str(refused.value) and artifacts.WRITE_BESIDE_OPTION not in str(refused.value)


def test_record_unchanged_tells_an_edited_record(tmp_path):
    export = _staged(tmp_path / "export", {"config.json": "{}"}, stage="export")
    assert artifacts.record_unchanged(export, "config.json") is True
    (export / "config.json").write_text('{"edited": 1}')
    assert artifacts.record_unchanged(export, "config.json") is False


def test_a_marker_naming_a_file_outside_its_folder_never_deletes_it(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    marker = _marker(out)
    marker["sha256"]["../precious.txt"] = artifacts.sha256_file(outside)  # an edited marker
    artifacts.write_json(out / artifacts.STAGE_MARKER, marker)
    _staged(out, FIRST)
    assert outside.read_text() == "keep"


def test_an_empty_folder_the_stage_makes_is_kept_on_a_rerun(tmp_path):
    out = _staged(tmp_path / "b", FIRST)
    with artifacts.staging_dir(out, stage="bundle") as tmp:
        (tmp / "work").mkdir()
        (tmp / "CMakeLists.txt").write_text("cmake 2")
    assert (out / "work").is_dir()


def test_a_caches_damaged_file_is_set_aside_and_written_again(tmp_path):
    entry = _staged(tmp_path / "entry", {"train.npy": "features"}, stage="features")
    (entry / "train.npy").write_text("damaged")
    _staged(entry, {"train.npy": "features"}, stage="features", set_aside=True)
    assert (entry / "train.npy").read_text() == "features"
    assert (entry / f"train.npy{artifacts.SET_ASIDE_SUFFIX}").read_text() == "damaged"


def test_a_copy_of_another_stages_folder_under_another_name_is_the_users(tmp_path):
    export = _staged(tmp_path / "export", {"model.tflite": "m"}, stage="export")
    _staged(export / "firmware", {"firmware_report.md": "r"}, stage="firmware")
    (export / "firmware").rename(export / "firmware_of_the_old_model")  # the user's copy to compare with
    _staged(export, {"model.tflite": "new"}, stage="export")
    assert (export / "firmware_of_the_old_model" / "firmware_report.md").read_text() == "r"
