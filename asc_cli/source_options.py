"""The model source options of ``validate``, ``firmware``, ``profile`` and ``bundle``: the EXPORT/MODEL
argument resolved once and printed, and the options of a .tflite without an export folder
(``--inputs | --random N``, ``--seed``, ``--out``), refused for an export's model."""
from __future__ import annotations

import argparse
from pathlib import Path

import firmware_harness
from asc_cli.options import MAX_RANDOM_INPUTS, OptionError, random_inputs_int, seed_int, warn


def check_model_source(path: Path):
    """The EXPORT/MODEL argument of validate, firmware, profile and bundle, resolved once
    (:func:`firmware_harness.model_source.resolve_model_source`): an export folder or its model.tflite
    means that export; any other .tflite means that file's bytes, wherever it lies. Anything else is
    named with what to give instead. Prints the file and its sha256."""

    source = firmware_harness.resolve_model_source(path)
    print(f"model: {source.describe()}")
    for message in source.check.warnings if source.check is not None else ():
        warn(f"{source.path}: {message}")
    return source


def _add_any_model_args(p: argparse.ArgumentParser, *, out_default: str) -> None:
    """``--inputs | --random N``, ``--seed``, ``--out``: a .tflite without an export folder."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--inputs", default=None, metavar="X.npy",
                   help="a .tflite without an export: int8 inputs, one per row, shape (N, *input shape) with or "
                        "without its batch dimension (a .npy, or an .npz of one array)")
    g.add_argument("--random", type=random_inputs_int, default=None, metavar="N",
                   help="a .tflite without an export: N seeded random int8 inputs (the default, with N = 20; at "
                        f"most {MAX_RANDOM_INPUTS:,d})")
    p.add_argument("--seed", type=seed_int, default=None, help="seed of --random (default 0)")
    p.add_argument("--out", default=None, help=f"a .tflite without an export: output folder (default {out_default} "
                                               "beside the model)")


def _any_model_kwargs(a: argparse.Namespace) -> dict:
    if a.seed is not None and a.inputs is not None:
        warn(f"--seed {a.seed} has no effect with --inputs (it seeds --random)")
    return dict(inputs_path=Path(a.inputs) if a.inputs is not None else None, random_count=a.random,
                seed=a.seed if a.seed is not None else 0, out_dir=Path(a.out) if a.out is not None else None)


def _refuse_any_model_options(a: argparse.Namespace, model: Path) -> None:
    """An export's model runs on its dataset's evaluate clips and writes into the export folder."""
    for option, value in (("--inputs", a.inputs), ("--random", a.random), ("--seed", a.seed), ("--out", a.out)):
        if value is not None:
            raise OptionError(f"{option} is for a .tflite without an export folder; {model} is an export's (its "
                              "config.json is beside it), which runs on the evaluate clips of --data and writes into "
                              f"the export folder. Leave out {option}, or give a .tflite of its own")
    if a.data is None:
        raise OptionError(f"--data is required for {model}, an export's: it runs on the evaluate clips of the dataset "
                          "it was trained on (--data DIR)")
