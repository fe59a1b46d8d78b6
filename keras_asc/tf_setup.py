"""The one place that sets up TensorFlow for this project: import it before TensorFlow.

* ``TF_USE_LEGACY_KERAS=1``: ``tf.keras`` is tf_keras (Keras 2), never Keras 3, which
  tensorflow-model-optimization cannot handle;
* ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ info and warning lines off.

Both are defaults: a value the user set in the environment wins. Every module that imports
TensorFlow or tf_keras (directly or through a function it calls) imports this module first.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
