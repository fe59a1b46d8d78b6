"""The ``asc`` command: the one place that sees keras_asc, tflite_export and firmware_harness.

Each subcommand is a thin function that parses arguments, calls one stage and prints where its
artifacts went. Heavy imports (TensorFlow) happen inside the subcommand, never at import time.
Every option value is checked before any work: alone where it is parsed (argparse), against the
model and data by :func:`check_run_options` (one check per option, shared by ``train`` and
``grid``). Exit statuses, so that scripts can tell them apart:

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
import math
import sys
from pathlib import Path

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)


from keras_asc import artifacts  # noqa: E402  (no heavy imports)
from keras_asc.errors import AscError, describe_os_error  # noqa: E402  (no heavy imports)


EXIT_USER_ERROR = 1
EXIT_BAD_OPTION = 2  # argparse's own status for a value it refuses
EXIT_BUG = 70
#: The commands that write a stage's folder, each with --write-beside (keras_asc.ownership).
WRITE_BESIDE_COMMANDS = ("export", "validate", "firmware", "profile", "bundle", "grid")


class UserError(AscError):
    """A problem the user can fix, found by the command itself; printed without a traceback."""


class OptionError(UserError):
    """An option value the command cannot take with this model or data (exit status 2)."""


def warn(message: str) -> None:
    print(f"asc: warning: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------- option types
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


DEFAULT_WORKERS = 2  # worker processes of every stage that has them (2 cores: the project's machines)


def add_workers_arg(p: argparse.ArgumentParser) -> None:
    """``--workers``, the same for every subcommand that runs worker processes."""
    p.add_argument("--workers", type=positive_int, default=DEFAULT_WORKERS,
                   help=f"worker processes (default {DEFAULT_WORKERS})")


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


# ----------------------------------------------------------------------------- foundation
def cmd_make_dataset(a: argparse.Namespace) -> None:
    from keras_asc.synth import make_dataset

    make_dataset(Path(a.out_dir), size=a.size, seed=a.seed, clip_seconds=a.clip_seconds,
                 workers=a.workers)


def cmd_describe(a: argparse.Namespace) -> None:
    from keras_asc.dataset import dataset_layout, describe, read_fold1, split_warnings

    tables = read_fold1(Path(a.data), check_audio=not a.no_audio_check, train_split=a.train_split)
    layout = dataset_layout(Path(a.data))
    print(f"layout: {layout.title}" + (f"; train split: {tables['train'].attrs['source']}" if a.train_split else ""))
    print(describe(tables))
    for warning in split_warnings(Path(a.data), tables):
        print(f"warning: {warning}")


def _clip_seconds(a: argparse.Namespace) -> float:
    """``--clip-seconds``, or without it the clip length of the data's layout (10 s for TAU 2020,
    1 s for TAU 2022: :mod:`keras_asc.layouts`)."""
    from keras_asc.dataset import dataset_layout
    from keras_asc.layouts import LAYOUTS, DatasetError

    if a.clip_seconds is not None:
        return a.clip_seconds
    try:
        return dataset_layout(Path(a.data)).clip_seconds
    except (DatasetError, OSError):  # no readable layout: TAU 2020's length; the stage's reader names the
        return LAYOUTS["tau2020"].clip_seconds  # problem after the options are checked


def _feature_config(a: argparse.Namespace):
    """The features of ``asc features``/``train`` (:func:`_clip_seconds`)."""
    from keras_asc.features import FeatureConfig

    return FeatureConfig.seed(frames_per_second=a.frames_per_second, n_mels=a.n_mels, clip_seconds=_clip_seconds(a))


def _train_split(text: str) -> str:
    """``--train-split``: a DCASE 2024 percentage (:data:`keras_asc.layouts.TRAIN_SPLITS`) as given,
    a file as its absolute path (recorded in the feature cache, so later stages find it from any
    folder). Another number, a folder or a FIFO is refused here, before any work."""
    from firmware_harness.model_source import not_a_regular_file
    from keras_asc.layouts import TRAIN_SPLITS

    value = text.strip()
    choices = ", ".join(map(str, TRAIN_SPLITS))
    if value.isdigit():
        if int(value) not in TRAIN_SPLITS:
            raise argparse.ArgumentTypeError(f"takes one of the DCASE 2024 training subsets {choices} (percent of "
                                             f"fold1_train.csv) or a split file's path, got {text!r}")
        return value
    reason = not_a_regular_file(Path(value)) or ("is a folder" if Path(value).is_dir() else None)
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


def cmd_features(a: argparse.Namespace) -> None:
    from keras_asc.feature_cache import build_feature_cache

    fs = build_feature_cache(Path(a.data), Path(a.out), config=_feature_config(a), workers=a.workers,
                             train_split=a.train_split)
    print(f"features: {fs.path}  shape per clip {tuple(fs.config['shape'])}  "
          f"clips {fs.config['clips']}")


def add_feature_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("features (seed section 2.1, Table 5)")
    g.add_argument("--frames-per-second", type=int, default=28, choices=(28, 43),
                   help="28 (hop 1536, 288 frames per 10 s) or 43 (hop 1024, 431 frames)")
    g.add_argument("--n-mels", type=int, default=128, choices=(64, 128, 256))
    add_clip_seconds_arg(g)


def add_clip_seconds_arg(p) -> None:
    """``--clip-seconds`` of features, train and grid (:func:`_clip_seconds` reads it)."""
    p.add_argument("--clip-seconds", type=clip_seconds_float, default=None,
                   help="clip length the audio is padded/cropped to (default: the data's layout, 10 s for TAU "
                        "2020, 1 s for TAU 2022)")


# ----------------------------------------------------------------------------- train / evaluate
def _parse_overrides(items: list[tuple[str, float]] | None) -> tuple[tuple[str, float], ...]:
    keys = [k for k, _ in items or []]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise OptionError(f"--model-arg {', '.join(twice)} given more than once; give each argument once")
    return tuple(sorted(dict(items or []).items()))


def train_config_from_args(a: argparse.Namespace, *, recipe: dict):
    """``asc train``'s TrainConfig; ``recipe`` is :func:`recipe_options` (computed once: it warns)."""
    from keras_asc.training_config import TrainConfig

    return TrainConfig(model=a.model, model_overrides=_parse_overrides(a.model_arg), epochs=a.epochs,
                       batch_size=a.batch_size, learning_rate=a.lr, loss=a.loss,
                       mixup_alpha=a.mixup, device_aug=a.device_aug, seed=a.seed, window_frames=a.window_frames,
                       window_hop=a.window_hop, **recipe)


def recipe_options(a: argparse.Namespace) -> dict:
    """TrainConfig's distillation, Freq-MixStyle and impulse-response fields from ``asc train``'s or
    ``asc grid``'s options (:func:`add_recipe_args`; the defaults, off, where an option is not given)."""
    from keras_asc.distill import kd_weight_warnings
    from keras_asc.training_config import TrainConfig

    d = TrainConfig()
    out = {"kd_weight": a.kd_weight, "kd_temperature": a.kd_temperature}
    if a.teacher:
        out["teachers"] = tuple(str(Path(t).resolve()) for t in a.teacher)
    if a.freq_mixstyle is not None:
        out["freq_mixstyle_p"], out["freq_mixstyle_alpha"] = a.freq_mixstyle
    if a.dir_aug is not None and a.dir_aug[1] > 0:
        out["dir_folder"], out["dir_p"] = a.dir_aug
    elif a.dir_aug is not None:
        warn("--dir-aug with probability 0 has no effect; give a probability above 0")
    if not a.teacher and (a.kd_weight != d.kd_weight or a.kd_temperature != d.kd_temperature):
        warn("--kd-weight/--kd-temperature have no effect without --teacher")
    for message in kd_weight_warnings(a.kd_weight, teachers=out.get("teachers", ())):
        warn(message)
    return {k: v for k, v in out.items() if v != getattr(d, k)}  # a grid cell's record names what differs


def cmd_train(a: argparse.Namespace) -> None:
    from keras_asc.feature_cache import build_feature_cache
    from keras_asc.training import check_run_folder, train

    features = _feature_config(a)
    recipe = recipe_options(a)
    check_run_options(models=[a.model], overrides=_parse_overrides(a.model_arg), feature_configs=[features],
                      windows=[a.window_frames], window_hop=a.window_hop, teachers=recipe.get("teachers", ()),
                      dir_folder=recipe.get("dir_folder"))  # before the TrainConfig, which refuses them with less
    config = train_config_from_args(a, recipe=recipe)
    check_run_folder(Path(a.out), resume=a.resume)  # before the features are computed
    fs = build_feature_cache(Path(a.data), Path(a.work), config=features, workers=a.workers,
                             train_split=a.train_split)
    train(fs, Path(a.out), config=config, resume=a.resume, workers=a.workers)


def cmd_models(a: argparse.Namespace) -> None:
    from keras_asc.models import SEED_PARAMS, build_model, count_macs, list_models, trainable_params

    try:
        shape = tuple(int(v) for v in a.input.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 2 or min(shape) < 8 or max(shape) > 4096:
        raise OptionError(f"--input takes mel bands x frames, each from 8 to 4096 (e.g. 128x288), got {a.input!r}")
    print(f"{'model':<20} {'params':>12} {'seed (128x288)':>15} {'M MACs':>9}")
    for name in list_models():
        try:
            m = build_model(name, (*shape, 1))
        except ValueError:  # its pooling shrinks this input to nothing
            print(f"{name:<20} cannot process {shape[0]}x{shape[1]} (too small for its pooling)")
            continue
        print(f"{name:<20} {trainable_params(m):>12,d} {SEED_PARAMS.get(name, 0):>15,d} {count_macs(m) / 1e6:>9.1f}")


def cmd_evaluate(a: argparse.Namespace) -> None:
    from keras_asc.evaluation import evaluate_run, format_scores

    scores = evaluate_run(Path(a.run_dir), Path(a.data), Path(a.work), workers=a.workers)
    print(format_scores(scores))
    print(f"evaluate: wrote metrics.json, metrics.csv, predictions.csv, confusion.png in {a.run_dir}")


def check_model_names(names: list[str]) -> None:
    from keras_asc.models import list_models

    unknown = [n for n in names if n not in list_models()]
    if unknown:
        raise OptionError(f"unknown model(s) {unknown}; registered: {', '.join(list_models())} (see `asc models`)")


def check_run_options(*, models: list[str], overrides: tuple[tuple[str, float], ...], feature_configs: list,
                      windows: list[int | None], window_hop: int | None, teachers: tuple[str, ...] = (),
                      dir_folder: str | None = None) -> None:
    """The run options of ``train`` and ``grid`` against what the models and features allow, before
    any work: every model x feature configuration x window must build (a window the network's
    pooling cannot process, a ``--model-arg`` the builder does not take), a window must fit in the
    clip, a hop needs a window; a hop longer than the window leaves frames unclassified (warned).
    Every ``--teacher`` must be a finished run on the same features and classes
    (:func:`keras_asc.distill.check_teachers`); a ``--dir-aug`` folder must hold impulse response WAVs."""
    from keras_asc.models import build_model

    check_model_names(models)
    if teachers:
        from keras_asc.distill import check_teachers

        for feat in feature_configs:
            check_teachers(teachers, features=feat)
    if dir_folder is not None:
        from keras_asc.augment import ImpulseResponseError, check_impulse_responses, impulse_response_warnings

        try:
            files = check_impulse_responses(Path(dir_folder))
        except ImpulseResponseError as e:
            raise OptionError(str(e)) from None
        for message in impulse_response_warnings(files):
            warn(message)
    if window_hop is not None and all(w is None for w in windows):
        raise OptionError("--window-hop needs --window-frames (the whole clip is one inference, it has no hop)")
    for w in windows:
        if w is not None and window_hop is not None and window_hop > w:
            warn(f"--window-hop {window_hop} is longer than --window-frames {w}: the {window_hop - w} frames between "
                 "windows are never classified; use a hop of at most the window")
    for feat in feature_configs:
        for w in windows:
            if w is not None and w > feat.n_frames:
                raise OptionError(f"--window-frames {w} is longer than the clip's {feat.n_frames} frames at "
                                  f"{feat.describe()}; use at most {feat.n_frames}, or 'clip' for the whole clip")
            for model in models:
                shape = (feat.n_mels, w or feat.n_frames, 1)
                try:
                    build_model(model, shape, **dict(overrides))
                except TypeError as e:
                    raise OptionError(f"--model-arg {', '.join(f'{k}={v:g}' for k, v in overrides)}: model {model} "
                                      f"does not take it ({e}); see keras_asc/models.py for its arguments") from None
                except ValueError as e:
                    import re

                    layer = re.search(r'layer "([^"]+)"', str(e))
                    what = f"--window-frames {w}" if w is not None else f"--n-mels/--frames-per-second ({feat.describe()})"
                    raise OptionError(f"{what}: model {model} cannot process an input of {shape[0]} mel bands x "
                                      f"{shape[1]} frames (it shrinks to nothing at layer "
                                      f"{layer.group(1) if layer else '?'}); use more frames per inference") from None


def add_train_args(p: argparse.ArgumentParser) -> None:
    from keras_asc.training_config import LOSSES, TrainConfig

    d = TrainConfig()  # the one source of the training defaults
    g = p.add_argument_group("model and training")
    g.add_argument("--model", default=d.model, help="registry name (see `asc models`)")
    g.add_argument("--model-arg", action="append", metavar="KEY=VALUE", type=_model_arg,
                   help="builder override, e.g. width=0.25 (repeatable)")
    g.add_argument("--epochs", type=positive_int, default=d.epochs)
    g.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    g.add_argument("--lr", type=positive_float, default=d.learning_rate, help="initial learning rate (cosine decay)")
    g.add_argument("--loss", default=d.loss, choices=LOSSES)
    g.add_argument("--mixup", type=non_negative_float, default=d.mixup_alpha, help="mixup alpha; 0 disables")
    g.add_argument("--device-aug", type=non_negative_float, default=d.device_aug,
                   help="random per-band EQ strength in normalized units; 0 disables")
    g.add_argument("--seed", type=seed_int, default=d.seed)
    g.add_argument("--window-frames", type=positive_int, default=d.window_frames, metavar="W",
                   help="frames per inference: train on random crops of W frames, classify every window of a "
                        "clip and average their probabilities (default: the whole clip)")
    g.add_argument("--window-hop", type=positive_int, default=d.window_hop, metavar="H",
                   help="frames between a clip's windows at evaluation (default W; the last window ends at the "
                        "clip's end)")
    add_recipe_args(p)


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """Distillation, Freq-MixStyle and impulse responses: ``train``'s and ``grid``'s (one parser each)."""
    from keras_asc.distill import KD_TEMPERATURE_RANGE
    from keras_asc.training_config import TrainConfig

    d = TrainConfig()
    g = p.add_argument_group("distillation and device augmentation (README: Today's recipe)")
    g.add_argument("--teacher", type=_csv_of(str), default=None, metavar="RUN[,RUN...]",
                   help="finished runs (same features and classes) whose mean logits the model learns from, "
                        "computed once per training clip (default: none)")
    g.add_argument("--kd-weight", type=_unit_interval, default=d.kd_weight, metavar="A",
                   help=f"loss = (1 - A) * label loss + A * T^2 * KL(teachers || model) (default {d.kd_weight:g})")
    low, high = KD_TEMPERATURE_RANGE
    g.add_argument("--kd-temperature", default=d.kd_temperature, metavar="T",
                   type=_number(float, minimum=low, inclusive=True, maximum=high,
                                what=f"a temperature from {low:g} to {high:g} (outside it the float32 distillation "
                                     "term vanishes or overflows)"),
                   help=f"distillation temperature, {low:g} to {high:g} (default {d.kd_temperature:g})")
    g.add_argument("--freq-mixstyle", type=_freq_mixstyle, default=None, metavar="P,ALPHA",
                   help="Freq-MixStyle: with probability P per batch, mix per-mel-band statistics between clips "
                        "with Beta(ALPHA, ALPHA) weights (default off; CP-JKU use e.g. 0.4,0.3)")
    g.add_argument("--dir-aug", type=_dir_aug, default=None, metavar="FOLDER,P",
                   help=f"device impulse responses: train each clip with probability P on one of {d.dir_copies} "
                        "copies convolved with responses from FOLDER's WAVs (computed once; default off)")


# ----------------------------------------------------------------------------- export
def cmd_export(a: argparse.Namespace) -> None:
    from firmware_harness.firmware.check import arena_probes
    from tflite_export.compression import CompressionConfig
    from tflite_export.export import ExportConfig, export_run

    from tflite_export.export import DEFAULT_BUDGET
    from tflite_export.mcu_targets import FLASH_BESIDES_MODEL_ESTIMATE, get_mcu_target

    d = CompressionConfig()
    if a.qat and a.compress:
        raise OptionError("--qat and --compress cannot be combined: compression fine-tunes the clustered model "
                          "itself; choose one")
    if not a.compress:
        for option, value, default in (("--compress-bits", a.compress_bits, d.bits),
                                       ("--compress-granularity", a.compress_granularity, d.granularity),
                                       ("--compress-epochs", a.compress_epochs, d.finetune_epochs)):
            if value != default:
                warn(f"{option} {value} has no effect without --compress")
    if not a.qat and a.qat_epochs != 3:
        warn(f"--qat-epochs {a.qat_epochs} has no effect without --qat")
    if a.target is not None:
        t = get_mcu_target(a.target)
        if a.budget != DEFAULT_BUDGET and t.flash_bytes - FLASH_BESIDES_MODEL_ESTIMATE < a.budget:
            warn(f"--budget {a.budget} is lowered by --target {a.target} to {t.flash_bytes - FLASH_BESIDES_MODEL_ESTIMATE:,d} "
                 "(its flash minus the runtime estimate)")
        if a.ram_budget is not None and a.ram_budget > t.largest_sram_bytes:
            warn(f"--ram-budget {a.ram_budget} is lowered by --target {a.target} to its largest SRAM block "
                 f"{t.largest_sram_bytes:,d}")
    compression = (CompressionConfig(bits=a.compress_bits, granularity=a.compress_granularity,
                                     finetune_epochs=a.compress_epochs) if a.compress else None)
    probes = arena_probes(a.arena_targets, third_party_dir=Path(a.third_party) if a.third_party else None)
    out = Path(a.out) if a.out else Path(a.run_dir) / "export"
    exp = export_run(Path(a.run_dir), Path(a.data), Path(a.work), config=ExportConfig(
        budget=a.budget, calibration_size=a.calibration_size, seed=a.seed, qat=a.qat,
        qat_epochs=a.qat_epochs, workers=a.workers, arena_probes=probes, ram_budget=a.ram_budget,
        mcu_target=a.target, compression=compression, export_dir=out,
        dcase_year=None if a.dcase_year == "none" else a.dcase_year))
    size = exp.size
    print(f"flatbuffer: {size.flatbuffer_bytes:,d} bytes of {size.budget_bytes:,d} budget "
          f"({size.budget_used_percent} %); tensor arena {size.arena_min_bytes:,d} bytes measured at most, "
          f"{size.arena_recommended_bytes:,d} in model_settings.h; {size.macs_per_inference:,d} MACs")
    if size.dcase is not None:
        print(size.dcase.describe())
    budget = f" of {exp.ram.budget_bytes:,d} budget" if exp.ram.budget_bytes is not None else ""
    print(f"firmware RAM about {exp.ram.needed_bytes:,d} bytes{budget}; fits: "
          + ", ".join(f"{f.target} {'yes' if f.fits else 'no'}" for f in exp.fits))
    if exp.compression is not None:
        c = exp.compression
        print(f"compression: {c.config.describe()}: {c.uncompressed_bytes:,d} -> {c.compressed_bytes:,d} bytes; "
              f"{len(c.tensors)} tensors decode to the uncompressed weights, TFLM outputs identical on "
              f"{c.checked_inputs} calibration inputs")
    print(f"export: wrote {out} ({exp.quantization_path}; size_report.txt has "
          "the per-tensor table, the activation peak and the fit table)")


def _dcase_year(text: str) -> int | str:
    """``--dcase-year``: a year of tflite_export.dcase_rules.DCASE_RULES, ``auto`` or ``none``."""
    from tflite_export.dcase_rules import DCASE_RULES

    if text in ("auto", "none"):
        return text
    if not text.isdigit() or int(text) not in DCASE_RULES:
        raise argparse.ArgumentTypeError(f"takes auto, none or one of {', '.join(map(str, DCASE_RULES))}, got {text!r}")
    return int(text)


# ----------------------------------------------------------------------------- validate
def check_model_source(path: Path):
    """The EXPORT/MODEL argument of validate, firmware, profile and bundle, resolved once
    (:func:`firmware_harness.model_source.resolve_model_source`): an export folder or its model.tflite
    means that export; any other .tflite means that file's bytes, wherever it lies. Anything else is
    named with what to give instead. Prints the file and its sha256."""
    from firmware_harness.model_source import resolve_model_source

    source = resolve_model_source(path)
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


def cmd_validate(a: argparse.Namespace) -> None:
    from firmware_harness.validation.export_validation import validate_export
    from firmware_harness.validation.report import format_report

    source = check_model_source(Path(a.model))
    if source.export is None:
        from firmware_harness.validation.model_validation import format_model_validation, validate_model

        for option, value in (("--data", a.data), ("--max-drop", a.max_drop)):
            if value is not None:
                warn(f"{option} {value} has no effect on a .tflite without an export folder (no dataset, no float "
                     "model)")
        kwargs = _any_model_kwargs(a)
        report = validate_model(source, workers=a.workers, **kwargs)
        print(format_model_validation(report))
        print(f"validate: reports in {kwargs['out_dir'] or source.default_out_dir('validation')} "
              "(validation_report.md/.json, inputs.npy, outputs.npy)")
        if report.failures:
            raise UserError("validation failed:\n" + "\n".join(f"  - {f}" for f in report.failures))
        return
    _refuse_any_model_options(a, source.path)
    report = validate_export(source.path, Path(a.data), Path(a.work), workers=a.workers, max_drop=a.max_drop)
    print(format_report(report))
    print(f"validate: reports in {source.default_out_dir('validation')} (validation_report.md/.json, *.png)")
    if report.failures:
        raise UserError("validation failed:\n" + "\n".join(f"  - {f}" for f in report.failures))


# ----------------------------------------------------------------------------- firmware
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
    from firmware_harness.builds.targets import TARGETS

    names = tuple(v for v in value.split(",") if v)
    unknown = [n for n in names if n not in allowed]
    if not names or unknown:
        known = [n for n in unknown if n in TARGETS]
        because = f"; {known} {why}" if known and why else ""
        raise argparse.ArgumentTypeError(f"unknown {what}(s) {unknown or value!r}{because}; one or more of "
                                         f"{', '.join(allowed)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{what}(s) {twice} listed more than once in {value!r}; name each once")
    return names


def _targets(value: str) -> tuple[str, ...]:
    """``--targets`` of firmware and export: firmware targets (:data:`firmware_harness.builds.targets.TARGETS`)."""
    from firmware_harness.builds.targets import TARGETS

    return _target_list(value, allowed=tuple(TARGETS), what="target")


def _chunk(value: str) -> int:
    from firmware_harness.builds.program import MAX_CHUNK_SAMPLES

    n = int(value) if value.isdigit() else 0
    if not 1 <= n <= MAX_CHUNK_SAMPLES:
        raise argparse.ArgumentTypeError(f"--chunk takes 1 to {MAX_CHUNK_SAMPLES} samples (the firmware program's "
                                         f"microphone buffer), got {value!r}")
    return n


def _mcu_target(value: str) -> str:
    from tflite_export.mcu_targets import MCU_TARGETS

    if value not in MCU_TARGETS:
        raise argparse.ArgumentTypeError(f"unknown microcontroller {value!r}; one of {', '.join(MCU_TARGETS)}")
    return value


def _targets_or_none(value: str) -> tuple[str, ...]:
    return () if value == "none" else _targets(value)


def cmd_firmware(a: argparse.Namespace) -> None:
    from firmware_harness.firmware.check import check_firmware, format_report
    from firmware_harness.builds.targets import get_target

    source = check_model_source(Path(a.export_dir))
    if source.export is None:
        _firmware_any_model(a, source)
        return
    a.export_dir = str(source.export_dir)
    _refuse_any_model_options(a, source.path)
    emulated = [n for n in a.targets if get_target(n).emulated]
    if a.chunk is not None and not a.from_audio:
        warn(f"--chunk {a.chunk} has no effect without --from-audio")
    if a.clips != 20 and not emulated:
        warn(f"--clips {a.clips} has no effect: no emulated target in --targets ({','.join(a.targets)}); "
             "host targets take --host-clips")
    if a.host_clips != "all" and len(emulated) == len(a.targets):
        warn(f"--host-clips {a.host_clips} has no effect: no host target in --targets ({','.join(a.targets)})")
    report = check_firmware(Path(a.export_dir), Path(a.data), Path(a.work), targets=a.targets, clips=a.clips,
                            host_clips=a.host_clips, from_audio=a.from_audio, chunk=a.chunk,
                            third_party_dir=Path(a.third_party) if a.third_party else None, workers=a.workers)
    print(format_report(report))
    print(f"firmware: programs, outputs and firmware_report.md/.json in {source.default_out_dir('firmware')}")
    if report.failures:
        raise UserError("firmware check failed:\n" + "\n".join(f"  - {f}" for f in report.failures))


def _firmware_any_model(a: argparse.Namespace, source) -> None:
    """``asc firmware`` of a .tflite of its own (``source``: a ModelSource without an export record)."""
    from firmware_harness.firmware.model_firmware import check_model_firmware, format_model_firmware

    model = source.path
    if a.from_audio:
        raise OptionError(f"--from-audio needs an export's front end; {model} is a .tflite without an export folder "
                          "(no audio front end), run on int8 inputs only (--inputs or --random)")
    for option, value, default in (("--data", a.data, None), ("--clips", a.clips, 20),
                                   ("--host-clips", a.host_clips, "all"), ("--chunk", a.chunk, None)):
        if value != default:
            warn(f"{option} {value} has no effect on a .tflite without an export folder: every target runs the "
                 "--inputs/--random inputs")
    kwargs = _any_model_kwargs(a)
    report = check_model_firmware(source, targets=a.targets,
                                  third_party_dir=Path(a.third_party) if a.third_party else None, **kwargs)
    print(format_model_firmware(report))
    print(f"firmware: sources, programs, outputs and firmware_report.md/.json in "
          f"{kwargs['out_dir'] or source.default_out_dir('firmware')}")
    if report.failures:
        raise UserError("firmware check failed:\n" + "\n".join(f"  - {f}" for f in report.failures))


# ----------------------------------------------------------------------------- profile
def _profile_targets(value: str) -> tuple[str, ...]:
    """``asc profile --targets``: the Cortex-M targets whose images can be counted under QEMU
    (:data:`firmware_harness.profiling.latency.PROFILE_TARGETS`), and only those are listed."""
    from firmware_harness.profiling.latency import PROFILE_TARGETS

    return _target_list(value, allowed=PROFILE_TARGETS, what="profile target",
                        why="cannot be profiled: instruction counts come from a Cortex-M image under QEMU")


def _mcus(value: str) -> tuple[str, ...]:
    names = tuple(v for v in value.split(",") if v)
    for n in names:
        _mcu_target(n)
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"takes a comma-separated list of distinct microcontrollers, got {value!r}")
    return names


def cmd_profile(a: argparse.Namespace) -> None:
    import tempfile

    from firmware_harness.profiling.profile import export_sources, format_profile, mcus_for, profile_sources, tflite_sources
    from firmware_harness.builds.third_party import FirmwareError

    try:
        mcus_for(a.targets, a.mcu)  # an --mcu whose core is not in --targets: an option value, before any work
    except FirmwareError as e:
        raise OptionError(str(e)) from None
    source = check_model_source(Path(a.source))
    out = Path(a.out) if a.out else source.default_out_dir("profile")
    options = dict(source=str(source.path), targets=a.targets, mcus=a.mcu, inferences=a.inferences, seed=a.seed,
                   third_party_dir=Path(a.third_party) if a.third_party else None)
    if source.export is not None:  # an export: its own C sources, front end included
        report = profile_sources(export_sources(source.export_dir), out, **options)
    else:  # a .tflite of its own: its C sources generated aside
        with tempfile.TemporaryDirectory(prefix="asc-profile-") as tmp:
            sources = tflite_sources(source, Path(tmp) / "sources", targets=a.targets,
                                     third_party_dir=options["third_party_dir"])
            report = profile_sources(sources, out, **options)
    print(format_profile(report))
    print(f"profile: profile_report.md/.json and profile_operators.png in {out}")
    if report.failures:
        raise UserError("profile failed:\n" + "\n".join(f"  - {f}" for f in report.failures))


# ----------------------------------------------------------------------------- bundle
def cmd_bundle(a: argparse.Namespace) -> None:
    from firmware_harness.builds.bundle import make_bundle

    source = check_model_source(Path(a.export_dir))
    if source.export is None:
        raise UserError(f"{source.path}: a .tflite of its own, not an export's model.tflite; asc bundle packs an "
                        "export (its model, generated C sources and audio front end), and this file has none. Give "
                        "the export folder to bundle its model.tflite, or export the model this file came from with "
                        "`asc export RUN_DIR`")
    b = make_bundle(source.export_dir, Path(a.out), target=a.target,
                    third_party_dir=Path(a.third_party) if a.third_party else None)
    print(f"bundle: build it with `cmake -S {b.out} -B {b.out / 'build'} && cmake --build {b.out / 'build'} -j 2` "
          f"(no Python, no network); {b.out / 'BUNDLE.md'} says what it holds")


# ----------------------------------------------------------------------------- demo / grid
def _pipeline_config(a: argparse.Namespace, **kw):
    from asc_cli.pipeline import PipelineConfig

    return PipelineConfig(model_overrides=_parse_overrides(a.model_arg), epochs=a.epochs,
                          batch_size=a.batch_size, learning_rate=a.lr, seed=a.seed, budget=a.budget,
                          calibration_size=a.calibration_size, **kw)


def cmd_demo(a: argparse.Namespace) -> None:
    from asc_cli.pipeline import run_demo
    from keras_asc.features import FeatureConfig
    from keras_asc.synth import resolve_size

    check_run_options(models=[a.model], overrides=_parse_overrides(a.model_arg), windows=[None], window_hop=None,
                      feature_configs=[FeatureConfig.seed(clip_seconds=resolve_size(a.size).clip_seconds)])
    result = run_demo(Path(a.work), size=a.size, seed=a.seed, workers=a.workers,
                      cfg=_pipeline_config(a, model=a.model, firmware_clips=a.firmware_clips))
    if not result.validation.passed:
        raise UserError("validation failed: " + "; ".join(result.validation.failures))
    if result.firmware is not None and not result.firmware.passed:
        raise UserError("firmware check failed: " + "; ".join(result.firmware.failures))


def _ray_address(text: str) -> str:
    """``--address``: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT`` (:func:`asc_cli.grid_ray.parse_ray_address`)."""
    from asc_cli.grid_ray import parse_ray_address

    try:
        return parse_ray_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _grid_ray_address(a: argparse.Namespace) -> tuple[str | None, str]:
    """The cluster ``asc grid --engine ray`` joins and where it came from: ``--address``, else the
    environment's ``RAY_ADDRESS`` (as Ray itself reads it), else None (a local Ray)."""
    import os

    from asc_cli.grid_ray import parse_ray_address

    if a.address is not None:
        return a.address, "--address"
    env = os.environ.get("RAY_ADDRESS", "")
    if not env:
        return None, "--address"
    try:
        return parse_ray_address(env), "RAY_ADDRESS"
    except ValueError as e:
        raise OptionError(f"RAY_ADDRESS={env} (set in the environment, and read when --address is not given): {e}. "
                          "Unset RAY_ADDRESS to start a local Ray, or give --address") from None


def cmd_grid(a: argparse.Namespace) -> None:
    from asc_cli.pipeline import GRID_TABLES, grid_configs, run_grid

    from keras_asc import artifacts
    from keras_asc.features import FeatureConfig

    from asc_cli.grid_ray import DEFAULT_CONNECT_TIMEOUT, check_reachable, check_storage

    ray_options = (("--address", a.address, None), ("--cpus-per-cell", a.cpus_per_cell, 1),
                   ("--gpus-per-cell", a.gpus_per_cell, 0), ("--max-failures", a.max_failures, 3),
                   ("--storage", a.storage, None), ("--connect-timeout", a.connect_timeout, DEFAULT_CONNECT_TIMEOUT))
    if a.engine == "local":
        for option, value, default in ray_options:
            if value != default:
                warn(f"{option} {value} has no effect with --engine local (the default); add --engine ray")
    elif a.workers != DEFAULT_WORKERS:
        warn(f"--workers {a.workers} has no effect with --engine ray: each cell runs --cpus-per-cell "
             f"({a.cpus_per_cell:g}) worker processes")
    address, origin = _grid_ray_address(a) if a.engine == "ray" else (None, "--address")
    if a.engine == "ray":
        from asc_cli.grid_ray import import_ray

        if a.storage is not None:
            try:
                check_storage(a.storage)
            except ValueError as e:
                raise OptionError(str(e)) from None
        if address is None and a.connect_timeout != DEFAULT_CONNECT_TIMEOUT:
            warn(f"--connect-timeout {a.connect_timeout:g} has no effect without --address (a local Ray is started)")
        # before any work: an error naming the fix without Ray; joining bounded by --connect-timeout
        import_ray(local_only=address is None, connect_timeout=a.connect_timeout if address else None)
        if address is not None:
            check_reachable(address, timeout=a.connect_timeout, origin=origin)  # before any work, bounded
    clip_seconds = _clip_seconds(a)
    feats = [FeatureConfig.seed(frames_per_second=f, n_mels=n, clip_seconds=clip_seconds)
             for f in a.frames for n in a.mels]
    recipe = recipe_options(a)
    check_run_options(models=a.models, overrides=_parse_overrides(a.model_arg), feature_configs=feats,
                      windows=a.window_frames, window_hop=None, teachers=recipe.get("teachers", ()),
                      dir_folder=recipe.get("dir_folder"))
    base = _pipeline_config(a, train_split=a.train_split, recipe=tuple(sorted(recipe.items())))
    configs = grid_configs(base, models=a.models, frames=a.frames, mels=a.mels, losses=a.losses,
                           windows=a.window_frames)
    # never write results into a folder of the user's; a grid folder of an earlier version has results.csv
    # and cells with grid_result.json
    artifacts.claim_folder(Path(a.out), stage="grid", writes=GRID_TABLES, legacy=lambda f: (
        f / "results.csv").is_file() and any(f.glob("*/grid_result.json")))
    if a.engine == "ray":
        from asc_cli.grid_ray import run_grid_ray

        run_grid_ray(Path(a.data), Path(a.out), configs, clip_seconds=clip_seconds,
                     work_dir=Path(a.work) if a.work else None, address=address, cpus_per_cell=a.cpus_per_cell,
                     gpus_per_cell=a.gpus_per_cell, max_failures=a.max_failures, storage=a.storage,
                     connect_timeout=a.connect_timeout, address_origin=origin)
    else:
        run_grid(Path(a.data), Path(a.out), configs, clip_seconds=clip_seconds,
                 work_dir=Path(a.work) if a.work else None, workers=a.workers)


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    from asc_cli.pipeline import PipelineConfig

    d = PipelineConfig()  # the one source of the demo's and the grid's defaults
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", type=_model_arg)
    p.add_argument("--epochs", type=positive_int, default=d.epochs)
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--lr", type=positive_float, default=d.learning_rate)
    p.add_argument("--seed", type=seed_int, default=d.seed)
    p.add_argument("--budget", type=positive_int, default=d.budget)
    p.add_argument("--calibration-size", type=positive_int, default=d.calibration_size)
    add_workers_arg(p)


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from firmware_harness.builds.targets import DEFAULT_TARGETS, TARGETS
    from tflite_export.compression import GRANULARITIES, CompressionConfig
    from tflite_export.export import DEFAULT_BUDGET, DEFAULT_CALIBRATION
    from asc_cli.grid_ray import DEFAULT_CONNECT_TIMEOUT
    from firmware_harness.builds.bundle import BUNDLE_TARGETS
    from firmware_harness.profiling.latency import DEFAULT_PROFILE_TARGETS
    from firmware_harness.profiling.profile import MAX_PROFILE_INFERENCES
    from tflite_export.export import DCASE_YEAR_AUTO

    p = argparse.ArgumentParser(prog="asc", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("make-dataset", help="write a generated dataset in the TAU 2020 Mobile layout")
    s.add_argument("out_dir")
    s.add_argument("--size", type=_dataset_size, default="demo", help="tiny (tests), demo (default) or segments per scene")
    s.add_argument("--seed", type=seed_int, default=0)
    s.add_argument("--clip-seconds", type=clip_seconds_float, default=None, help="override the clip length")
    add_workers_arg(s)
    s.set_defaults(func=cmd_make_dataset)

    s = sub.add_parser("describe", help="clips per split x device and per scene of a dataset")
    add_data_args(s, help="dataset root (holds meta.csv, evaluation_setup/)")
    s.add_argument("--no-audio-check", action="store_true", help="do not check the audio files exist")
    s.set_defaults(func=cmd_describe)

    s = sub.add_parser("features", help="compute and cache log-mel features for train and evaluate")
    add_data_args(s)
    s.add_argument("--out", required=True, help="work folder; the cache goes to OUT/features/<key>/")
    add_workers_arg(s)
    add_feature_args(s)
    s.set_defaults(func=cmd_features)

    s = sub.add_parser("train", help="train a registered model on cached log-mel features")
    add_data_args(s)
    s.add_argument("--out", required=True, help="run folder (model.keras, config.json, checkpoints/)")
    s.add_argument("--work", default="work", help="feature cache folder (default ./work)")
    s.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    add_workers_arg(s)
    add_feature_args(s)
    add_train_args(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("models", help="the model registry: parameters beside the seed's, MACs")
    s.add_argument("--input", default="128x288", help="mel bands x frames (default 128x288)")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("evaluate", help="accuracy and log loss overall, per device, per scene")
    s.add_argument("run_dir")
    s.add_argument("--data", required=True)
    s.add_argument("--work", default="work")
    add_workers_arg(s)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("export", help="int8 .tflite under the flash budget + C sources for TFLM")
    s.add_argument("run_dir")
    s.add_argument("--data", required=True, help="dataset the run was trained on (calibration clips)")
    s.add_argument("--work", default="work")
    s.add_argument("--budget", type=positive_int, default=DEFAULT_BUDGET, help="max flatbuffer bytes (default 128 KiB)")
    s.add_argument("--dcase-year", type=_dcase_year, default=DCASE_YEAR_AUTO, metavar="YEAR|auto|none",
                   help="count parameters and MACs per second of audio as DCASE Task 1 of YEAR did (2021: 128 KB of "
                        "non-zero parameters; 2022-2025: 128 kB of parameters and 30 M MACs per one-second inference) "
                        "and refuse a model over its limits; auto (default): 2021 for the TAU 2020 layout, 2025 for "
                        "TAU 2022; none: no DCASE check")
    s.add_argument("--ram-budget", type=positive_int, default=None, metavar="BYTES",
                   help="max firmware RAM (arena + front end + static data and stack estimate); default none")
    s.add_argument("--target", type=_mcu_target, default=None, metavar="NAME",
                   help="a microcontroller (stm32h743, nrf5340, stm32f746, stm32f407, corstone-300): lowers "
                        "--budget to its flash minus the runtime and --ram-budget to its largest SRAM block")
    s.add_argument("--calibration-size", type=positive_int, default=DEFAULT_CALIBRATION)
    s.add_argument("--seed", type=seed_int, default=0, help="calibration sample seed")
    s.add_argument("--qat", action="store_true", help="quantize-aware fine-tuning before conversion")
    s.add_argument("--qat-epochs", type=positive_int, default=3)
    d = CompressionConfig()
    s.add_argument("--compress", action="store_true",
                   help="cluster the weights (tensorflow-model-optimization), fine-tune, and store them as TFLM "
                        "look-up-table indices decoded at run time; refused unless they decode exactly")
    s.add_argument("--compress-bits", type=int, choices=range(1, 8), default=d.bits, metavar="B",
                   help=f"index bits: 2**B values per table (default {d.bits})")
    s.add_argument("--compress-granularity", choices=GRANULARITIES, default=d.granularity,
                   help="one value table (and int8 scale) per weight tensor, or per output channel "
                        f"(default {d.granularity}: 4-bit ResNet11 on the demo data took 59,792 bytes per tensor, "
                        "101,072 per channel)")
    s.add_argument("--compress-epochs", type=non_negative_int, default=d.finetune_epochs,
                   help="fine-tuning epochs of the clustered model (default: as many as the run was trained for)")
    s.add_argument("--out", default=None, help="export folder (default RUN_DIR/export)")
    s.add_argument("--arena-targets", type=_targets_or_none, default=DEFAULT_TARGETS,
                   help="firmware builds whose arena need sizes the header's kTensorArenaSize, besides TFLM "
                        f"Python's (default: {','.join(DEFAULT_TARGETS)}, those whose toolchain is installed); "
                        "'none' for TFLM Python's only")
    s.add_argument("--third-party", default=None, help="folder of the pinned TFLM source archives")
    add_workers_arg(s)
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("validate", help="run every evaluate clip (or any int8 .tflite's int8 inputs) through TFLM and "
                                        "LiteRT; int8 vs float; arena")
    s.add_argument("model", help="RUN_DIR/export/model.tflite (its config.json beside it), or any int8 .tflite")
    s.add_argument("--data", default=None, help="the dataset (required for an export's model)")
    s.add_argument("--work", default="work")
    add_workers_arg(s)
    s.add_argument("--max-drop", type=non_negative_float, default=None, metavar="PP",
                   help="fail if int8 accuracy is more than PP points below float")
    _add_any_model_args(s, out_default="MODEL.validation")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("firmware", help="compile the export with TFLM C++ per target; bit-exact against TFLM Python")
    s.add_argument("export_dir", metavar="SOURCE",
                   help="RUN_DIR/export (model.tflite, C sources, config.json) or its model.tflite, or any int8 .tflite "
                        "(its C sources are generated)")
    s.add_argument("--data", default=None, help="the dataset (required for an export)")
    s.add_argument("--work", default="work")
    s.add_argument("--targets", type=_targets, default=DEFAULT_TARGETS,
                   help=f"comma-separated: {', '.join(TARGETS)} (default {','.join(DEFAULT_TARGETS)})")
    s.add_argument("--clips", type=_clips, default=20,
                   help="evaluate clips per emulated target, a stratified sample (default 20), or 'all'")
    s.add_argument("--host-clips", type=_clips, default="all",
                   help="evaluate clips per host target (default all; a number for a stratified sample)")
    s.add_argument("--from-audio", action="store_true",
                   help="also stream each clip's WAV through the exported front end (PCM -> class) and compare "
                        "it with the training features")
    s.add_argument("--chunk", type=_chunk, default=None,
                   help="PCM samples per front-end call with --from-audio (default: the hop), as a microphone "
                        "driver delivers them")
    s.add_argument("--third-party", default=None,
                   help="folder of the pinned TFLM source archives (default $ASC_THIRD_PARTY, else "
                        "../shared/third_party beside this checkout)")
    add_workers_arg(s)
    _add_any_model_args(s, out_default="MODEL.firmware")
    s.set_defaults(func=cmd_firmware)

    s = sub.add_parser("profile", help="estimated ms per inference and per clip on Cortex-M microcontrollers, from "
                                       "exact per-operator instruction counts under QEMU and a cycle model per core")
    s.add_argument("source", help="an export folder (RUN_DIR/export) or its model.tflite, or any int8 .tflite")
    s.add_argument("--targets", type=_profile_targets, default=DEFAULT_PROFILE_TARGETS,
                   help="Cortex-M images to count: cortex-m4, cortex-m7, cortex-m33, cortex-m55 (default cortex-m4)")
    s.add_argument("--mcu", type=_mcus, default=None, metavar="NAME,...",
                   help="microcontrollers to estimate (default: every one whose core is in --targets)")
    s.add_argument("--inferences", type=_number(int, minimum=1, inclusive=True, maximum=MAX_PROFILE_INFERENCES,
                                                what=f"a whole number from 1 to {MAX_PROFILE_INFERENCES}"),
                   default=1, help="seeded random int8 inputs counted (default 1; at most "
                                   f"{MAX_PROFILE_INFERENCES}: the counts of every input must equal the first's)")
    s.add_argument("--seed", type=seed_int, default=0)
    s.add_argument("--out", default=None, help="profile folder (default EXPORT/profile, or MODEL.profile/ beside a .tflite)")
    s.add_argument("--third-party", default=None, help="folder of the pinned TFLM source archives")
    s.set_defaults(func=cmd_profile)

    s = sub.add_parser("bundle", help="a self-contained CMake folder: the export, TFLM and only the sources it needs, "
                                      "an example main, the verified flags")
    s.add_argument("export_dir", metavar="EXPORT", help="RUN_DIR/export or its model.tflite")
    s.add_argument("--out", required=True, help="the bundle folder (replaced only if an earlier asc bundle wrote it)")
    s.add_argument("--target", choices=BUNDLE_TARGETS, default="host",
                   help="host (default: g++, TFLM reference kernels) or a Cortex-M (arm-none-eabi, CMSIS-NN)")
    s.add_argument("--third-party", default=None, help="folder of the pinned TFLM source archives")
    s.set_defaults(func=cmd_bundle)

    s = sub.add_parser("demo", help="generated dataset -> features -> ResNet11 -> int8 + C -> TFLM validation")
    s.add_argument("--work", default="work/demo", help="where every stage writes (default work/demo)")
    s.add_argument("--size", type=_dataset_size, default="demo", help="generated dataset size: demo (default), tiny or N")
    s.add_argument("--model", default="resnet11")
    s.add_argument("--firmware-clips", type=positive_int, default=10,
                   help="evaluate clips (stratified) for cortex-m4 under QEMU when the Arm toolchain is "
                        "installed (default 10); the host runs every clip, from log-mel and from PCM")
    add_pipeline_args(s)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("grid", help="run a grid of configurations (seed Tables 4-5) into one results table")
    add_data_args(s)
    s.add_argument("--out", required=True, help="grid folder: one subfolder per configuration, results.csv/.md")
    s.add_argument("--work", default=None, help="feature cache folder (default OUT/work)")
    s.add_argument("--models", type=_csv_of(str), default=["resnet11"], help="comma-separated registry names")
    s.add_argument("--frames", type=_csv_of(int, (28, 43)), default=[28], help="frames per second: 28,43")
    s.add_argument("--mels", type=_csv_of(int, (64, 128, 256)), default=[128], help="mel bands: 64,128,256")
    s.add_argument("--losses", type=_csv_of(str, ("ce", "focal")), default=["ce"], help="ce,focal")
    s.add_argument("--window-frames", type=_csv_of(_window_or_clip), default=[None], metavar="W,...",
                   help="frames per inference, 'clip' for the whole clip, e.g. clip,64,32,16 (default clip)")
    add_clip_seconds_arg(s)
    add_pipeline_args(s)
    add_recipe_args(s)
    g = s.add_argument_group("engine (see README: Grids on Ray)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): the cells one after the other in this process; ray: each cell a Ray Tune "
                        "trial, on a local Ray or the cluster at --address (needs the ray extra)")
    g.add_argument("--address", type=_ray_address, default=None,
                   help="a running Ray cluster: auto (on one of its nodes), HOST:PORT or ray://HOST:PORT; default: "
                        "start a local Ray. --out and --data must be the same path on every node")
    g.add_argument("--cpus-per-cell", type=positive_float, default=1,
                   help="CPUs Ray reserves per cell, also its worker processes (default 1)")
    g.add_argument("--gpus-per-cell", type=non_negative_float, default=0, help="GPUs Ray reserves per cell (default 0)")
    g.add_argument("--max-failures", type=non_negative_int, default=3,
                   help="retries of a cell whose node or process dies (Tune's FailureConfig; default 3)")
    g.add_argument("--storage", default=None, metavar="PATH|URI",
                   help="Ray Tune's storage_path for its experiment records (default OUT/ray_results)")
    g.add_argument("--connect-timeout", type=positive_float, default=DEFAULT_CONNECT_TIMEOUT, metavar="SECONDS",
                   help=f"seconds to join the cluster at --address (or RAY_ADDRESS) before giving up (default "
                        f"{DEFAULT_CONNECT_TIMEOUT:g})")
    s.set_defaults(func=cmd_grid)
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
        import traceback

        traceback.print_exc()
        print(f"asc {args.command}: this is a bug in asc-tinyml, not a problem with your input (exit status "
              f"{EXIT_BUG}): please report it with the traceback above", file=sys.stderr)
        return EXIT_BUG
    return 0


if __name__ == "__main__":
    sys.exit(main())
