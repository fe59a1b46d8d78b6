"""DCASE-style scores: accuracy and multi-class log loss, overall, per device and per scene.

Log loss is DCASE's (and scikit-learn's): the mean over clips of ``-log p[true class]`` with
probabilities clipped to ``[1e-15, 1]``. Per-device rows mark s4-s6 as unseen in training.
The same functions score the float model here and TFLM's int8 outputs in firmware_harness.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from keras_asc import artifacts, records
from keras_asc.dataset import DEVICES, SCENE_LABELS, UNSEEN_DEVICES
from keras_asc.parallel import DEFAULT_WORKERS
from keras_asc.run_record import feature_set_for_run, load_run_model, read_run_config
from keras_asc.training_data import load_split
from keras_asc.windows import WindowPlan, combine_windows, split_windows

EPS = 1e-15


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """``probs``: (n, n_classes), rows summing to ~1; ``labels``: (n,) int. Returns nats."""
    p = np.clip(probs[np.arange(len(labels)), labels], EPS, 1.0)
    return float(-np.mean(np.log(p)))


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def score_table(probs: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
    """One row per group: overall, each device present (DCASE order), each scene.

    ``table`` needs ``label`` and ``device`` columns, in the row order of ``probs``.
    Columns: group, name, clips, accuracy, log_loss, unseen_device.
    """
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or len(probs) != len(table) or not np.isfinite(probs).all():
        raise ValueError(f"probabilities must be finite, shape ({len(table)}, n_classes); got {probs.shape}")
    labels = table["label"].to_numpy()
    rows = [("overall", "all", np.ones(len(table), bool))]
    rows += [("device", d, (table["device"] == d).to_numpy()) for d in DEVICES if (table["device"] == d).any()]
    rows += [("scene", s, labels == i) for i, s in enumerate(SCENE_LABELS) if (labels == i).any()]
    return pd.DataFrame([{
        "group": g, "name": n, "clips": int(m.sum()),
        "accuracy": accuracy(probs[m], labels[m]), "log_loss": log_loss(probs[m], labels[m]),
        "unseen_device": g == "device" and n in UNSEEN_DEVICES,
    } for g, n, m in rows])


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int = len(SCENE_LABELS)) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (labels, predicted), 1)
    return cm


def plot_confusion(cm: np.ndarray, path: Path, *, title: str) -> None:
    import matplotlib  # heavy: Matplotlib takes a second to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: Matplotlib takes a second to import

    fig, ax = plt.subplots(figsize=(7, 6))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(SCENE_LABELS)), SCENE_LABELS, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(SCENE_LABELS)), SCENE_LABELS, fontsize=8)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure atomically (temp file, then rename) and close it."""
    import matplotlib.pyplot as plt  # heavy: Matplotlib takes a second to import

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    artifacts.atomic_write_bytes(Path(path), buf.getvalue())


def format_scores(scores: pd.DataFrame) -> str:
    """The score table for a terminal, unseen devices starred."""
    s = scores.copy()
    s["name"] = [f"{n}*" if u else n for n, u in zip(s["name"], s["unseen_device"])]
    s["accuracy"] = (100 * s["accuracy"]).map("{:.1f} %".format)
    s["log_loss"] = s["log_loss"].map("{:.3f}".format)
    return s.drop(columns="unseen_device").to_string(index=False) + "\n(* device unseen in training)"


def _windowed_probabilities(model, x: np.ndarray, y: np.ndarray, windows: WindowPlan) -> tuple[np.ndarray, dict]:
    """Clip probabilities of a windowed model (mean of its windows' probabilities), and the
    same clips scored by the other combination, softmax of the mean pre-softmax scores."""
    import tf_keras as keras  # heavy: loads TensorFlow

    xw = split_windows(x, window=windows.frames, hop=windows.hop)
    probs = combine_windows(model.predict(xw, batch_size=64, verbose=0), windows_per_clip=windows.per_clip)
    combination = {"used": "mean of window probabilities",
                   "mean_probabilities": {"accuracy": accuracy(probs, y), "log_loss": log_loss(probs, y)}}
    if isinstance(model.layers[-1], keras.layers.Softmax):  # the alternative: softmax of the mean scores
        scores = keras.Model(model.input, model.layers[-2].output).predict(xw, batch_size=64, verbose=0)
        mean = scores.astype(np.float64).reshape(len(x), windows.per_clip, -1).mean(axis=1)
        by_scores = np.exp(mean - mean.max(1, keepdims=True))
        by_scores /= by_scores.sum(1, keepdims=True)
        combination["mean_pre_softmax_scores"] = {"accuracy": accuracy(by_scores, y), "log_loss": log_loss(by_scores, y)}
    return probs, {"windows": records.to_json(windows),
                   "combination": combination}


def evaluate_run(run_dir: Path, data_dir: Path, work_dir: Path, *, workers: int = DEFAULT_WORKERS,
                 log=print) -> pd.DataFrame:
    """Score a run's best model on the evaluate split; write metrics.json/.csv, predictions.csv
    and confusion.png into ``run_dir``. Returns the score table."""
    run_dir = Path(run_dir)
    run = read_run_config(run_dir)
    fs = feature_set_for_run(run, data_dir, work_dir, run_dir=run_dir, workers=workers, log=log)
    x, y = load_split(fs, "evaluate", normalization=run.normalization)
    table = fs.table("evaluate")
    model = load_run_model(run_dir)
    tc = run.train
    windows = tc.windows(x.shape[2])
    extra = {}
    if windows is None:
        probs = model.predict(x, batch_size=64, verbose=0)
    else:
        probs, extra = _windowed_probabilities(model, x, y, windows)
    scores = score_table(probs, table)
    artifacts.atomic_write_text(run_dir / "metrics.csv", scores.to_csv(index=False))
    artifacts.write_json(run_dir / "metrics.json", {
        "stage": "evaluate", "data_dir": str(Path(data_dir).resolve()), "split": "evaluate",
        "model_sha256": artifacts.sha256_file(run_dir / "model.keras"),
        "scores": scores.to_dict(orient="records"), **extra, **artifacts.provenance()})
    pred = pd.DataFrame(probs, columns=list(SCENE_LABELS))
    pred.insert(0, "filename", table["filename"])
    pred.insert(1, "device", table["device"])
    pred.insert(2, "scene_label", table["scene_label"])
    artifacts.atomic_write_text(run_dir / "predictions.csv", pred.to_csv(index=False, float_format="%.6f"))
    plot_confusion(confusion_matrix(y, probs.argmax(axis=1)), run_dir / "confusion.png",
                   title=f"{run.model_name}: evaluate split, float")
    return scores


def metrics_up_to_date(run_dir: Path, data_dir: Path) -> bool:
    """Whether ``run_dir/metrics.json`` scores the run's current ``model.keras`` (by sha256) on
    ``data_dir``: then ``asc evaluate`` need not run again."""
    path = Path(run_dir) / "metrics.json"
    model = Path(run_dir) / "model.keras"
    try:
        metrics = artifacts.read_json(path)
    except (FileNotFoundError, ValueError):
        return False
    return (model.is_file() and metrics.get("model_sha256") == artifacts.sha256_file(model)
            and metrics.get("data_dir") == str(Path(data_dir).resolve()))
