"""The ``asc`` commands, one module each holding its parser and its handler.

A command module exposes ``add_parser(subparsers)``: it adds its subparser and sets the handler
(``set_defaults(func=...)``), a function of the parsed arguments that calls the public API of
keras_asc, tflite_export and firmware_harness. :data:`COMMANDS` lists them in ``asc --help``'s
order; a new command is one module and one entry here.
"""
from __future__ import annotations

from asc_cli.commands import (board, bundle, demo, describe, evaluate, export, features, firmware, fit, grid,
                              make_dataset, models, profile, train, validate)

#: Each command's ``add_parser(subparsers)``, in ``asc --help``'s order.
COMMANDS = (make_dataset.add_parser, describe.add_parser, features.add_parser, train.add_parser,
            models.add_parser, evaluate.add_parser, export.add_parser, validate.add_parser, firmware.add_parser,
            profile.add_parser, bundle.add_parser, board.add_parser, demo.add_parser, grid.add_parser,
            fit.add_parser)
