"""keras_asc.finetune: the fine-tuning configuration QAT and clustering start from."""
from __future__ import annotations

import pytest

from keras_asc.finetune import finetune_config
from keras_asc.training_config import TrainConfig


def test_finetune_config_turns_mixup_off_and_divides_the_learning_rate():
    run = TrainConfig(mixup_alpha=0.3, learning_rate=4e-3, seed=1)
    ft = finetune_config(run, seed=7, learning_rate_divisor=8.0)
    assert (ft.mixup_alpha, ft.seed) == (0.0, 7)
    assert ft.learning_rate == pytest.approx(run.learning_rate / 8.0)
