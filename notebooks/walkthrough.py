# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From audio to a validated int8 model: a walkthrough
#
# This notebook reads the artifacts of `asc demo` (generated data in the TAU 2020 Mobile
# layout, **not** TAU: its figures say the pipeline works, not how well a model classifies
# real scenes) and shows each stage: log-mel features, training, float evaluation, the int8
# flatbuffer's size, and what TFLM outputs against the float model.
#
# It only reads artifacts and calls the packages' public API (docs/api.md); if the demo has not
# been run in `ASC_WORK` it runs it first (a few minutes). The paired `.ipynb` is generated with
# jupytext (`jupytext --to ipynb notebooks/walkthrough.py`) and is not kept in git.

# %%
import os
from pathlib import Path

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import asc_cli
import firmware_harness
import keras_asc
import tflite_export
from keras_asc import SCENE_LABELS

WORK = Path(os.environ.get("ASC_WORK", "../work/demo"))
SIZE = os.environ.get("ASC_SIZE", "demo")

summary = WORK / "demo_summary.md"
if not summary.is_file():
    asc_cli.run_demo(WORK, size=SIZE, cfg=asc_cli.PipelineConfig())
RUN = next(p for p in sorted((WORK / "runs").iterdir()) if (p / "export" / "validation_report.json").is_file())
EXPORT = RUN / "export"
run = keras_asc.read_run(run_dir=RUN)
print("run:", RUN.name)

# %% [markdown]
# ## 1. One log-mel spectrogram per scene (device A, training split)

# %%
data_dir = Path(run.record["feature_cache"]["data_dir"])
feat = run.features
train = keras_asc.dataset_split(data_dir=data_dir, split="train")
fig, axes = plt.subplots(2, 5, figsize=(16, 6), sharex=True, sharey=True)
for ax, scene in zip(axes.ravel(), SCENE_LABELS):
    row = train[(train["scene_label"] == scene) & (train["device"] == "a")].iloc[0]
    m = keras_asc.clip_log_mel(path=row["path"], config=feat)
    ax.imshow(m, origin="lower", aspect="auto", cmap="magma")
    ax.set_title(scene, fontsize=9)
fig.suptitle(f"log-mel ({feat.n_mels} bands x {feat.n_frames} frames, dB)")
plt.show()

# %% [markdown]
# ## 2. Training curves

# %%
hist = pd.read_csv(RUN / "history.csv")
fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.5))
a1.plot(hist["epoch"], hist["loss"], label="train loss")
a1.plot(hist["epoch"], hist["val_log_loss"], label="validation log loss")
a1.legend()
a2.plot(hist["epoch"], hist["accuracy"], label="train accuracy")
a2.plot(hist["epoch"], hist["val_accuracy"], label="validation accuracy")
a2.legend()
plt.show()
print("best epoch:", run.record.get("best_epoch"))

# %% [markdown]
# ## 3. Confusion matrix of the float model (evaluate split)

# %%
pred = pd.read_csv(RUN / "predictions.csv")
labels = pred["scene_label"].map(SCENE_LABELS.index).to_numpy()
cm = keras_asc.confusion_counts(labels=labels, predicted=pred[list(SCENE_LABELS)].to_numpy().argmax(1))
pd.DataFrame(cm, index=SCENE_LABELS, columns=SCENE_LABELS)

# %% [markdown]
# ## 4. Float against int8 as TFLM runs it, per device

# %%
report = firmware_harness.read_validation(export_dir=EXPORT)
dev = pd.DataFrame([s for s in report.scores if s.group == "device"]).set_index("name")
dev = dev[["float_accuracy", "int8_accuracy"]] * 100
dev.plot.bar(figsize=(8, 3.5), ylabel="accuracy (%)", title="evaluate split (s4-s6 unseen in training)")
plt.show()
print("LiteRT vs TFLM:", {k: v.clips_with_any_difference for k, v in report.agreement_with_tflm.items()})

# %% [markdown]
# ## 5. Where the flatbuffer's bytes go

# %%
tensors = pd.DataFrame([dict(name=t.name, dtype=t.dtype, bytes=t.nbytes)
                        for t in tflite_export.model_tensors(path=EXPORT / "model.tflite") if t.constant])
tensors["kind"] = np.where(tensors["dtype"] == "INT32", "biases (int32)", "weights (int8)")
size = tflite_export.read_export_record(export_dir=EXPORT).size
breakdown = tensors.groupby("kind")["bytes"].sum()
breakdown["flatbuffer structure, names, quantization"] = size.flatbuffer_bytes - tensors["bytes"].sum()
print(breakdown.to_string())
print(f"total {size.flatbuffer_bytes:,d} of {size.budget_bytes:,d} bytes; "
      f"arena {report.arena.measured_min_bytes:,d} bytes measured")
