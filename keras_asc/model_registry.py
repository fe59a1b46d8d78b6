"""The model registry's entries: each model's name, what it is in one line and the parameter count
the seed reports for it, declared once and without TensorFlow, so that ``asc --help``, ``asc
train --help`` and :func:`keras_asc.list_models` name them at start-up. Each entry's builder lives
in :mod:`keras_asc.models`, registered against its name with ``@register(name)`` (which refuses a
name not declared here)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered model, as the help texts and ``asc models`` describe it."""

    name: str
    description: str  # one line
    seed_params: int | None = None  # trainable parameters the seed reports (128 x 288 input); None: not in the seed


MODELS: dict[str, ModelEntry] = {e.name: e for e in (
    ModelEntry("resnet11", "the seed's ResNet11 (section 4.3.1), the one under the 128 KiB int8 budget", 83572),
    ModelEntry("resnet11_se", "ResNet11 with squeeze-and-excitation after each block", 86516),
    ModelEntry("resnet11_cbam", "ResNet11 with CBAM attention after each block", 87011),
    ModelEntry("cnn5", "four 5x5 convolutions (64-512 channels) and a classifier (Table 4)", 4308480),
    ModelEntry("cnn5_small", "CNN5 with 3x3 kernels (Table 4)", 1554944),
    ModelEntry("cnn9", "eight 3x3 convolutions in pairs and a classifier (Table 4)", 4689344),
    ModelEntry("mobilenetv2", "MobileNetV2, alpha 1, ReLU (Table 4)", 1946994),
    ModelEntry("mobilenetv2_relu6", "MobileNetV2, alpha 1, ReLU6 (Table 4)", 1895386),
    ModelEntry("resnet18", "ResNet18, basic blocks 2-2-2-2 (Table 4)", 11168005),
    ModelEntry("dcase2024_baseline", "the DCASE 2024 Task 1 baseline (a simplified CP-Mobile)"),
)}


def model_names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(MODELS)
