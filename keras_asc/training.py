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
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import time
from pathlib import Path

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)

import numpy as np  # noqa: E402

from keras_asc import artifacts  # noqa: E402
from keras_asc.dataset import SCENE_LABELS  # noqa: E402
from keras_asc.errors import AscError
from keras_asc.feature_cache import FeatureSet  # noqa: E402
from keras_asc.features import FeatureConfig, Normalization  # noqa: E402
from keras_asc.windows import WindowPlan, split_windows, window_plan  # noqa: E402

LOSSES = ("ce", "focal")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every training parameter; frozen and saved in ``RUN_DIR/config.json``."""

    model: str = "resnet11"
    model_overrides: tuple[tuple[str, float], ...] = ()  # e.g. (("width", 0.25),)
    # the recipe of every figure in the README (the demo's): `asc train`, the demo and the grid
    # take these (asc_cli.pipeline.PipelineConfig reads them from here)
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-3
    min_learning_rate: float = 1e-5  # cosine decay from learning_rate to this over all epochs
    loss: str = "ce"  # "ce" or "focal" (Table 5)
    focal_gamma: float = 2.0
    mixup_alpha: float = 0.0  # 0 disables mixup
    device_aug: float = 0.0  # max per-band EQ deviation in normalized units; 0 disables
    seed: int = 0
    # frames per inference; None: the whole clip. Training draws random crops of this many frames,
    # ceil(clip frames / window_frames) of each clip per epoch, so that an epoch covers as many
    # frames as a whole-clip epoch and the same recipe (epochs, learning-rate schedule) applies.
    window_frames: int | None = None
    window_hop: int | None = None  # hop between a clip's windows at evaluation; None: window_frames
    # knowledge distillation (keras_asc.distill): finished runs whose mean logits teach; () disables
    teachers: tuple[str, ...] = ()  # absolute run folders
    kd_weight: float = 0.5  # A: loss = (1 - A) * label loss + A * T^2 * KL(teacher || student)
    kd_temperature: float = 2.0  # T
    # Freq-MixStyle (keras_asc.augment): probability per batch (0 disables) and the Beta's alpha
    freq_mixstyle_p: float = 0.0
    freq_mixstyle_alpha: float = 0.3
    # device impulse responses (keras_asc.augment): a folder of WAVs, the probability per clip and
    # epoch of training on a DIR-convolved copy instead of the clip (0 disables), copies per clip
    dir_folder: str | None = None  # absolute folder
    dir_p: float = 0.0
    dir_copies: int = 4

    def recipe_text(self) -> str:
        """Distillation and augmentation in a few words ("" when all three are off)."""
        parts = []
        if self.teachers:
            parts.append(f"distillation from {len(self.teachers)} teacher(s) (weight {self.kd_weight:g}, "
                         f"temperature {self.kd_temperature:g})")
        if self.freq_mixstyle_p > 0:
            parts.append(f"Freq-MixStyle p {self.freq_mixstyle_p:g}, alpha {self.freq_mixstyle_alpha:g}")
        if self.dir_p > 0:
            parts.append(f"device impulse responses p {self.dir_p:g} ({self.dir_copies} copies)")
        return "; ".join(parts)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(f"invalid training configuration: {self}")
        if (self.window_frames is not None and self.window_frames < 1) or (self.window_hop is not None and (
                self.window_hop < 1 or self.window_frames is None)):
            raise ValueError(f"invalid windows (frames >= 1, a hop only with frames): {self}")
        if not (0.0 <= self.kd_weight <= 1.0 and self.kd_temperature > 0 and 0.0 <= self.freq_mixstyle_p <= 1.0
                and self.freq_mixstyle_alpha > 0 and 0.0 <= self.dir_p <= 1.0 and self.dir_copies >= 1
                and all(math.isfinite(v) for v in (self.kd_weight, self.kd_temperature, self.freq_mixstyle_alpha))):
            raise ValueError(f"invalid distillation/augmentation values (weight and probabilities in [0, 1], "
                             f"temperature, alpha > 0, copies >= 1): {self}")
        if self.dir_p > 0 and not self.dir_folder:
            raise ValueError(f"dir_p > 0 needs dir_folder: {self}")

    def input_frames(self, clip_frames: int) -> int:
        """Frames the model takes per inference."""
        if self.window_frames is not None and self.window_frames > clip_frames:
            raise ValueError(f"--window-frames {self.window_frames} is longer than the clip's {clip_frames} frames")
        return self.window_frames or clip_frames

    def windows(self, clip_frames: int) -> WindowPlan | None:
        """How a clip of ``clip_frames`` frames is cut into inferences (None: the whole clip)."""
        return window_plan(frames=self.window_frames, hop=self.window_hop, clip_frames=clip_frames)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model_overrides"] = dict(self.model_overrides)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        d["model_overrides"] = tuple(sorted(dict(d.get("model_overrides", {})).items()))
        d["teachers"] = tuple(d.get("teachers", ()))
        return cls(**d)

    def learning_rate_at(self, epoch: int) -> float:
        """Cosine decay per epoch; a pure function of the epoch, so resuming is exact."""
        frac = epoch / max(1, self.epochs - 1)
        return self.min_learning_rate + 0.5 * (self.learning_rate - self.min_learning_rate) * (1 + math.cos(math.pi * frac))


# ----------------------------------------------------------------------------- data
def load_split(fs: FeatureSet, split: str, *, normalization: Normalization | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Normalized features ``(n, n_mels, n_frames, 1)`` float32 and labels ``(n,)`` int64.

    ``normalization`` defaults to the cache's own (fitted on its train split); evaluation of a
    trained run passes the run's, so the statistics always come from the training data.
    """
    norm = normalization or fs.normalization
    raw = fs.features(split)
    x = np.empty((*raw.shape, 1), np.float32)
    for i in range(0, raw.shape[0], 256):
        x[i:i + 256, ..., 0] = norm.apply(raw[i:i + 256])
    return x, fs.table(split)["label"].to_numpy(np.int64)


def _device_eq(x, strength: float, tf):
    """Random smooth per-band gain (a device's frequency response is additive in log-mel),
    plus a random overall level; one draw per example. ``x``: (batch, mels, frames, 1)."""
    b, mels = tf.shape(x)[0], tf.shape(x)[1]
    pos = tf.linspace(0.0, math.pi, mels)[None, :]
    curve = tf.zeros((b, mels))
    for k in (1, 2, 3):
        amp = tf.random.uniform((b, 1), -strength, strength) / k
        phase = tf.random.uniform((b, 1), 0.0, 2 * math.pi)
        curve += amp * tf.cos(k * pos + phase)
    curve += tf.random.uniform((b, 1), -strength, strength)
    return x + curve[:, :, None, None]


def _random_crop(x, frames: int, tf):
    """A random window of ``frames`` frames of each example (its own offset); ``x``: (batch, mels, frames, 1)."""
    b, total = tf.shape(x)[0], tf.shape(x)[2]
    starts = tf.random.uniform((b,), 0, total - frames + 1, dtype=tf.int32)
    idx = starts[:, None] + tf.range(frames)[None, :]
    return tf.gather(x, idx, axis=2, batch_dims=1)


def _mixup(x, y, alpha: float, tf):
    b = tf.shape(x)[0]
    g1 = tf.random.gamma((b,), alpha)
    g2 = tf.random.gamma((b,), alpha)
    lam = g1 / (g1 + g2)
    perm = tf.random.shuffle(tf.range(b))
    lx = lam[:, None, None, None]
    ly = lam[:, None]
    return lx * x + (1 - lx) * tf.gather(x, perm), ly * y + (1 - ly) * tf.gather(y, perm)


def make_train_pipeline(x: np.ndarray, y: np.ndarray, *, config: TrainConfig, n_classes: int,
                        teacher_logits: np.ndarray | None = None, dir_features: np.ndarray | None = None,
                        normalization: Normalization | None = None):
    """tf.data pipeline: shuffled index batches -> gather from the in-memory array ->
    augmentation as batched graph ops -> prefetch. Gathering by index avoids embedding a
    multi-GB array in the graph; the parallel map and prefetch keep both cores busy.

    ``x``: ``(n, mels, frames, 1)`` normalized float32, ``y``: ``(n,)`` labels. With
    ``teacher_logits`` ``(n, n_classes)`` the targets are ``(batch, 2 * n_classes)``: one-hot labels,
    then the teachers' logits (:func:`make_loss` splits them). With ``dir_features``
    ``(n, copies, mels, frames)`` (un-normalized dB, :func:`keras_asc.augment.dir_feature_cache`) and
    ``normalization``, each clip is replaced with probability ``config.dir_p`` by a copy picked uniformly.
    Then, per batch: random crop (windows), device EQ, Freq-MixStyle, mixup.
    """
    import tensorflow as tf

    from keras_asc.augment import random_freq_mixstyle

    shape = x.shape[1:]
    eye = np.eye(n_classes, dtype=np.float32)
    width = 2 * n_classes if teacher_logits is not None else n_classes
    copies = 1 if dir_features is None else dir_features.shape[1]
    dir_p = config.dir_p if dir_features is not None else 0.0

    def gather(idx, use, which):
        order = np.argsort(idx)
        idx, use, which = idx[order], use[order], which[order]
        bx = x[idx]
        if dir_p > 0 and use.any():
            sel = np.flatnonzero(use)
            bx[sel, ..., 0] = normalization.apply(np.stack([dir_features[i, k] for i, k in zip(idx[sel], which[sel])]))
        by = eye[y[idx]]
        if teacher_logits is not None:
            by = np.concatenate([by, teacher_logits[idx].astype(np.float32)], axis=1)
        return bx, by

    def load(idx):
        n = tf.shape(idx)[0]
        use = tf.random.uniform((n,)) < dir_p
        which = tf.random.uniform((n,), 0, copies, dtype=tf.int64)
        bx, by = tf.numpy_function(gather, [idx, use, which], (tf.float32, tf.float32))
        bx.set_shape((None, *shape))
        by.set_shape((None, width))
        return bx, by

    crops = 1 if config.window_frames is None else -(-x.shape[2] // config.window_frames)
    ds = tf.data.Dataset.range(len(x) * crops)
    if crops > 1:
        ds = ds.map(lambda i: i % len(x))  # each clip `crops` times per epoch, each time its own crop
    ds = ds.shuffle(len(x) * crops, seed=config.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if config.window_frames is not None:
        ds = ds.map(lambda a, b: (_random_crop(a, config.window_frames, tf), b), num_parallel_calls=tf.data.AUTOTUNE)
    if config.device_aug > 0:
        ds = ds.map(lambda a, b: (_device_eq(a, config.device_aug, tf), b), num_parallel_calls=tf.data.AUTOTUNE)
    if config.freq_mixstyle_p > 0:
        ds = ds.map(lambda a, b: (random_freq_mixstyle(a, p=config.freq_mixstyle_p, alpha=config.freq_mixstyle_alpha), b),
                    num_parallel_calls=tf.data.AUTOTUNE)
    if config.mixup_alpha > 0:
        ds = ds.map(lambda a, b: _mixup(a, b, config.mixup_alpha, tf), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------- losses
def _focal(y_true, p, gamma: float, tf):
    """Multi-class focal loss (Lin et al. 2017): CE weighted by (1 - p)^gamma; ``p`` probabilities."""
    p = tf.clip_by_value(p, 1e-7, 1.0)
    return tf.reduce_sum(-y_true * tf.pow(1.0 - p, gamma) * tf.math.log(p), axis=-1)


def make_loss(config: TrainConfig, n_classes: int = len(SCENE_LABELS)):
    """The training loss on the model's probabilities. With teachers it takes targets
    ``(batch, 2 * n_classes)`` (labels, then teacher logits; :mod:`keras_asc.distill`'s loss) and
    targets of ``n_classes`` columns (validation) with the label loss alone."""
    import tensorflow as tf
    import tf_keras as keras

    gamma = config.focal_gamma
    if not config.teachers:
        if config.loss == "ce":
            return keras.losses.CategoricalCrossentropy()

        def focal_loss(y_true, y_pred):
            return _focal(y_true, y_pred, gamma, tf)

        return focal_loss
    from keras_asc.distill import kd_loss, student_logits

    def label_loss(labels, logits):
        if config.loss == "ce":
            return tf.nn.softmax_cross_entropy_with_logits(labels, logits)
        return _focal(labels, tf.nn.softmax(logits), gamma, tf)

    def distillation_loss(y_true, y_pred):
        z = student_logits(y_pred)
        if y_true.shape[-1] == n_classes:  # validation: labels only
            return label_loss(y_true, z)
        return kd_loss(y_true[:, :n_classes], y_true[:, n_classes:], z, weight=config.kd_weight,
                       temperature=config.kd_temperature, label_loss=label_loss)

    return distillation_loss


# ----------------------------------------------------------------------------- the run
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


def compile_model(model, config: TrainConfig) -> None:
    """Adam at the configured rate, the configured loss, accuracy and log-loss metrics (on the label
    columns of the targets: with teachers the training targets also hold their logits)."""
    import tf_keras as keras

    # a subclassed model that was never called (compression's fine-tuning wrapper) has no output
    # shape yet; its outputs are the scene classes like every registered model's
    n = model.output_shape[-1] if model.built and getattr(model, "outputs", None) else len(SCENE_LABELS)
    if config.teachers:
        def label_accuracy(y_true, y_pred):
            return keras.metrics.categorical_accuracy(y_true[:, :n], y_pred)

        def label_log_loss(y_true, y_pred):
            return keras.losses.categorical_crossentropy(y_true[:, :n], y_pred)

        metrics = [keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy"),
                   keras.metrics.MeanMetricWrapper(label_log_loss, name="log_loss")]
    else:
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy"),
                   keras.metrics.CategoricalCrossentropy(name="log_loss")]
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=make_loss(config, n), metrics=metrics)


def run_config(fs: FeatureSet, config: TrainConfig, model) -> dict:
    from keras_asc.models import SEED_PARAMS, count_macs, trainable_params

    return {
        "stage": "train",
        "train": config.to_dict(),
        "features": fs.config["features"],
        "feature_cache": {"path": str(fs.path), "key": fs.config["key"], "data_dir": fs.config["data_dir"]},
        "input_shape": [fs.config["shape"][0], config.input_frames(fs.config["shape"][1]), 1],
        "labels": list(SCENE_LABELS),
        "normalization": fs.config["normalization"],
        "model": {"name": config.model, "trainable_params": trainable_params(model),
                  "seed_reported_params": SEED_PARAMS.get(config.model), "macs": count_macs(model)},
        **artifacts.provenance(),
    }


def train(fs: FeatureSet, run_dir: Path, *, config: TrainConfig, resume: bool = False,
          workers: int = 2, log=print) -> dict:
    """Train ``config.model`` on ``fs``'s train split; return the final ``config.json`` dict."""
    import tensorflow as tf
    import tf_keras as keras

    from keras_asc.models import build_model

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
        from keras_asc.distill import teacher_identity

        cfg["distillation"] = teacher_identity(config.teachers, fs)
    if config.dir_p > 0:
        from keras_asc.augment import list_impulse_responses

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
        from keras_asc.distill import teacher_logits

        teacher, _ = teacher_logits(fs, run_dir, runs=config.teachers, log=log)
    if config.dir_p > 0:
        from keras_asc.augment import dir_feature_cache

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
    import pandas as pd

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


def load_run_model(run_dir: Path):
    """The best model of a finished run (uncompiled)."""
    import tf_keras as keras

    path = Path(run_dir) / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model; run `asc train --out {run_dir}` first")
    recorded = _recorded_model_sha256(Path(run_dir))
    if recorded is not None and artifacts.sha256_file(path) != recorded:
        raise RunError(f"{path}: is not the model this run trained (its sha256 differs from config.json's "
                       "model_sha256): it was replaced or edited. Restore it, or train again (`asc train`)")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=False)
    except Exception as e:  # a truncated zip, another file renamed .keras: Keras raises many types
        raise RunError(f"{path}: not a readable Keras model ({type(e).__name__}: {str(e)[:200]}); it is truncated "
                       "or not a model. Restore it, or train again (`asc train`)") from None


def _recorded_model_sha256(run_dir: Path) -> str | None:
    path = run_dir / "config.json"
    if not path.is_file():
        return None
    cfg = artifacts.read_json(path)
    return cfg.get("model_sha256") if isinstance(cfg, dict) and cfg.get("status") == "done" else None


class RunError(AscError, ValueError):
    """A run folder that is not a (finished) training run."""


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A training run's ``config.json`` as the later stages read it: each field its typed record
    (the file is written by :func:`train`; ``record`` keeps the whole JSON for what no stage reads
    as a field: provenance, the model's counts, distillation and augmentation records)."""

    train: TrainConfig
    features: FeatureConfig
    normalization: Normalization
    input_shape: tuple[int, int, int]  # (mel bands, frames per inference, 1)
    labels: tuple[str, ...]
    model_name: str
    feature_key: str | None  # the feature cache entry trained on (None: not recorded)
    status: str  # "training" or "done"
    model_sha256: str | None  # of model.keras when training finished
    record: dict

    @classmethod
    def from_dict(cls, cfg: dict, *, path: Path) -> "RunRecord":
        """Parse ``cfg`` (read from ``path``); a missing or edited field is named (:class:`RunError`),
        never a ``KeyError`` deep in a stage."""
        def bad(field: str, why: str) -> RunError:
            return RunError(f"{path}: field {field!r} {why}; config.json is written by `asc train` and read by "
                            "every later stage, so it must not be edited. Restore it, or train the run again")

        parsed = {}
        for field, parse in (("train", TrainConfig.from_dict), ("features", FeatureConfig.from_dict),
                             ("normalization", Normalization.from_dict)):
            if not isinstance(cfg.get(field), dict):
                raise bad(field, "is missing or not an object")
            try:
                parsed[field] = parse(cfg[field])
            except (KeyError, TypeError, ValueError) as e:
                raise bad(field, f"does not parse ({type(e).__name__}: {e})") from None
        shape = cfg.get("input_shape")
        if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
            raise bad("input_shape", f"is {shape!r}, not [mel bands, frames, 1]")
        mels, bands = parsed["features"].n_mels, len(parsed["normalization"].mean)
        if not shape[0] == mels == bands:
            raise bad("features", f"says {mels} mel bands, but input_shape has {shape[0]} and the normalization "
                      f"{bands}")
        if cfg.get("labels") != list(SCENE_LABELS):
            raise bad("labels", f"is {cfg.get('labels')!r}, not this version's scene labels in their order "
                      f"{list(SCENE_LABELS)} (the model's outputs are in that order)")
        if not isinstance(cfg.get("model"), dict) or not isinstance(cfg["model"].get("name"), str):
            raise bad("model", "is missing or has no 'name'")
        cache = cfg.get("feature_cache") if isinstance(cfg.get("feature_cache"), dict) else {}
        return cls(train=parsed["train"], features=parsed["features"], normalization=parsed["normalization"],
                   input_shape=tuple(shape), labels=tuple(cfg["labels"]), model_name=cfg["model"]["name"],
                   feature_key=cache.get("key"), status=str(cfg.get("status")), model_sha256=cfg.get("model_sha256"),
                   record=cfg)


def read_run_config(run_dir: Path, *, finished: bool = True) -> RunRecord:
    """``RUN_DIR/config.json`` as a :class:`RunRecord`; with ``finished`` (evaluate, export) a run
    whose training never finished is refused, naming how far it got and how to continue it."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunError(f"{path}: not a training run folder (no config.json); give the --out folder of `asc train`")
    cfg = artifacts.read_json(path)
    if not isinstance(cfg, dict) or cfg.get("stage") != "train":
        raise RunError(f"{path}: not written by `asc train`; give the --out folder of `asc train`")
    if finished and cfg.get("status") != "done":
        epochs = cfg.get("train", {}).get("epochs", "?") if isinstance(cfg.get("train"), dict) else "?"
        state = Path(run_dir) / "state.json"
        done = artifacts.read_json(state).get("epoch", 0) if state.is_file() else 0
        raise RunError(f"{run_dir}: training has not finished ({done} of {epochs} epochs, status "
                       f"{cfg.get('status')!r}): it was interrupted. Continue it with `asc train --out {run_dir} "
                       "--resume` and the same options, or delete the folder to start again")
    return RunRecord.from_dict(cfg, path=path)


def warn_if_other_training_data(run: RunRecord, fs: FeatureSet, *, run_dir: Path, data_dir: Path, log=print) -> None:
    """Warn when ``fs`` (the features of ``--data``) is not the data the run was trained on: the
    normalization computed from its train split differs from the one the run recorded (or
    ``config.json``'s was edited). Figures and calibration are then on other data; the run's
    normalization is still the one used. The same features (cache key) with another normalization
    can only be an edited ``config.json``: refused (:class:`RunError`)."""
    if fs.config["normalization"] == run.record["normalization"]:
        return
    if fs.config.get("key") == run.feature_key:
        raise RunError(f"{Path(run_dir) / 'config.json'}: field 'normalization' differs from the one computed from "
                       "the very features the run was trained on (same cache key): it was edited. config.json is "
                       "written by `asc train` and read by every later stage; restore it, or train the run again")
    log(f"warning: --data {data_dir}: its train split is not the data {run_dir} was trained on (the log-mel "
        "normalization computed from it differs from the one in the run's config.json); the run's normalization "
        "is used, and what follows is on other data. Give the run's own dataset with --data if that was not "
        "intended")


def feature_set_for_run(run: RunRecord, data_dir: Path, work_dir: Path, *, run_dir: Path, workers: int = 2,
                        log=print) -> FeatureSet:
    """The feature cache for ``data_dir`` computed with the run's feature parameters."""
    from keras_asc.dataset import train_split_of_run
    from keras_asc.feature_cache import build_feature_cache

    fs = build_feature_cache(data_dir, work_dir, config=run.features, workers=workers, log=log,
                             train_split=train_split_of_run(run.record))
    warn_if_other_training_data(run, fs, run_dir=run_dir, data_dir=data_dir, log=log)
    return fs


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
