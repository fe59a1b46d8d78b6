"""Training a registered model on cached log-mel features.

A run folder ``RUN_DIR`` holds::

    config.json        TrainConfig, feature config, normalization, labels, provenance, results
    model.keras        the best model so far (lowest validation log loss), saved atomically
    state.json         last finished epoch, best epoch and loss, per-epoch history
    checkpoints/       weights + optimizer state after every epoch (for --resume)
    tensorboard/       TensorBoard logs
    history.csv        per-epoch loss/accuracy/lr, written at the end

Validation uses the fold1 ``evaluate`` split, as the DCASE 2021 task 1a baseline and the seed
do; the model kept is the epoch with the lowest validation log loss. That makes the reported
evaluate-split figures slightly optimistic (selection on the test split); with real TAU data
and ~3,000 evaluate clips the effect is small, and it is how the seed's numbers were made.

Beside this loop: :mod:`keras_asc.training_config` (:class:`TrainConfig`), :mod:`keras_asc.training_data`
(the split in memory, the tf.data pipeline), :mod:`keras_asc.training_losses` (the loss, compiling) and
:mod:`keras_asc.run_record` (a finished run as the later stages read it).
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import time
from pathlib import Path

import keras_asc.tf_setup  # noqa: F401  (tf_keras, never Keras 3; before TensorFlow)

import numpy as np
import pandas as pd

from keras_asc import artifacts
from keras_asc.augment import dir_feature_cache, list_impulse_responses
from keras_asc.dataset import SCENE_LABELS
from keras_asc.distill import teacher_identity, teacher_logits
from keras_asc.errors import AscError
from keras_asc.feature_cache import FeatureSet
from keras_asc.model_registry import MODELS
from keras_asc.parallel import DEFAULT_WORKERS
from keras_asc.training_config import TrainConfig
from keras_asc.training_data import load_split, make_train_pipeline
from keras_asc.training_losses import compile_model
from keras_asc.windows import split_windows

#: What a run writes before its first epoch ends (removed when such a killed run starts again).
RUN_FOLDERS = ("tensorboard", "checkpoints", "teacher_logits")
RUN_FILES = ("config.json", "history.csv")


def _killed_before_first_epoch(run_dir: Path) -> bool:
    """A folder holding only what a training run writes, whose config says it was training and
    that has no finished epoch (no state.json)."""
    names = {p.name for p in run_dir.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))}
    if (run_dir / "state.json").exists() or not names <= set(RUN_FOLDERS) | set(RUN_FILES):
        return False
    try:
        cfg = artifacts.read_json(run_dir / "config.json")
    except (FileNotFoundError, ValueError):
        return False
    return cfg.get("stage") == "train" and cfg.get("status") == "training"


class RunExists(AscError):
    pass


def check_run_folder(run_dir: Path, *, resume: bool) -> None:
    """Refuse ``run_dir`` as a new run's folder before any work (:class:`RunExists`): a folder
    holding a run is continued only with ``resume``, a folder of anything else never. An absent
    or empty folder passes, and so does one holding a run killed before its first epoch (nothing
    in it to keep; :func:`train` starts it again)."""
    run_dir = Path(run_dir)
    if (run_dir / "state.json").is_file():
        if not resume:
            raise RunExists(f"{run_dir} already holds a training run; pass --resume to continue it "
                            "or choose a new --out folder")
    elif run_dir.exists() and any(run_dir.iterdir()) and not _killed_before_first_epoch(run_dir):
        raise RunExists(f"{run_dir} exists and is not a training run; choose a new --out folder")


def run_config(fs: FeatureSet, config: TrainConfig, model) -> dict:
    from keras_asc.models import count_macs, trainable_params  # imports tf_keras: seconds

    return {
        "stage": "train",
        "train": config.to_dict(),
        "features": fs.config["features"],
        "feature_cache": {"path": str(fs.path), "key": fs.config["key"], "data_dir": fs.config["data_dir"]},
        "input_shape": [fs.config["shape"][0], config.input_frames(fs.config["shape"][1]), 1],
        "labels": list(SCENE_LABELS),
        "normalization": fs.config["normalization"],
        "model": {"name": config.model, "trainable_params": trainable_params(model),
                  "seed_reported_params": MODELS[config.model].seed_params, "macs": count_macs(model)},
        **artifacts.provenance(),
    }


def train(fs: FeatureSet, run_dir: Path, *, config: TrainConfig, resume: bool = False,
          workers: int = DEFAULT_WORKERS, log=print) -> dict:
    """Train ``config.model`` on ``fs``'s train split; return the final ``config.json`` dict."""
    import tensorflow as tf  # TensorFlow takes seconds to import: only when training
    import tf_keras as keras

    from keras_asc.models import build_model  # imports tf_keras: seconds

    run_dir = Path(run_dir)
    state_path, config_path = run_dir / "state.json", run_dir / "config.json"
    check_run_folder(run_dir, resume=resume)
    keras.utils.set_random_seed(config.seed)
    n_mels, clip_frames = fs.config["shape"]
    model = build_model(config.model, (n_mels, config.input_frames(clip_frames), 1), len(SCENE_LABELS),
                        **dict(config.model_overrides))
    compile_model(model, config)
    cfg = run_config(fs, config, model)
    if config.teachers:
        cfg["distillation"] = teacher_identity(config.teachers, fs)
    if config.dir_p > 0:
        cfg["dir_aug"] = {"folder": config.dir_folder, "impulse_responses": {
            p.name: artifacts.sha256_file(p) for p in list_impulse_responses(Path(config.dir_folder))}}
    m = cfg["model"]
    seed_text = (f"; the seed reports {m['seed_reported_params']:,d} at 128 x 288"
                 if m["seed_reported_params"] and not config.model_overrides else "")
    log(f"train: {config.model} {dict(config.model_overrides) or ''} has {m['trainable_params']:,d} trainable "
        f"parameters at {tuple(cfg['input_shape'])}{seed_text}; {m['macs'] / 1e6:.1f} M MACs")
    state = {"epoch": 0, "best_epoch": None, "best_val_log_loss": None, "history": []}
    if state_path.is_file():  # resume (check_run_folder)
        old = artifacts.read_json(config_path)
        started = TrainConfig.from_dict(old["train"])  # fields added later take their defaults
        if started != config:
            differ = [f"{f.name} {getattr(started, f.name)!r} (now {getattr(config, f.name)!r})"
                      for f in dataclasses.fields(TrainConfig) if getattr(started, f.name) != getattr(config, f.name)]
            raise RunExists(f"{config_path}: the run was started with different training options: {'; '.join(differ)}. "
                            "Resume with the options it was started with (a default may have changed since: give "
                            "those values explicitly) or use a new --out folder")
        for key in ("features", "normalization", "labels", "distillation", "dir_aug"):
            if old.get(key) != cfg.get(key):
                raise RunExists(f"{config_path}: the run was started with different {key!r}; "
                                "resume with the same options or use a new --out folder")
        state = artifacts.read_json(state_path)
        log(f"train: resuming {run_dir} after epoch {state['epoch']}")
    elif run_dir.exists() and any(run_dir.iterdir()):  # killed before its first epoch (check_run_folder)
        log(f"train: {run_dir} holds a run killed before its first epoch finished (nothing to keep); starting again")
        for name in RUN_FOLDERS:
            shutil.rmtree(run_dir / name, ignore_errors=True)
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    manager = tf.train.CheckpointManager(ckpt, run_dir / "checkpoints", max_to_keep=2)
    if state["epoch"] > 0:
        # restore the checkpoint of the epoch state.json records as finished (a kill between
        # saving a checkpoint and the state leaves a newer one, which must not be used)
        wanted = [c for c in manager.checkpoints if c.endswith(f"ckpt-{state['epoch']}")]
        if not wanted:
            raise RunExists(f"{run_dir / 'checkpoints'}: no checkpoint for epoch {state['epoch']}; "
                            "the run cannot be resumed, start a new --out folder")
        ckpt.restore(wanted[0]).expect_partial()
    artifacts.write_json(config_path, {**cfg, "status": "training"})

    x, y = load_split(fs, "train")
    xv, yv = load_split(fs, "evaluate")
    n_classes = len(SCENE_LABELS)
    teacher = dir_x = None
    if config.teachers:
        teacher, _ = teacher_logits(fs, run_dir, runs=config.teachers, log=log)
    if config.dir_p > 0:
        dirs = dir_feature_cache(fs, folder=Path(config.dir_folder), copies=config.dir_copies, workers=workers,
                                 log=log)  # copies shared by every training seed
        cfg["dir_aug_cache"] = str(dirs.path)  # outside "dir_aug", which --resume compares
        dir_x = dirs.features()
    train_ds = make_train_pipeline(x, y, config=config, n_classes=n_classes, teacher_logits=teacher,
                                   dir_features=dir_x, normalization=fs.normalization)
    if config.window_frames is not None:  # validation on every window (the best epoch by window log loss)
        plan = config.windows(clip_frames)
        xv, yv = split_windows(xv, window=plan.frames, hop=plan.hop), np.repeat(yv, plan.per_clip)
    val = (xv, np.eye(n_classes, dtype=np.float32)[yv])

    class EpochEnd(keras.callbacks.Callback):
        """One hook for what a kill must never leave inconsistent, instead of tf_keras' stock callbacks:

        * ``ModelCheckpoint(save_best_only=True)`` writes ``model.keras`` in place (a kill mid-save
          leaves a corrupt best model) and forgets the best loss on resume: here the best model is
          saved atomically and ``best_val_log_loss`` lives in ``state.json``;
        * ``CSVLogger(append=True)`` would repeat the rows of epochs run again after a kill between
          its write and the checkpoint: here history is in ``state.json``, written with the
          checkpoint, and ``history.csv`` is written once at the end;
        * ``TerminateOnNaN`` only stops fitting, silently: here a non-finite metric is an error that
          names the fix;
        * ``BackupAndRestore`` deletes its backup when fitting ends and restores whatever it finds,
          not the epoch ``state.json`` records as finished (and refuses no changed options):
          ``--resume`` restores exactly that epoch's checkpoint and refuses other options.
        """

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            logs["lr"] = config.learning_rate_at(epoch)
            state["history"].append({"epoch": epoch + 1, **logs})
            if not all(math.isfinite(v) for v in logs.values()):
                raise FloatingPointError(f"non-finite training metrics at epoch {epoch + 1}: {logs}; "
                                         "lower --lr or check the features for NaNs")
            vl = logs["val_log_loss"]
            if state["best_val_log_loss"] is None or vl < state["best_val_log_loss"]:
                _save_model_atomic(self.model, run_dir / "model.keras")
                state.update(best_epoch=epoch + 1, best_val_log_loss=vl)
            manager.save(checkpoint_number=epoch + 1)
            state["epoch"] = epoch + 1
            artifacts.write_json(state_path, state)

    t0 = time.perf_counter()
    if state["epoch"] < config.epochs:
        model.fit(train_ds, validation_data=val, batch_size=config.batch_size,
                  epochs=config.epochs, initial_epoch=state["epoch"],
                  verbose=1 if sys.stdout.isatty() else 2,
                  callbacks=[keras.callbacks.LearningRateScheduler(config.learning_rate_at),
                             keras.callbacks.TensorBoard(run_dir / "tensorboard", profile_batch=0),
                             EpochEnd()])
    artifacts.atomic_write_text(run_dir / "history.csv", pd.DataFrame(state["history"]).to_csv(index=False))
    cfg.update(status="done", best_epoch=state["best_epoch"], best_val_log_loss=state["best_val_log_loss"],
               epochs_run=state["epoch"], train_seconds_this_session=round(time.perf_counter() - t0, 1),
               model_sha256=artifacts.sha256_file(run_dir / "model.keras"))
    artifacts.write_json(config_path, cfg)
    log(f"train: best epoch {state['best_epoch']} (val log loss {state['best_val_log_loss']:.4f}); "
        f"model {run_dir / 'model.keras'}")
    return cfg


def _save_model_atomic(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.partial.keras")
    model.save(tmp)
    os.replace(tmp, path)


def finished_run_matches(run_dir: Path, *, config: TrainConfig, feature_key: str) -> bool:
    """Whether ``run_dir`` holds a finished run of ``config`` on the features ``feature_key``: then
    training need not run. A finished run of other settings is refused (:class:`RunExists`), never
    overwritten; an absent or interrupted run is False (``train`` starts or resumes it)."""
    path = Path(run_dir) / "config.json"
    try:
        cfg = artifacts.read_json(path) if path.is_file() else {}
    except ValueError:
        cfg = {}
    if not isinstance(cfg, dict) or cfg.get("status") != "done":
        return False
    if ("train" in cfg and TrainConfig.from_dict(cfg["train"]) == config
            and cfg.get("feature_cache", {}).get("key") == feature_key):
        return True
    raise RunExists(f"{run_dir} holds a finished run made with other settings or features (e.g. by an older version "
                    "of this toolkit, or another --train-split or recipe); delete that folder to retrain, or use "
                    "another --out (asc grid) or --work (asc demo)")
