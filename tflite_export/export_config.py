"""What ``asc export`` is asked to do: :class:`ExportConfig`, every option of
:func:`tflite_export.export.export_run` with its default, declared here once.

The CLI (``asc export``), the pipeline (demo and grid) and the benchmarks build one
``ExportConfig`` and pass it whole; a default changes here and nowhere else. The arena probes
(:data:`ArenaProbes`) come from the caller (``asc export`` builds them from ``firmware_harness``),
so this package never depends on the firmware builds.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Mapping

from keras_asc.parallel import DEFAULT_WORKERS
from tflite_export.compression import CompressionConfig

DEFAULT_BUDGET = 131072  # bytes: the 128 KiB flatbuffer budget
DEFAULT_CALIBRATION = 200  # representative clips (stratified over scene x device of the training split)
DEFAULT_QAT_EPOCHS = 3  # quantize-aware fine-tuning epochs (only with qat)
#: QAT's first epoch runs at the run's learning rate x this, then decays by a cosine (TrainConfig's
#: formula) to its last epoch's rate: fine-tuning a converged float model wants a small rate
#: (docs/benchmarks.md, Compression: why QAT lost before)
DEFAULT_QAT_LEARNING_RATE_FRACTION = 0.01
#: part of the run's training split QAT sets aside (stratified by scene, drawn by ``seed``) to keep its
#: best epoch and to compare itself with PTQ; never the evaluate split
DEFAULT_QAT_HOLDOUT_FRACTION = 0.2
#: --dcase-year default: the rules of the challenge that used the data's layout (keras_asc.layouts)
DCASE_YEAR_AUTO = "auto"


@dataclasses.dataclass(frozen=True)
class BuildProbe:
    """What one firmware build of the staged export measured."""

    arena_bytes: int  # the arena that build needs
    image_flash_bytes: int | None = None  # text + data of its linked microcontroller image (None: a host build)
    # microcontroller -> estimated ms per inference, from the linked image's instruction counts (Cortex-M builds)
    estimated_ms: dict[str, float] = dataclasses.field(default_factory=dict)


#: name -> callable(staged export folder) -> what that build measured
ArenaProbes = Mapping[str, Callable[[Path], BuildProbe]]


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Every option of one export (the names are ``asc export``'s options, ``-`` as ``_``).

    ``budget``: max flatbuffer bytes (``--budget``); lowered by ``mcu_target``.
    ``calibration_size``: representative clips requested (``--calibration-size``); ``seed`` picks them
    (and seeds QAT and clustering).
    ``qat``, ``qat_epochs``: quantize-aware fine-tuning instead of post-training quantization, and its
    epochs (``--qat``, ``--qat-epochs``); ``qat_epochs`` and the other ``qat_`` fields have no effect
    without ``qat``.
    ``qat_learning_rate_fraction``: QAT's first-epoch learning rate as a fraction of the run's (``--qat-lr-fraction``).
    ``qat_final_learning_rate_fraction``: its last epoch's, the same way (None: the run's own final rate,
    its ``min_learning_rate``, where the float model converged); the rate follows a cosine in between.
    ``qat_holdout_fraction``: part of the training split set aside (``--qat-holdout``): QAT keeps its
    epoch with the best int8-simulated accuracy there and is compared with PTQ there.
    ``qat_choose_better``: when PTQ's int8 accuracy on the held-out clips is higher than QAT's, the
    export's ``model.tflite`` is the PTQ model and the QAT model is kept beside it (False,
    ``--qat-always``: the QAT model whatever the comparison says; the comparison is still reported).
    ``compression``: cluster + LUT-compress the weights (``--compress*``; None: no compression); cannot
    be combined with ``qat``.
    ``workers``: worker processes of the feature cache (``--workers``).
    ``arena_probes``: firmware builds whose arena needs are measured on the staged export (``--arena-targets``;
    None or empty: only TFLM's Python runtime).
    ``ram_budget``: max firmware RAM estimate in bytes (``--ram-budget``; None: no limit); lowered by ``mcu_target``.
    ``mcu_target``: a name of :data:`tflite_export.mcu_targets.MCU_TARGETS` (``--target``; None: none).
    ``export_dir``: where the export goes (``--out``; None: ``RUN_DIR/export``).
    ``dcase_year``: the DCASE rules checked (``--dcase-year``): a year, :data:`DCASE_YEAR_AUTO` (the
    data layout's year) or None (no check).
    ``dcase_refuse``: over a DCASE limit refuses the export (False: a warning; the demo and the grid,
    which compare models)."""

    budget: int = DEFAULT_BUDGET
    calibration_size: int = DEFAULT_CALIBRATION
    seed: int = 0
    qat: bool = False
    qat_epochs: int = DEFAULT_QAT_EPOCHS
    compression: CompressionConfig | None = None
    workers: int = DEFAULT_WORKERS
    arena_probes: ArenaProbes | None = None
    ram_budget: int | None = None
    mcu_target: str | None = None
    export_dir: Path | None = None
    dcase_year: int | str | None = DCASE_YEAR_AUTO
    dcase_refuse: bool = True
    qat_learning_rate_fraction: float = DEFAULT_QAT_LEARNING_RATE_FRACTION
    qat_final_learning_rate_fraction: float | None = None
    qat_holdout_fraction: float = DEFAULT_QAT_HOLDOUT_FRACTION
    qat_choose_better: bool = True

    def __post_init__(self) -> None:
        final = self.qat_final_learning_rate_fraction
        if not (0.0 < self.qat_learning_rate_fraction <= 1.0 and (final is None or 0.0 < final <= 1.0)
                and 0.0 < self.qat_holdout_fraction < 1.0):
            raise ValueError("invalid QAT settings (learning-rate fractions in (0, 1], held-out fraction in (0, 1)): "
                             f"{self.qat_learning_rate_fraction}, {final}, {self.qat_holdout_fraction}")
