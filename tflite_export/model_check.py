"""Placeholder of helper "check"'s model check (replaced by h-check at merge): the one check of a
.tflite's bytes before any interpreter. This placeholder accepts every model."""
from __future__ import annotations

import dataclasses

from keras_asc.errors import AscError


class ModelCheckError(AscError, ValueError):
    """A flatbuffer no interpreter should be given; the message names the tensor or operator."""


@dataclasses.dataclass(frozen=True)
class ModelCheckReport:
    """What the check found besides refusals (placeholder: nothing)."""

    source: str
    warnings: tuple[str, ...] = ()


def check_model(model_bytes: bytes, *, source: str) -> ModelCheckReport:
    """Check ``model_bytes`` (a .tflite's bytes, named ``source`` in messages); placeholder: accepts."""
    return ModelCheckReport(source=source)
