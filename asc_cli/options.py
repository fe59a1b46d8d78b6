"""The ``asc`` command's shared option types and parsers: argparse types that check a value alone
(numbers, lists, registry names: every list named from its registry), the option groups several
commands share (``--data``, ``--workers``, the features), and the errors a command raises for an
option (:class:`OptionError`, exit 2) or a problem the user can fix (:class:`UserError`, exit 1).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import firmware_harness
import keras_asc
import tflite_export
from asc_cli.grid_ray import parse_ray_address
from asc_cli.stages import FRAME_RATES, MEL_BANDS, PipelineFeatures
from keras_asc.errors import AscError


class UserError(AscError):
    """A problem the user can fix, found by the command itself; printed without a traceback."""


class OptionError(UserError):
    """An option value the command cannot take with this model or data (exit status 2)."""


def warn(message: str) -> None:
    print(f"asc: warning: {message}", file=sys.stderr)


def _number(kind, *, minimum: float, inclusive: bool, what: str, maximum: float | None = None):
    """An argparse type: a finite ``kind`` number >= (or >) ``minimum`` and <= ``maximum``."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        # finite without math.isfinite, which overflows on an int of 400 digits
        ok = value is not None and value == value and abs(value) != float("inf") and (
            value >= minimum if inclusive else value > minimum) and (maximum is None or value <= maximum)
        if not ok:
            raise argparse.ArgumentTypeError(f"takes {what}, got {text!r}")
        return value
    parse.__name__ = what
    return parse


positive_int = _number(int, minimum=0, inclusive=False, what="a whole number of at least 1")
non_negative_int = _number(int, minimum=0, inclusive=True, what="a whole number of at least 0")
positive_float = _number(float, minimum=0, inclusive=False, what="a finite number above 0")
non_negative_float = _number(float, minimum=0, inclusive=True, what="a finite number of at least 0")
seed_int = _number(int, minimum=0, inclusive=True, maximum=2**32 - 1,
                   what="a whole number from 0 to 4294967295 (NumPy's and TensorFlow's seeds are 32-bit)")
#: ``--random N`` of validate and firmware: every input is held in memory (N x input elements int8), and in
#: each runtime's outputs; the documented models' inputs are at most 128 x 431 bytes (55 MB for 1,000).
MAX_RANDOM_INPUTS = 1000
random_inputs_int = _number(int, minimum=1, inclusive=True, maximum=MAX_RANDOM_INPUTS,
                            what=f"a whole number from 1 to {MAX_RANDOM_INPUTS}")
MAX_CLIP_SECONDS = 60.0  # TAU's clips are 10 s (2020-21) or 1 s (2022-25); longer audio is cut into clips first
clip_seconds_float = _number(float, minimum=0.1, inclusive=True, maximum=MAX_CLIP_SECONDS,
                             what=f"a clip length in seconds from 0.1 to {MAX_CLIP_SECONDS:g}")


def models_help(default: str) -> str:
    """The help of ``--model``/``--models``: the registered names (keras_asc.MODELS, no TensorFlow)."""
    return f"a registered model: {', '.join(keras_asc.list_models())} (default {default}; `asc models` describes them)"


def add_workers_arg(p: argparse.ArgumentParser) -> None:
    """``--workers``, the same for every subcommand that runs worker processes."""
    p.add_argument("--workers", type=positive_int, default=keras_asc.DEFAULT_WORKERS,
                   help=f"worker processes (default {keras_asc.DEFAULT_WORKERS})")


def _dataset_size(text: str) -> str:
    if text in ("tiny", "demo") or (text.isdigit() and int(text) >= 3):
        return text
    raise argparse.ArgumentTypeError(f"takes tiny, demo or a whole number of segments per scene of at least 3 (a "
                                     f"scene needs train and evaluate locations), got {text!r}")


def _finite_float(text: str) -> float | None:
    """``text`` as a finite float, or None (not a number, NaN or infinite)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _model_arg(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    number = _finite_float(value)
    if not sep or not key or number is None or number <= 0:
        raise argparse.ArgumentTypeError(f"takes KEY=NUMBER with a finite number above 0 (every model argument "
                                         f"is a width or a channel count, e.g. width=0.5), got {text!r}")
    return key, number


def _window_or_clip(text: str) -> int | None:
    """'clip' (whole-clip inference) or a positive number of frames."""
    if text == "clip":
        return None
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


#: A probability or a weight.
_unit_interval = _number(float, minimum=0, inclusive=True, maximum=1.0, what="a number from 0 to 1")


def _freq_mixstyle(text: str) -> tuple[float, float]:
    """``P,ALPHA``: the probability per batch (0 to 1) and the Beta distribution's alpha (> 0)."""
    p, sep, alpha = text.partition(",")
    value = (_finite_float(p), _finite_float(alpha))
    if not sep or None in value or not 0.0 <= value[0] <= 1.0 or not value[1] > 0:
        raise argparse.ArgumentTypeError(f"takes P,ALPHA: a probability per batch from 0 to 1 and the Beta "
                                         f"distribution's alpha above 0 (e.g. 0.4,0.3), got {text!r}")
    return value


def _dir_aug(text: str) -> tuple[str, float]:
    """``FOLDER,P``: a folder of impulse response WAVs and the probability per clip (0 to 1)."""
    folder, sep, p = text.rpartition(",")
    prob = _finite_float(p)
    if not sep or not folder or prob is None or not 0.0 <= prob <= 1.0:
        raise argparse.ArgumentTypeError(f"takes FOLDER,P: a folder of impulse response WAV files and the probability "
                                         f"per clip from 0 to 1 (e.g. data/impulse_responses,0.6), got {text!r}")
    return str(Path(folder).resolve()), prob


def _csv_of(parse, allowed: tuple | None = None):
    """A comma-separated list, each item parsed (and checked against ``allowed``)."""
    def parse_list(text: str) -> list:
        items = []
        for item in (v for v in text.split(",") if v):
            try:
                value, ok = parse(item), True
            except ValueError:
                value, ok = None, False
            if not ok or (allowed is not None and value not in allowed):
                raise argparse.ArgumentTypeError(
                    f"takes a comma-separated list{f' of {allowed}' if allowed else ''}, got {item!r} in {text!r}")
            items.append(value)
        twice = sorted({str(v) for v in items if items.count(v) > 1})
        if twice:
            raise argparse.ArgumentTypeError(f"{twice} listed more than once in {text!r}; name each once")
        if not items:
            raise argparse.ArgumentTypeError(f"takes a non-empty comma-separated list, got {text!r}")
        return items
    return parse_list


def _clip_seconds(a: argparse.Namespace) -> float:
    """``--clip-seconds``, or without it the clip length of the data's layout (10 s for TAU 2020,
    1 s for TAU 2022: :mod:`keras_asc.layouts`)."""
    if a.clip_seconds is not None:
        return a.clip_seconds
    try:
        return keras_asc.dataset_layout(Path(a.data)).clip_seconds
    except (keras_asc.DatasetError, OSError):  # no readable layout: TAU 2020's length; the stage's reader names the
        return keras_asc.LAYOUTS["tau2020"].clip_seconds  # problem after the options are checked


def _feature_config(a: argparse.Namespace):
    """The features of ``asc features``/``train`` (:func:`_clip_seconds`)."""
    return keras_asc.FeatureConfig.seed(frames_per_second=a.frames_per_second, n_mels=a.n_mels, clip_seconds=_clip_seconds(a))


def _train_split(text: str) -> str:
    """``--train-split``: a DCASE 2024 percentage (:data:`keras_asc.layouts.TRAIN_SPLITS`) as given,
    a file as its absolute path (recorded in the feature cache, so later stages find it from any
    folder). Another number, a folder or a FIFO is refused here, before any work."""
    value = text.strip()
    choices = ", ".join(map(str, keras_asc.TRAIN_SPLITS))
    if value.isdigit():
        if int(value) not in keras_asc.TRAIN_SPLITS:
            raise argparse.ArgumentTypeError(f"takes one of the DCASE 2024 training subsets {choices} (percent of "
                                             f"fold1_train.csv) or a split file's path, got {text!r}")
        return value
    reason = firmware_harness.not_a_regular_file(Path(value)) or ("is a folder" if Path(value).is_dir() else None)
    if reason is not None:
        raise argparse.ArgumentTypeError(f"{value} {reason}; give one of {choices} or the path of a split file "
                                         "(a tab-separated splitN.csv)")
    return str(Path(value).resolve())


def add_data_args(p: argparse.ArgumentParser, *, help: str | None = None) -> None:
    """``--data`` and ``--train-split`` (a DCASE 2024 training subset of a TAU 2022 layout)."""
    p.add_argument("--data", required=True, help=help)
    p.add_argument("--train-split", type=_train_split, default=None, metavar="N|FILE",
                   help="TAU 2022 layout: train on a DCASE 2024 subset, 5, 10, 25, 50 or 100 (splitN.csv in "
                        "DATA/split_setup/, DATA/evaluation_setup/ or DATA) or a split file's path (default: "
                        "all of fold1_train.csv)")


def add_feature_args(p: argparse.ArgumentParser) -> None:
    d = PipelineFeatures()  # the seed's default feature configuration (keras_asc.FeatureConfig.seed)
    g = p.add_argument_group("features (seed section 2.1, Table 5)")
    g.add_argument("--frames-per-second", type=int, default=d.frames_per_second, choices=FRAME_RATES,
                   help="28 (hop 1536, 288 frames per 10 s) or 43 (hop 1024, 431 frames)")
    g.add_argument("--n-mels", type=int, default=d.n_mels, choices=MEL_BANDS)
    add_clip_seconds_arg(g)


def add_clip_seconds_arg(p) -> None:
    """``--clip-seconds`` of features, train and grid (:func:`_clip_seconds` reads it)."""
    p.add_argument("--clip-seconds", type=clip_seconds_float, default=None,
                   help="clip length the audio is padded/cropped to (default: the data's layout, 10 s for TAU "
                        "2020, 1 s for TAU 2022)")


def _dcase_year(text: str) -> int | str:
    """``--dcase-year``: a year of tflite_export.dcase_rules.DCASE_RULES, ``auto`` or ``none``."""
    if text in ("auto", "none"):
        return text
    if not text.isdigit() or int(text) not in tflite_export.DCASE_RULES:
        raise argparse.ArgumentTypeError(f"takes auto, none or one of {', '.join(map(str, tflite_export.DCASE_RULES))}, got {text!r}")
    return int(text)


def _clips(value: str):
    if value == "all":
        return "all"
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--clips takes a positive whole number or 'all', got {value!r}")
    return n


def _target_list(value: str, *, allowed: tuple[str, ...], what: str, why: str = "") -> tuple[str, ...]:
    """A comma-separated list of distinct names from ``allowed`` (one registry: the message lists
    exactly what the option takes, and ``why`` says why a firmware target outside it is not taken)."""
    names = tuple(v for v in value.split(",") if v)
    unknown = [n for n in names if n not in allowed]
    if not names or unknown:
        known = [n for n in unknown if n in firmware_harness.TARGETS]
        because = f"; {known} {why}" if known and why else ""
        raise argparse.ArgumentTypeError(f"unknown {what}(s) {unknown or value!r}{because}; one or more of "
                                         f"{', '.join(allowed)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{what}(s) {twice} listed more than once in {value!r}; name each once")
    return names


def _targets(value: str) -> tuple[str, ...]:
    """``--targets`` of firmware and export: firmware targets (:data:`firmware_harness.builds.targets.TARGETS`)."""
    return _target_list(value, allowed=tuple(firmware_harness.TARGETS), what="target")


def _chunk(value: str) -> int:
    n = int(value) if value.isdigit() else 0
    if not 1 <= n <= firmware_harness.MAX_CHUNK_SAMPLES:
        raise argparse.ArgumentTypeError(f"--chunk takes 1 to {firmware_harness.MAX_CHUNK_SAMPLES} samples (the firmware program's "
                                         f"microphone buffer), got {value!r}")
    return n


def _mcu_target(value: str) -> str:
    if value not in tflite_export.MCU_TARGETS:
        raise argparse.ArgumentTypeError(f"unknown microcontroller {value!r}; one of {', '.join(tflite_export.MCU_TARGETS)}")
    return value


def _targets_or_none(value: str) -> tuple[str, ...]:
    return () if value == "none" else _targets(value)


def _profile_targets(value: str) -> tuple[str, ...]:
    """``asc profile --targets``: the Cortex-M targets whose images can be counted under QEMU
    (:data:`firmware_harness.profiling.latency.PROFILE_TARGETS`), and only those are listed."""
    return _target_list(value, allowed=firmware_harness.PROFILE_TARGETS, what="profile target",
                        why="cannot be profiled: instruction counts come from a Cortex-M image under QEMU")


def _mcus(value: str) -> tuple[str, ...]:
    names = tuple(v for v in value.split(",") if v)
    for n in names:
        _mcu_target(n)
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"takes a comma-separated list of distinct microcontrollers, got {value!r}")
    return names


def _ray_address(text: str) -> str:
    """``--address``: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT`` (:func:`asc_cli.grid_ray.parse_ray_address`)."""
    try:
        return parse_ray_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
