"""Every constant of the hostile-input script in one place: paths, verdicts, the tiny recipes."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout whose `asc` the cases run (PYTHONPATH=REPO)
#: the pinned TFLM archives: ../shared/third_party beside the checkout (or beside the folder of
#: worktrees that holds it)
SHARED_THIRD_PARTY = next((p / "shared" / "third_party" for p in (REPO.parent, REPO.parent.parent)
                           if (p / "shared" / "third_party").is_dir()), REPO.parent / "shared" / "third_party")
FIXTURE_VERSION = "3"

FAILING = ("TRACEBACK", "CRASH", "LOST", "SILENT-WRONG", "HANG")
VERDICTS = ("OK-ERROR", "OK-HANDLED", "WARNED", "BAD-MESSAGE", "SILENT-WRONG", "TRACEBACK", "CRASH", "LOST", "HANG")
GOOD = ("OK-ERROR", "OK-HANDLED", "WARNED")

DEFAULT_TIMEOUT = 300  # seconds a case's command may run before it is a HANG
PIPE_GRACE = 30  # seconds to collect a killed command's output (a child that escaped its group holds it)

#: the tiny training recipe of every case that trains (a quarter-width ResNet11 on 2-s clips)
TRAIN_SMALL = ["--model-arg", "width=0.25", "--epochs", "1", "--clip-seconds", "2", "--batch-size", "16"]
#: the fixture run's options (every one explicit, so a changed default does not make it "another" run)
FIXTURE_TRAIN = ["--model-arg", "width=0.25", "--epochs", "2", "--clip-seconds", "2", "--batch-size", "16", "--lr", "0.002",
                 "--seed", "0"]
PIPE_SMALL = ["--model-arg", "width=0.25", "--epochs", "1", "--calibration-size", "20"]


def asc_command() -> list[str]:
    exe = Path(sys.executable).parent / "asc"
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from asc_cli.main import main; sys.exit(main())"]
