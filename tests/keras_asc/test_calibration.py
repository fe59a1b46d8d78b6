"""keras_asc.calibration: the representative clips of a run, as the export calibrates on them."""
from __future__ import annotations

import numpy as np

from keras_asc.calibration import calibration_set
from keras_asc.windows import window_plan


def test_calibration_inputs_are_the_normalized_features_of_the_chosen_clips(tiny_features):
    calib = calibration_set(tiny_features, size=12, seed=0, windows=None)
    rows = tiny_features.table("train").index.get_indexer(calib.clips.index)
    expected = tiny_features.normalization.apply(tiny_features.features("train")[rows])[..., None]
    np.testing.assert_array_equal(calib.inputs(tiny_features.normalization), expected)


def test_calibration_inputs_hold_every_window_of_each_clip(tiny_features):
    frames = tiny_features.features("train").shape[2]
    plan = window_plan(frames=frames // 2, hop=frames // 4, clip_frames=frames)
    calib = calibration_set(tiny_features, size=12, seed=0, windows=plan)
    x = calib.inputs(tiny_features.normalization)
    assert x.shape == (len(calib.clips) * plan.per_clip, tiny_features.features("train").shape[1], plan.frames, 1)
