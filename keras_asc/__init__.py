"""keras_asc: TAU Urban Acoustic Scenes 2020 Mobile -> log-mel features -> tf_keras models.

Nothing here imports TensorFlow at import time; modules that need it import it themselves
(see :mod:`keras_asc.tf_setup`).
"""
