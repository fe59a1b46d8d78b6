"""The ``asc`` command: the one place that sees keras_asc, tflite_export and firmware_harness.

Each subcommand is a module of :mod:`asc_cli.commands` holding its parser and its handler, a thin
function that checks the options, calls the public API of one stage and prints where its artifacts
went; shared option types are in :mod:`asc_cli.options`. TensorFlow is imported by the stages that
need it, never at import time. Every option value is checked before any work: alone where it is
parsed (argparse), against the model and data by :func:`asc_cli.run_options.check_run_options`
(one check per option, shared by ``train`` and ``grid``). Exit statuses, so that scripts can tell them apart:

* 1 (:data:`EXIT_USER_ERROR`): a mistake the user can fix (:class:`keras_asc.errors.AscError`: bad
  dataset, bad audio, over-budget model, disagreement found, stale artifact, a full disk or an
  unwritable folder): a one-paragraph message naming the file and the fix, never a traceback;
* 2 (:data:`EXIT_BAD_OPTION`): an option value the command cannot take (:class:`OptionError`),
  named with what it accepts;
* 70 (:data:`EXIT_BUG`, ``EX_SOFTWARE`` of sysexits.h): a bug in asc-tinyml: its traceback and a
  line saying so.

An option that another option overrides or that has no effect is named in a warning.
"""
from __future__ import annotations

import argparse
import sys
import traceback

import keras_asc.tf_setup  # noqa: F401  (tf_keras, never Keras 3; before TensorFlow)
from asc_cli.commands import COMMANDS
from asc_cli.options import OptionError, UserError, _ray_address, warn  # noqa: F401  (their names in asc_cli.main)
from asc_cli.run_options import check_run_options, recipe_options  # noqa: F401  (idem)
from keras_asc import artifacts
from keras_asc.errors import AscError, describe_os_error

EXIT_USER_ERROR = 1
EXIT_BAD_OPTION = 2  # argparse's own status for a value it refuses
EXIT_BUG = 70
#: The commands that write a stage's folder, each with --write-beside (keras_asc.ownership).
WRITE_BESIDE_COMMANDS = ("export", "validate", "firmware", "profile", "bundle", "grid")


def build_parser() -> argparse.ArgumentParser:
    """``asc`` and every command of :data:`asc_cli.commands.COMMANDS`."""
    p = argparse.ArgumentParser(prog="asc", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for add_parser in COMMANDS:
        add_parser(sub)
    for name in WRITE_BESIDE_COMMANDS:
        sub.choices[name].add_argument(artifacts.WRITE_BESIDE_OPTION, action="store_true",
                                       help=artifacts.WRITE_BESIDE_HELP)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with artifacts.writing_beside(getattr(args, "write_beside", False), offered=hasattr(args, "write_beside")):
            args.func(args)
    except OptionError as e:
        print(f"asc {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_OPTION
    except (AscError, FileNotFoundError, FileExistsError) as e:
        described = None if isinstance(e, AscError) else describe_os_error(e)  # an OS error with a bare errno text
        print(f"asc {args.command}: error: {described or e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"asc {args.command}: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    except Exception as e:
        message = describe_os_error(e) if isinstance(e, OSError) else None
        if isinstance(e, RuntimeError) and str(e).startswith("Symlink loop"):  # Path.resolve() in Python 3.11
            message = (f"{str(e).removeprefix('Symlink loop from ').strip(chr(39))}: a symbolic link that points "
                       "(through others) back to itself; give a real file or folder")
        if message is not None:
            print(f"asc {args.command}: error: {message}", file=sys.stderr)
            return EXIT_USER_ERROR
        traceback.print_exc()
        print(f"asc {args.command}: this is a bug in asc-tinyml, not a problem with your input (exit status "
              f"{EXIT_BUG}): please report it with the traceback above", file=sys.stderr)
        return EXIT_BUG
    return 0


if __name__ == "__main__":
    sys.exit(main())
