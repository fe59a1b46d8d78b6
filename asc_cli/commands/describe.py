"""``asc describe``: clips per split x device and per scene of a dataset."""
from __future__ import annotations

import argparse
from pathlib import Path

import keras_asc
from asc_cli.options import add_data_args


def add_parser(sub) -> None:
    s = sub.add_parser("describe", help="clips per split x device and per scene of a dataset")
    add_data_args(s, help="dataset root (holds meta.csv, evaluation_setup/)")
    s.add_argument("--no-audio-check", action="store_true", help="do not check the audio files exist")
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    d = keras_asc.describe_dataset(data_dir=Path(a.data), check_audio=not a.no_audio_check, train_split=a.train_split)
    print(f"layout: {d.layout}" + (f"; train split: {d.train_split_source}" if a.train_split else ""))
    print(d.counts)
    for warning in d.warnings:
        print(f"warning: {warning}")
