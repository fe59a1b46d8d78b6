"""Artifacts: the user's umask, killed runs' staging folders, unreadable JSON named."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from keras_asc import artifacts


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_files_and_folders_get_the_users_umask(tmp_path, umask_022):
    artifacts.atomic_write_text(tmp_path / "a.txt", "x")
    with artifacts.staging_dir(tmp_path / "stage", stage="test") as tmp:
        (tmp / "f").write_text("y")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "stage").stat().st_mode & 0o777 == 0o755


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    abandoned = tmp_path / f".export.{dead}.abcd1234.partial"
    live = tmp_path / f".export.{os.getppid()}.efgh5678.partial"  # a process that is still running
    old_style = tmp_path / ".export.ijkl9012.partial"  # made before staging names carried the pid
    other_host = tmp_path / f".export.{dead}@another-host.mnop3456.partial"  # its process is not ours to judge
    for d in (abandoned, live, old_style, other_host):
        d.mkdir()
    with artifacts.staging_dir(tmp_path / "export", stage="export") as tmp:
        (tmp / "f").write_text("y")
    assert not abandoned.exists() and not old_style.exists() and live.exists() and other_host.exists()
    assert (tmp_path / "export" / "f").read_text() == "y"


@pytest.mark.parametrize("text", ["", '{"stage": "exp', "\x00\x01"])
def test_unreadable_json_names_the_file(tmp_path, text):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(artifacts.ArtifactError, match=rf"{path}: not readable JSON .* Run the stage"):
        artifacts.read_json(path)
