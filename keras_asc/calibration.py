"""The representative inputs of a trained run (:func:`calibration_set`): a stratified,
deterministic sample of its training split, as the int8 conversion calibrates on and the
compression check compares on."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from keras_asc.dataset import stratified_sample
from keras_asc.feature_cache import FeatureSet
from keras_asc.features import Normalization
from keras_asc.windows import WindowPlan, split_windows


@dataclasses.dataclass(frozen=True)
class CalibrationSet:
    """The calibration clips of a run and their inputs."""

    clips: pd.DataFrame  # the chosen rows of the train table (filename, scene_label, device, ...)
    features: np.ndarray  # their log-mel features, (clips, n_mels, frames) float32, not normalized
    windows: WindowPlan | None  # how each clip is cut into inferences (None: the whole clip)

    def split(self, x: np.ndarray) -> np.ndarray:
        """``x`` ``(clips, ...)`` as the model sees it: every window of each clip when the run has
        windows, ``(clips * windows per clip, ..., window frames, ...)``; else ``x`` itself."""
        if self.windows is None:
            return x
        return split_windows(x, window=self.windows.frames, hop=self.windows.hop)

    def inputs(self, normalization: Normalization) -> np.ndarray:
        """The float model's inputs: normalized with ``normalization`` and split into windows,
        ``(n, n_mels, frames, 1)`` float32."""
        return self.split(normalization.apply(self.features)[..., None])


def calibration_set(fs: FeatureSet, *, size: int, seed: int, windows: WindowPlan | None) -> CalibrationSet:
    """``size`` clips of ``fs``'s train split, stratified over scene x device
    (:func:`keras_asc.dataset.stratified_sample`; same features + size + seed -> same clips)."""
    clips = stratified_sample(fs.table("train"), size=size, seed=seed)
    return CalibrationSet(clips=clips, features=fs.features("train")[clips.index.to_numpy()], windows=windows)
