"""ResNet11 training throughput at 128 x 288, and the tf.data pipeline's cost, in one run.

    .venv/bin/python benchmarks/bench_training.py [--clips 512] [--epochs 2]

Fits the same model on the same random features twice: (a) through the training pipeline of
keras_asc.training (index batches -> gather -> augmentation -> prefetch) and (b) with
``model.fit`` on the arrays held in memory. Prints samples/s for both and the ratio a/b
(1.0 = the pipeline costs nothing). The first epoch of each is a warm-up and not timed.
"""
from __future__ import annotations

import argparse
import time

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)


def main() -> None:
    import numpy as np
    import tf_keras as keras

    from keras_asc.models import build_model
    from keras_asc.training_config import TrainConfig
    from keras_asc.training_data import make_train_pipeline
    from keras_asc.training_losses import compile_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--device-aug", type=float, default=0.3)
    ap.add_argument("--mixup", type=float, default=0.3)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((a.clips, 128, 288, 1)).astype(np.float32)
    y = rng.integers(0, 10, a.clips)
    cfg = TrainConfig(batch_size=32, device_aug=a.device_aug, mixup_alpha=a.mixup)
    rates = {}
    for mode in ("pipeline", "in_memory"):
        keras.utils.set_random_seed(0)
        model = build_model("resnet11", (128, 288, 1))
        compile_model(model, cfg)
        if mode == "pipeline":
            data = dict(x=make_train_pipeline(x, y, config=cfg, n_classes=10))
        else:
            data = dict(x=x, y=np.eye(10, dtype=np.float32)[y], batch_size=cfg.batch_size, shuffle=True)
        model.fit(**data, epochs=1, verbose=0)  # warm-up: graph tracing, thread pools
        t = time.perf_counter()
        model.fit(**data, epochs=a.epochs, verbose=0)
        rates[mode] = a.clips * a.epochs / (time.perf_counter() - t)
        print(f"{mode:>9}: {rates[mode]:.1f} samples/s (ResNet11, 128 x 288, batch 32, {a.clips} clips x {a.epochs} epochs)")
    print(f"pipeline / in-memory throughput: {rates['pipeline'] / rates['in_memory']:.2f} "
          f"(augmentation: device EQ {a.device_aug}, mixup {a.mixup})")


if __name__ == "__main__":
    main()
