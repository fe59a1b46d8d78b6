"""In CI every test runs: a skip (a missing toolchain, archive, emulator or extra) is a failure there.

CI installs everything the suite needs (``./dev.sh`` installs the Debian toolchains as root and the
optional extras), so a test that skips in CI is a test that silently stopped checking anything. On a
developer's machine without the toolchains the same tests skip, saying what to install. Strict
``xfail`` markers are not skips and keep their meaning. Loaded by ``tests/conftest.py``.
"""
from __future__ import annotations

import os

import pytest

#: The environment variables that make a skip fail: ``CI`` is set by CI runners (``CI=true``);
#: ``ASC_NO_SKIPS=1`` asks for the same locally.
_STRICT_SETTINGS = (("CI", "true"), ("ASC_NO_SKIPS", "1"))


def skips_fail() -> bool:
    """Whether this run turns skipped tests into failures (CI, or ``ASC_NO_SKIPS=1``)."""
    return any(os.environ.get(name, "").strip().lower() == value for name, value in _STRICT_SETTINGS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and skips_fail():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} skipped where every test must run (CI=true or ASC_NO_SKIPS=1): "
                           f"{reason}. Install what it names (./dev.sh installs the Debian toolchains as root).")
