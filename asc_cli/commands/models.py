"""``asc models``: the model registry, parameters beside the seed's, MACs."""
from __future__ import annotations

import argparse

import keras_asc
from asc_cli.options import OptionError


def add_parser(sub) -> None:
    s = sub.add_parser("models", help="the model registry: parameters beside the seed's, MACs")
    s.add_argument("--input", default="128x288", help="mel bands x frames (default 128x288)")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    try:
        shape = tuple(int(v) for v in a.input.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 2 or min(shape) < 8 or max(shape) > 4096:
        raise OptionError(f"--input takes mel bands x frames, each from 8 to 4096 (e.g. 128x288), got {a.input!r}")
    print(f"{'model':<20} {'params':>12} {'seed (128x288)':>15} {'M MACs':>9}  what it is")
    for name in keras_asc.list_models():
        try:
            m = keras_asc.model_summary(name=name, input_shape=(*shape, 1))
        except ValueError:  # its pooling shrinks this input to nothing
            print(f"{name:<20} cannot process {shape[0]}x{shape[1]} (too small for its pooling)")
            continue
        print(f"{name:<20} {m.trainable_params:>12,d} {m.seed_params:>15,d} {m.macs / 1e6:>9.1f}  "
              f"{keras_asc.MODELS[name].description}")
