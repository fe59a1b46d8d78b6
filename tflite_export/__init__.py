"""tflite_export: a trained keras_asc run -> int8 .tflite under a flash budget + C sources for TFLM.

The public API (keyword-only functions taking and returning typed records; docs/api.md)::

    import tflite_export
    exp = tflite_export.export_model(run_dir=Path("work/run"), data_dir=data, work_dir=Path("work"),
                                     config=tflite_export.ExportConfig(budget=128 * 1024))
    print(exp.size.flatbuffer_bytes, sorted(tflite_export.list_mcus()))

Names are imported on first use (:mod:`keras_asc.lazy_names`): importing the package is light.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from keras_asc.lazy_names import lazy_names

_NAMES = {**dict.fromkeys(("export_model", "list_mcus", "check_tflite", "read_export_record", "model_tensors",
                           "reusable_export_record"), "tflite_export.api"),
          "ExportConfig": "tflite_export.export_config", "DEFAULT_BUDGET": "tflite_export.export_config",
          "DEFAULT_CALIBRATION": "tflite_export.export_config", "DEFAULT_QAT_EPOCHS": "tflite_export.export_config",
          "DCASE_YEAR_AUTO": "tflite_export.export_config", "ExportResult": "tflite_export.export_result",
          "CompressionConfig": "tflite_export.compression", "GRANULARITIES": "tflite_export.compression",
          "McuTarget": "tflite_export.mcu_targets", "MCU_TARGETS": "tflite_export.mcu_targets", "FLASH_BESIDES_MODEL_ESTIMATE": "tflite_export.mcu_targets",
          "ModelCheckReport": "tflite_export.model_check", "DCASE_RULES": "tflite_export.dcase_rules",
          "BudgetError": "tflite_export.export", "TensorInfo": "tflite_export.flatbuffer",
          **dict.fromkeys(("untrained_int8_model", "header_arena_bytes", "firmware_ram_estimate", "UntrainedModel"),
                          "tflite_export.untrained")}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES)

if TYPE_CHECKING:  # the same names for type checkers and readers
    from tflite_export.api import (check_tflite, export_model, list_mcus, model_tensors, read_export_record,  # noqa: F401
                                   reusable_export_record)  # noqa: F401
    from tflite_export.compression import GRANULARITIES, CompressionConfig  # noqa: F401
    from tflite_export.dcase_rules import DCASE_RULES  # noqa: F401
    from tflite_export.export import BudgetError  # noqa: F401
    from tflite_export.export_config import (DCASE_YEAR_AUTO, DEFAULT_BUDGET, DEFAULT_CALIBRATION,  # noqa: F401
                                             DEFAULT_QAT_EPOCHS, ExportConfig)  # noqa: F401
    from tflite_export.export_result import ExportResult  # noqa: F401
    from tflite_export.flatbuffer import TensorInfo  # noqa: F401
    from tflite_export.mcu_targets import FLASH_BESIDES_MODEL_ESTIMATE, MCU_TARGETS, McuTarget  # noqa: F401
    from tflite_export.model_check import ModelCheckReport  # noqa: F401
    from tflite_export.untrained import (UntrainedModel, firmware_ram_estimate, header_arena_bytes,  # noqa: F401
                                         untrained_int8_model)  # noqa: F401
