#!/usr/bin/env python
"""Hostile inputs over every ``asc`` subcommand: a table of what each one does with them.

Issue "Nothing lost, nothing stale, nothing unexplained": a bad-input run of at least 100 cases
over every command shows no LOST, no SILENT-WRONG and no traceback.

    .venv/bin/python benchmarks/hostile_inputs.py --work /tmp/hostile-run        # everything
    .venv/bin/python benchmarks/hostile_inputs.py --work /tmp/hostile-run --only 'export|validate'
    .venv/bin/python benchmarks/hostile_inputs.py --work /tmp/hostile-run --stage issue28    # issue 28's cases
    .venv/bin/python benchmarks/hostile_inputs.py --list

The cases live in the package ``benchmarks/hostile/``: ``settings`` (every constant), ``files``,
``fixtures``, ``registry`` (a case's spec and context), ``checks``, ``judge`` (the classifier),
``runner`` (one case, bounded in time, and the report), ``cli``, ``catalog`` (the order of the
case modules) and one ``cases_*`` module per stage (``--stage`` takes a command or a module's
group name: dataset, features, train, export, validate, firmware, demo, profile, issue28).

The script first builds its fixtures under ``WORK/fixtures`` with ``asc`` itself (reused by the
next run of the script while the toolkit's sources are unchanged, by a fingerprint of them;
``--rebuild-fixtures`` makes them again, ``--reuse-fixtures`` keeps them anyway): a tiny generated dataset,
its feature cache (2-s clips), a quarter-width ResNet11 trained for 2 epochs, evaluated, exported
(``--arena-targets none``), validated and run on the host firmware target, a second run (seed 1)
with its export, and a copy of the TFLM source archives (``$ASC_THIRD_PARTY`` points at it for
every command, so ``../shared/third_party`` is only read once, to copy it). Then every case runs
in its own folder ``WORK/cases/NNN`` (its working directory), as a subprocess with a timeout, on
its own copies of whatever it damages (datasets are copied with hard-linked audio; an audio file a
case changes is replaced, never written in place). Two cases run ``asc`` as the user "nobody" (to
make a file unreadable; root reads everything) with the system's ``/usr/bin/python3.X`` of the
venv's version and the venv's site-packages, since the venv's interpreter may live under /root.
A case is SETUP-FAILED when the script could not prepare it (e.g. a process ended before it could
be killed); that is a failure of the script, never of the toolkit, and makes the script exit 1.
Cases run while the toolkit's code changed under the script (others editing the checkout) are
marked in the "why" column: rerun them before believing them.

Each outcome gets one verdict:

* OK-ERROR: refused with the documented exit status (1 user error, 2 bad option value), an error
  line naming the file or option the case is about, a fix, no traceback;
* OK-HANDLED: accepted, and a check of the result passed (each case's ``check`` says what it
  compares: e.g. the same ``describe`` table as the clean dataset, the same metrics as the fixture
  run, a report that passed, the number of clips a firmware report ran);
* WARNED: accepted with a warning (stdout or stderr) naming the option or file;
* TRACEBACK: a Python traceback was printed, whatever the exit status;
* CRASH: the process died of a signal (no message at all);
* LOST: a file or folder that existed before the command (the fixtures, the case's own copies and
  user files, the shared archives) was changed or deleted, and it is not one the command is
  documented to (re)write. Every tree is hashed before and after each case;
* SILENT-WRONG: accepted without a warning, but the result is wrong or stale, or an input that
  must be refused (or warned about) was used as if it were fine;
* BAD-MESSAGE: refused, but the message names neither the file nor the option, gives no fix,
  states a wrong cause, or the exit status is not the documented one (or a valid input was refused);
* HANG: the case's timeout expired (300 s unless the case says otherwise; the command's process
  group is then killed and its output read for at most 30 s more, so no case waits unbounded).

The report (a Markdown table: case, command, exit status, verdict, the error or warning line or
else the first line of stderr, and why) is printed and written to ``WORK/hostile_report.md`` with
every case's argv, exit status, verdict, stdout and stderr in ``WORK/hostile_report.json``. The
script exits 1 when any case is TRACEBACK, CRASH, LOST, SILENT-WRONG, HANG or SETUP-FAILED, 0
otherwise, 3 when a fixture could not be built. Cases run one at a time; a full run took about 80
minutes on a 2-core machine shared with other jobs (the fixtures 8 of them). The folders of cases
that are not OK (and of the demo cases) are kept under ``WORK/cases`` to look at.
"""
from __future__ import annotations

from __future__ import annotations

import sys

from hostile.cli import main  # benchmarks/ is this script's folder, first on sys.path

if __name__ == "__main__":
    sys.exit(main())
