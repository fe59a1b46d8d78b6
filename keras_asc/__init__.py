"""keras_asc: TAU Urban Acoustic Scenes 2020 Mobile -> log-mel features -> tf_keras models.

The public API (keyword-only functions taking and returning typed records; docs/api.md)::

    import keras_asc
    data = keras_asc.make_dataset(out_dir=Path("work/data"), size="tiny")
    fs = keras_asc.extract_features(data_dir=data, work_dir=Path("work"), config=keras_asc.FeatureConfig.seed())
    run = keras_asc.train(features=fs, run_dir=Path("work/run"), config=keras_asc.TrainConfig(epochs=1))
    scores = keras_asc.evaluate(run_dir=Path("work/run"), data_dir=data, work_dir=Path("work"))

Nothing here imports TensorFlow at import time: the names are imported on first use
(:mod:`keras_asc.lazy_names`), and modules that need TensorFlow import it themselves
(see :mod:`keras_asc.tf_setup`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from keras_asc.lazy_names import lazy_names

_API = "keras_asc.api"
_NAMES = {**dict.fromkeys(("make_dataset", "describe_dataset", "dataset_clip_seconds", "extract_features", "check_run_folder", "train",
                           "evaluate", "format_scores", "read_run", "dataset_split", "clip_log_mel",
                           "confusion_counts", "run_is_finished", "metrics_are_current",
                           "extract_impulse_response_features", "list_models", "model_summary", "DatasetDescription",
                           "ModelSummary"), _API),
          "FeatureConfig": "keras_asc.features", "HOPS_BY_FRAME_RATE": "keras_asc.features", "FeatureSet": "keras_asc.feature_cache",
          "MODELS": "keras_asc.model_registry", "ModelEntry": "keras_asc.model_registry",
          "TrainConfig": "keras_asc.training_config", "RunRecord": "keras_asc.run_record",
          "AscError": "keras_asc.errors", "DEFAULT_WORKERS": "keras_asc.parallel",
          "dataset_layout": "keras_asc.dataset", "SCENE_LABELS": "keras_asc.dataset", "LAYOUTS": "keras_asc.layouts", "DatasetError": "keras_asc.layouts",
          "TRAIN_SPLITS": "keras_asc.layouts", "LOSSES": "keras_asc.training_config",
          "KD_TEMPERATURE_RANGE": "keras_asc.distill", "kd_weight_warnings": "keras_asc.distill",
          "check_teachers": "keras_asc.distill", "check_impulse_responses": "keras_asc.augment",
          "impulse_response_warnings": "keras_asc.augment", "ImpulseResponseError": "keras_asc.augment",
          "window_plan": "keras_asc.windows", "WindowPlan": "keras_asc.windows"}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES)

if TYPE_CHECKING:  # the same names for type checkers and readers
    from keras_asc.api import (DatasetDescription, ModelSummary, check_run_folder, clip_log_mel, confusion_counts,  # noqa: F401
                               extract_impulse_response_features, metrics_are_current, run_is_finished,  # noqa: F401
                               dataset_split, read_run, dataset_clip_seconds, describe_dataset, evaluate,  # noqa: F401
                               extract_features, format_scores, list_models, make_dataset, model_summary, train)  # noqa: F401
    from keras_asc.augment import ImpulseResponseError, check_impulse_responses, impulse_response_warnings  # noqa: F401
    from keras_asc.dataset import SCENE_LABELS, dataset_layout  # noqa: F401
    from keras_asc.distill import KD_TEMPERATURE_RANGE, check_teachers, kd_weight_warnings  # noqa: F401
    from keras_asc.errors import AscError  # noqa: F401
    from keras_asc.layouts import LAYOUTS, TRAIN_SPLITS, DatasetError  # noqa: F401
    from keras_asc.model_registry import MODELS, ModelEntry  # noqa: F401
    from keras_asc.feature_cache import FeatureSet  # noqa: F401
    from keras_asc.features import HOPS_BY_FRAME_RATE, FeatureConfig  # noqa: F401
    from keras_asc.parallel import DEFAULT_WORKERS  # noqa: F401
    from keras_asc.run_record import RunRecord  # noqa: F401
    from keras_asc.training_config import LOSSES, TrainConfig  # noqa: F401
    from keras_asc.windows import WindowPlan, window_plan  # noqa: F401
