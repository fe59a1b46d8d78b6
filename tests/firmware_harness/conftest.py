"""Shared by the firmware tests: one ``asc firmware --from-audio`` run of the tiny export."""
from __future__ import annotations

import shutil

import pytest

from firmware_harness.builds import third_party
from firmware_harness.builds.targets import TARGETS
from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.firmware.check import check_firmware

QUIET = dict(log=lambda *_: None)
TARGETS_TESTED = ("host", "host-cmsis-nn", "cortex-m4")
EMULATED_CLIPS = 3


def require_targets(*targets: str) -> None:
    """Skip, saying why, when the source archives or a target's toolchain are absent."""
    try:
        third_party.locate_third_party()
    except FirmwareError as e:
        pytest.skip(f"TFLM source archives unavailable: {e}")
    for t in targets:
        missing = TARGETS[t].missing_tools()
        if missing:
            pytest.skip(f"target {t}: {missing} not installed (Debian: {' '.join(TARGETS[t].debian_packages)})")


@pytest.fixture(scope="session")
def firmware_run(tiny_export, tiny_dataset, tiny_work, tmp_path_factory):
    """``asc firmware --from-audio`` on a copy of the tiny export: every clip on the host targets,
    3 under QEMU, from log-mel and from PCM."""
    require_targets(*TARGETS_TESTED)
    export = tmp_path_factory.mktemp("fw") / "export"
    shutil.copytree(tiny_export, export)
    report = check_firmware(export, tiny_dataset, tiny_work, targets=TARGETS_TESTED, clips=EMULATED_CLIPS,
                            from_audio=True, **QUIET)
    return export, report
