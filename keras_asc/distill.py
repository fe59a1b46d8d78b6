"""Knowledge distillation from an ensemble of this project's finished runs (``asc train --teacher``).

The loss, as CP-JKU write it (Schmid et al., CP-Mobile / EfficientAT; Hinton et al. 2015)::

    loss = (1 - A) * CE(labels, student) + A * T^2 * KL(softmax(teacher / T) || softmax(student / T))

``A`` = ``--kd-weight``, ``T`` = ``--kd-temperature``, ``teacher`` = the mean of the teachers'
logits (pre-softmax scores). The label part is the run's ``--loss`` (cross-entropy or focal).

**Logits.** Every registered model ends in a ``Softmax`` layer; a teacher's logits are the output
of the layer before it. The student's logits are what the softmax took (tf_keras keeps them on
the probabilities tensor); where they are not available the log-probabilities stand in, which is
exact for the loss (``softmax(log p / T)`` = ``softmax(z / T)``: a softmax ignores a constant shift).

**Computed once.** The teachers' logits of every training clip are computed before the first
epoch and stored in the student's run folder, ``RUN/teacher_logits/<key>.npy`` (float32,
``(n_train, n_classes)``), ``key`` a hash of each teacher's ``model.keras`` sha256, the feature
cache key and this module's version; a resumed run reuses them, a changed teacher or cache gets new.

**Windows and crops.** The stored target is per clip: a teacher trained on whole clips sees the
clip; a windowed teacher (``--window-frames``) classifies each of its windows and its clip logits
are the mean of the windows' logits. A windowed student trains on random crops (and mixup mixes
the targets with the inputs); each crop learns its clip's teacher logits. Per-crop teacher
targets would need the teachers on every crop of every epoch, which is what storing avoids.

**Refused teachers** (:class:`TeacherError`, before any work): not a finished run of ``asc train``,
other features (the whole :class:`keras_asc.features.FeatureConfig`), another class list, a
``model.keras`` changed since its training finished, a model without a final softmax.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from keras_asc import artifacts
from keras_asc.dataset import SCENE_LABELS
from keras_asc.errors import AscError
from keras_asc.run_record import RunError, load_run_model, read_run_config
from keras_asc.windows import split_windows

#: Bumped whenever the stored teacher logits change their meaning.
TEACHER_LOGITS_VERSION = 1
#: The ``--kd-temperature`` values whose term the float32 loss computes. Above the maximum the
#: softened distributions approach uniform faster than float32 resolves them: T^2 * KL, which tends to a
#: constant, came out of float32 with a relative error of 8.8e-5 at T = 100, 4.6e-3 at 1,000 and 0.55 at
#: 10,000, and T^2 overflows float32 above about 1.8e19 (non-finite loss). Below the minimum T^2 * KL
#: vanishes with T (it was 6 % of its T = 10 value at T = 0.1, 0.6 % at 0.01). Measured on 2,000 rows of 10
#: synthetic logits (teacher N(0, 3^2), student = teacher + N(0, 0.5^2)), float32 against float64.
KD_TEMPERATURE_RANGE = (0.1, 100.0)


def kd_weight_warnings(weight: float, *, teachers: tuple[str, ...]) -> list[str]:
    """Suspect but usable ``--kd-weight`` values with ``teachers``: 0 (the teachers' term is zero:
    they are loaded and scored for nothing) and 1 (the label term is zero: the labels are never used)."""
    if not teachers:
        return []
    named = ", ".join(str(t) for t in teachers)
    if weight == 0:
        return [f"--kd-weight 0: the distillation term of --teacher {named} is zero, so the teacher(s) have no "
                "effect (their logits are still computed); give a weight above 0, or leave out --teacher"]
    if weight == 1:
        return ["--kd-weight 1: the label term is zero, so the model learns from the teachers' logits alone "
                f"({named}) and never from the labels; give a weight below 1 to keep the labels"]
    return []


class TeacherError(AscError):
    """A --teacher run that cannot teach this student."""


def check_teachers(runs: tuple[str, ...], *, features) -> list:
    """Each teacher run's ``config.json`` (a :class:`keras_asc.training.RunRecord`), after checking it can
    teach a student on ``features`` (a :class:`keras_asc.features.FeatureConfig`); raises
    :class:`TeacherError` naming the run and the fix."""
    configs = []
    for run in runs:
        try:
            cfg = read_run_config(Path(run))
        except RunError as e:
            raise TeacherError(f"--teacher {run}: {e}") from None
        theirs = cfg.features
        if theirs != features:
            raise TeacherError(f"--teacher {run}: trained on other features ({theirs.describe()}, "
                               f"{theirs.clip_seconds:g} s clips) than this run's ({features.describe()}, "
                               f"{features.clip_seconds:g} s clips); give the student the teacher's frames per "
                               "second, mel bands and clip length (asc train: --frames-per-second/--n-mels/"
                               "--clip-seconds; asc grid: --frames/--mels/--clip-seconds), or train a teacher "
                               "with the student's")
        if list(cfg.labels) != list(SCENE_LABELS):
            raise TeacherError(f"--teacher {run}: its classes {list(cfg.labels)} are not this version's "
                               f"{list(SCENE_LABELS)}; train the teacher again with this version")
        model = Path(run) / "model.keras"
        if not model.is_file():
            raise TeacherError(f"--teacher {run}: no model.keras; train the teacher again (`asc train --out {run}`)")
        if cfg.model_sha256 and artifacts.sha256_file(model) != cfg.model_sha256:
            raise TeacherError(f"--teacher {run}: model.keras changed since its training finished (sha256 differs "
                               "from config.json's model_sha256); train the teacher again or restore its model")
        configs.append(cfg)
    return configs


def logits_model(model, *, run: str = "the model"):
    """A model sharing ``model``'s weights whose output is the input of its final ``Softmax`` layer."""
    import tf_keras as keras  # TensorFlow takes seconds to import: only when a teacher scores

    if not isinstance(model.layers[-1], keras.layers.Softmax):
        raise TeacherError(f"--teacher {run}: its model does not end in a Softmax layer, so its logits are unknown; "
                           "use a teacher built by keras_asc.models")
    return keras.Model(model.input, model.layers[-2].output)


def clip_logits(model, x: np.ndarray, *, train_config, run: str = "the model", batch_size: int = 64) -> np.ndarray:
    """A teacher's logits per clip: ``x`` ``(n, mels, frames, 1)`` normalized as the teacher was trained ->
    float64 ``(n, n_classes)``; a windowed teacher's clip logits are the mean over its windows."""
    scores = logits_model(model, run=run)
    plan = train_config.windows(x.shape[2])
    if plan is None:
        return scores.predict(x, batch_size=batch_size, verbose=0).astype(np.float64)
    w = scores.predict(split_windows(x, window=plan.frames, hop=plan.hop), batch_size=batch_size, verbose=0)
    return w.astype(np.float64).reshape(len(x), plan.per_clip, -1).mean(axis=1)


def teacher_identity(runs: tuple[str, ...], fs) -> dict:
    """What the stored logits depend on: each teacher's model.keras sha256, the feature cache key."""
    return {"version": TEACHER_LOGITS_VERSION, "feature_cache": fs.config["key"],
            "teachers": [{"run": str(Path(r).resolve()), "model_sha256": artifacts.sha256_file(Path(r) / "model.keras")}
                         for r in runs]}


def teacher_logits(fs, run_dir: Path, *, runs: tuple[str, ...], log=print) -> tuple[np.ndarray, dict]:
    """The mean of the teachers' logits of ``fs``'s training clips, float32 ``(n_train, n_classes)``,
    computed once and stored in ``run_dir/teacher_logits/``; returns it and its identity record."""
    identity = teacher_identity(runs, fs)
    key = artifacts.sha256_bytes(json.dumps(identity, sort_keys=True).encode())[:16]
    path = Path(run_dir) / "teacher_logits" / f"{key}.npy"
    raw = fs.features("train")
    n = raw.shape[0]
    if path.is_file():
        stored = np.load(path)
        if stored.shape == (n, len(SCENE_LABELS)) and np.isfinite(stored).all():
            log(f"distill: reusing the teachers' logits {path}")
            return stored, {**identity, "key": key}
    total = np.zeros((n, len(SCENE_LABELS)), np.float64)
    for run in runs:
        cfg = read_run_config(Path(run))
        norm = cfg.normalization
        x = np.empty((*raw.shape, 1), np.float32)
        for i in range(0, raw.shape[0], 256):
            x[i:i + 256, ..., 0] = norm.apply(raw[i:i + 256])
        total += compute_clip_logits(load_run_model(Path(run)), x, train_config=cfg.train,
                                     run=run)
        log(f"distill: teacher {run} ({cfg.model_name}) scored {n} training clips")
    mean = (total / len(runs)).astype(np.float32)
    if not np.isfinite(mean).all():
        raise TeacherError(f"--teacher {', '.join(runs)}: non-finite logits on the training clips; check the teachers")
    buf = io.BytesIO()
    np.save(buf, mean)
    path.parent.mkdir(parents=True, exist_ok=True)
    artifacts.atomic_write_bytes(path, buf.getvalue())
    artifacts.write_json(path.with_suffix(".json"), {**identity, "key": key, "shape": list(mean.shape)})
    return mean, {**identity, "key": key}


#: The function :func:`teacher_logits` calls per teacher (a seam: tests count its calls).
compute_clip_logits = clip_logits


# ----------------------------------------------------------------------------- the loss
def kd_loss(labels, teacher, student_logits, *, weight: float, temperature: float, label_loss):
    """Per-example distillation loss (TensorFlow).

    Args:
        labels: ``(batch, n_classes)`` float32 targets (one-hot, or mixed by mixup).
        teacher: ``(batch, n_classes)`` float32 teacher logits.
        student_logits: ``(batch, n_classes)`` float32 student logits (pre-softmax).
        weight: ``A`` in [0, 1]; temperature: ``T`` > 0.
        label_loss: ``f(labels, student_logits) -> (batch,)``, the label part.

    Returns:
        ``(batch,)`` float32: ``(1 - A) * label_loss + A * T^2 * KL(softmax(teacher/T) || softmax(student/T))``.
    """
    import tensorflow as tf  # TensorFlow takes seconds to import: only inside the training loss

    t = tf.nn.softmax(teacher / temperature, axis=-1)
    log_t = tf.nn.log_softmax(teacher / temperature, axis=-1)
    log_s = tf.nn.log_softmax(student_logits / temperature, axis=-1)
    kl = tf.reduce_sum(t * (log_t - log_s), axis=-1)
    return (1.0 - weight) * label_loss(labels, student_logits) + weight * temperature ** 2 * kl


def student_logits(y_pred):
    """The logits behind a softmax output: tf_keras' ``_keras_logits`` when the tensor carries them, else
    the log-probabilities (equal up to a per-row constant, which every softmax ignores)."""
    import tensorflow as tf  # TensorFlow takes seconds to import: only inside the training loss

    logits = getattr(y_pred, "_keras_logits", None)
    return logits if logits is not None else tf.math.log(tf.clip_by_value(y_pred, 1e-30, 1.0))
