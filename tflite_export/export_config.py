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
    epochs (``--qat``, ``--qat-epochs``); ``qat_epochs`` has no effect without ``qat``.
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
