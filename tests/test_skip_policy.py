"""A skip fails the run in CI (CI=true) and stays a skip elsewhere (tests/skip_policy.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
A_SKIPPING_TEST = """
import pytest

def test_needs_a_missing_tool():
    pytest.skip("arm-none-eabi-gcc not installed")

@pytest.mark.xfail(strict=True, reason="known")
def test_known_failure():
    assert False
"""


def _run_pytest(folder: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "ASC_NO_SKIPS")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.skip_policy", "-p", "no:cacheprovider",
                           "--rootdir", str(folder), str(folder / "test_skipping.py")],
                          cwd=REPO, env={**clean, "PYTHONPATH": str(REPO), **env}, capture_output=True, text=True,
                          timeout=120)


def test_a_skip_fails_in_ci_and_names_the_reason(tmp_path):
    (tmp_path / "test_skipping.py").write_text(A_SKIPPING_TEST)
    run = _run_pytest(tmp_path, CI="true")
    assert run.returncode == 1, run.stdout
    assert "1 failed" in run.stdout and "1 xfailed" in run.stdout
    assert "arm-none-eabi-gcc not installed" in run.stdout


def test_a_skip_stays_a_skip_outside_ci(tmp_path):
    (tmp_path / "test_skipping.py").write_text(A_SKIPPING_TEST)
    run = _run_pytest(tmp_path)
    assert run.returncode == 0, run.stdout
    assert "1 skipped" in run.stdout and "1 xfailed" in run.stdout
