"""tflite_export's public functions (``import tflite_export``; ``tflite_export.export_model(...)``):
int8 export of a trained run, the microcontroller table and the model check, keyword-only, taking
and returning typed records. ``asc export`` calls these and nothing else of the export stage.
"""
from __future__ import annotations

from pathlib import Path

from tflite_export.export import export_run
from tflite_export.export_config import ExportConfig
from tflite_export.export_result import ExportResult, read_export, reusable_export
from tflite_export.flatbuffer import TensorInfo, describe_tensors, read_model
from tflite_export.mcu_targets import MCU_TARGETS, McuTarget
from tflite_export.model_check import ModelCheckReport, check_model

__all__ = ["export_model", "list_mcus", "check_tflite", "read_export_record", "model_tensors", "reusable_export_record"]


def export_model(*, run_dir: Path, data_dir: Path, work_dir: Path, config: ExportConfig = ExportConfig(),
                 log=print) -> ExportResult:
    """Export ``run_dir``'s trained model as ``config`` asks: an int8 ``model.tflite`` (int8 input of
    shape (1, mel bands, frames, 1), int8 class scores (1, 10)) under ``config.budget`` bytes, its C
    sources for TFLM, the audio front end and ``config.json``, into ``config.export_dir`` (default
    ``run_dir/export``). Calibration clips come from ``data_dir``'s training split, features from the
    cache in ``work_dir``. Returns the record ``config.json`` holds (sizes, arena, RAM, fits)."""
    return export_run(Path(run_dir), Path(data_dir), Path(work_dir), config=config, log=log)


def list_mcus() -> dict[str, McuTarget]:
    """The microcontrollers an export is sized against (``--target``), by name: flash, SRAM blocks,
    core and clock."""
    return dict(MCU_TARGETS)


def check_tflite(*, path: Path) -> ModelCheckReport:
    """Check the flatbuffer in ``path`` (any .tflite) before an interpreter runs it: structure,
    tensor types, quantization, operators. Returns what it found (warnings included); raises
    :class:`tflite_export.flatbuffer.ModelCheckError` (exit 1 in the CLI) naming the tensor or operator."""
    return check_model(Path(path).read_bytes(), source=str(path))


def read_export_record(*, export_dir: Path) -> ExportResult:
    """The export in ``export_dir`` (its ``config.json``) as a record: sizes, arena, RAM, fits."""
    return read_export(Path(export_dir))


def model_tensors(*, path: Path) -> list[TensorInfo]:
    """Every tensor of the .tflite at ``path``: index, name, dtype, shape, whether its data is in the
    flatbuffer (weights, biases) and how many bytes it takes there, its quantization."""
    return describe_tensors(read_model(Path(path).read_bytes()))


def reusable_export_record(*, export_dir: Path, source_model_sha256: str, budget: int, calibration_size: int,
                           seed: int, quantization_path: str = "ptq") -> ExportResult | None:
    """The export in ``export_dir`` when its files are the ones it wrote and it was made from this
    model (sha256 of model.keras) with this budget, calibration sample and quantization path
    (``"ptq"``, ``"qat"`` or ``"clustered"``); None when :func:`export_model` must run again."""
    return reusable_export(Path(export_dir), source_model_sha256=source_model_sha256, budget=budget,
                           calibration_size=calibration_size, seed=seed, quantization_path=quantization_path)
