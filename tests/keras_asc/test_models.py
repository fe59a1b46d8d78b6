import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from keras_asc.model_registry import MODELS, model_names
from keras_asc.models import build_model, count_macs, register, trainable_params


@pytest.mark.parametrize("name", model_names())
def test_every_model_builds_and_trains_one_step(name):
    keras.utils.set_random_seed(0)
    model = build_model(name, (32, 40, 1), 10, width=0.25)
    x = tf.random.normal((2, 32, 40, 1), seed=1)
    with tf.GradientTape() as tape:
        p = model(x, training=True)
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(tf.one_hot([1, 2], 10), p))
    grads = tape.gradient(loss, model.trainable_weights)
    assert p.shape == (2, 10)
    np.testing.assert_allclose(p.numpy().sum(axis=1), 1.0, rtol=1e-5)
    assert np.isfinite(p.numpy()).all() and np.isfinite(loss.numpy())
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    assert model(x[:1], training=False).shape == (1, 10)  # batch 1 works
    assert count_macs(model) > 0


@pytest.mark.parametrize("name", ["resnet11", "resnet11_se", "resnet11_cbam", "cnn5", "cnn5_small", "cnn9"])
def test_seed_parameter_counts(name):
    model = build_model(name, (128, 288, 1), 10)
    n = trainable_params(model)
    if name.startswith("resnet11"):
        assert n == MODELS[name].seed_params
    else:  # conv + classifier weights match; ours adds BatchNorm gamma/beta
        bn = sum(int(np.prod(w.shape)) for w in model.trainable_weights if "_bn/" in w.name)
        assert n - bn == MODELS[name].seed_params


def test_resnet11_macs_at_128x288():
    """174,440,448 multiply-accumulates per inference (convolutions only; the DCASE 2022+ limit is 30 M)."""
    assert count_macs(build_model("resnet11", (128, 288, 1))) == 174_440_448


def test_unknown_model():
    with pytest.raises(ValueError, match="registered: cnn5"):
        build_model("resnet12", (32, 40, 1))


def test_a_builder_of_an_undeclared_model_is_refused():
    with pytest.raises(ValueError, match="not declared in keras_asc/model_registry.py"):
        register("not_a_declared_model")(lambda **kw: None)
