"""The run options ``asc train`` and ``asc grid`` share (one parser each, the same checks): the
model, training and recipe options, their TrainConfig, and :func:`check_run_options`, which checks
them against what the models and features allow before any work; ``demo``'s and ``grid``'s pipeline
options (:class:`asc_cli.stages.PipelineConfig`)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import keras_asc
import tflite_export
from asc_cli.options import (OptionError, _csv_of, _freq_mixstyle, _dir_aug, _model_arg, _number, _unit_interval,
                             add_workers_arg, models_help, non_negative_float, positive_float, positive_int, seed_int, warn)
from asc_cli.stages import PipelineConfig


def _parse_overrides(items: list[tuple[str, float]] | None) -> tuple[tuple[str, float], ...]:
    keys = [k for k, _ in items or []]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise OptionError(f"--model-arg {', '.join(twice)} given more than once; give each argument once")
    return tuple(sorted(dict(items or []).items()))


def _training_options(a: argparse.Namespace) -> dict:
    """The TrainConfig fields of the options ``train``, ``demo`` and ``grid`` share."""
    return {"model_overrides": _parse_overrides(a.model_arg), "epochs": a.epochs, "batch_size": a.batch_size,
            "learning_rate": a.lr, "seed": a.seed}


def train_config_from_args(a: argparse.Namespace, *, recipe: dict):
    """``asc train``'s TrainConfig; ``recipe`` is :func:`recipe_options` (computed once: it warns)."""

    return keras_asc.TrainConfig(model=a.model, loss=a.loss, mixup_alpha=a.mixup, device_aug=a.device_aug,
                                 window_frames=a.window_frames, window_hop=a.window_hop, **_training_options(a),
                                 **recipe)


def recipe_options(a: argparse.Namespace) -> dict:
    """TrainConfig's distillation, Freq-MixStyle and impulse-response fields from ``asc train``'s or
    ``asc grid``'s options (:func:`add_recipe_args`; the defaults, off, where an option is not given)."""

    d = keras_asc.TrainConfig()
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
    for message in keras_asc.kd_weight_warnings(a.kd_weight, teachers=out.get("teachers", ())):
        warn(message)
    return {k: v for k, v in out.items() if v != getattr(d, k)}  # a grid cell's record names what differs


def check_model_names(names: list[str]) -> None:

    unknown = [n for n in names if n not in keras_asc.list_models()]
    if unknown:
        raise OptionError(f"unknown model(s) {unknown}; registered: {', '.join(keras_asc.list_models())} (see `asc models`)")


def check_run_options(*, models: list[str], overrides: tuple[tuple[str, float], ...], feature_configs: list,
                      windows: list[int | None], window_hop: int | None, teachers: tuple[str, ...] = (),
                      dir_folder: str | None = None) -> None:
    """The run options of ``train`` and ``grid`` against what the models and features allow, before
    any work: every model x feature configuration x window must build (a window the network's
    pooling cannot process, a ``--model-arg`` the builder does not take), a window must fit in the
    clip, a hop needs a window; a hop longer than the window leaves frames unclassified (warned).
    Every ``--teacher`` must be a finished run on the same features and classes
    (:func:`keras_asc.distill.check_teachers`); a ``--dir-aug`` folder must hold impulse response WAVs."""

    check_model_names(models)
    if teachers:

        for feat in feature_configs:
            keras_asc.check_teachers(teachers, features=feat)
    if dir_folder is not None:

        try:
            files = keras_asc.check_impulse_responses(Path(dir_folder))
        except keras_asc.ImpulseResponseError as e:
            raise OptionError(str(e)) from None
        for message in keras_asc.impulse_response_warnings(files):
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
                    keras_asc.model_summary(name=model, input_shape=shape, overrides=overrides)
                except TypeError as e:
                    raise OptionError(f"--model-arg {', '.join(f'{k}={v:g}' for k, v in overrides)}: model {model} "
                                      f"does not take it ({e}); see keras_asc/models.py for its arguments") from None
                except ValueError as e:

                    layer = re.search(r'layer "([^"]+)"', str(e))
                    what = f"--window-frames {w}" if w is not None else f"--n-mels/--frames-per-second ({feat.describe()})"
                    raise OptionError(f"{what}: model {model} cannot process an input of {shape[0]} mel bands x "
                                      f"{shape[1]} frames (it shrinks to nothing at layer "
                                      f"{layer.group(1) if layer else '?'}); use more frames per inference") from None


def add_train_args(p: argparse.ArgumentParser) -> None:

    d = keras_asc.TrainConfig()  # the one source of the training defaults
    g = p.add_argument_group("model and training")
    g.add_argument("--model", default=d.model, help=models_help(d.model))
    g.add_argument("--model-arg", action="append", metavar="KEY=VALUE", type=_model_arg,
                   help="builder override, e.g. width=0.25 (repeatable)")
    g.add_argument("--epochs", type=positive_int, default=d.epochs)
    g.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    g.add_argument("--lr", type=positive_float, default=d.learning_rate, help="initial learning rate (cosine decay)")
    g.add_argument("--loss", default=d.loss, choices=keras_asc.LOSSES)
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

    d = keras_asc.TrainConfig()
    g = p.add_argument_group("distillation and device augmentation (README: Today's recipe)")
    g.add_argument("--teacher", type=_csv_of(str), default=None, metavar="RUN[,RUN...]",
                   help="finished runs (same features and classes) whose mean logits the model learns from, "
                        "computed once per training clip (default: none)")
    g.add_argument("--kd-weight", type=_unit_interval, default=d.kd_weight, metavar="A",
                   help=f"loss = (1 - A) * label loss + A * T^2 * KL(teachers || model) (default {d.kd_weight:g})")
    low, high = keras_asc.KD_TEMPERATURE_RANGE
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


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    """The demo's and the grid's training and export options."""
    d = PipelineConfig()  # the demo's and the grid's defaults: TrainConfig's and ExportConfig's
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", type=_model_arg)
    p.add_argument("--epochs", type=positive_int, default=d.train.epochs)
    p.add_argument("--batch-size", type=positive_int, default=d.train.batch_size)
    p.add_argument("--lr", type=positive_float, default=d.train.learning_rate)
    p.add_argument("--seed", type=seed_int, default=d.train.seed, help="seeds training and the calibration sample")
    p.add_argument("--budget", type=positive_int, default=d.export.budget)
    p.add_argument("--calibration-size", type=positive_int, default=d.export.calibration_size)
    add_workers_arg(p)


def pipeline_config_from_args(a: argparse.Namespace, *, train: dict, **fields) -> PipelineConfig:
    """The demo's or the grid's configuration from :func:`add_pipeline_args`'s options; ``train``:
    more TrainConfig fields (the demo's model, the grid's recipe), ``fields``: more PipelineConfig
    fields. ``--seed`` seeds training and the export's calibration sample."""
    return PipelineConfig(train=keras_asc.TrainConfig(**_training_options(a), **train),
                          export=tflite_export.ExportConfig(budget=a.budget, calibration_size=a.calibration_size,
                                                            seed=a.seed), **fields)
