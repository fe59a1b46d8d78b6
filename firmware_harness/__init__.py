"""firmware_harness: validate an int8 model against TFLM and LiteRT, build and run it as TFLM C++
firmware (host and Cortex-M under QEMU), profile its latency, bundle it.

The public API (keyword-only functions taking and returning typed records; docs/api.md)::

    import firmware_harness
    report = firmware_harness.validate(source=Path("work/run/export"), data_dir=data)
    print(firmware_harness.format_report(report))

Names are imported on first use (:mod:`keras_asc.lazy_names`): importing the package is light.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from keras_asc.lazy_names import lazy_names

_NAMES = {**dict.fromkeys(("validate", "check_firmware", "profile", "profile_mcus", "bundle", "list_targets",
                           "format_report", "read_validation", "find_third_party", "stored_validation",
                           "stored_firmware_check", "stored_profile", "profile_image_flash"), "firmware_harness.api"),
          "resolve_model_source": "firmware_harness.model_source",
          "names_an_export": "firmware_harness.model_source", "ModelSource": "firmware_harness.model_source",
          "ModelSourceError": "firmware_harness.model_source", "not_a_regular_file": "firmware_harness.model_source",
          "ValidationReport": "firmware_harness.validation.report",
          "ModelValidationReport": "firmware_harness.validation.model_validation",
          "FirmwareReport": "firmware_harness.firmware.check", "arena_probes": "firmware_harness.firmware.check",
          "DEFAULT_EMULATED_CLIPS": "firmware_harness.firmware.check",
          "ModelFirmwareReport": "firmware_harness.firmware.model_firmware",
          "ProfileReport": "firmware_harness.profiling.profile",
          "MAX_PROFILE_INFERENCES": "firmware_harness.profiling.profile",
          "PROFILE_TARGETS": "firmware_harness.profiling.latency",
          "DEFAULT_PROFILE_TARGETS": "firmware_harness.profiling.latency",
          "Target": "firmware_harness.builds.targets", "TARGETS": "firmware_harness.builds.targets", "DEFAULT_TARGETS": "firmware_harness.builds.targets",
          "BUNDLE_TARGETS": "firmware_harness.builds.bundle", "Bundle": "firmware_harness.builds.bundle",
          "MAX_CHUNK_SAMPLES": "firmware_harness.builds.program",
          "FirmwareError": "firmware_harness.builds.third_party",
          **dict.fromkeys(("BOARDS", "get_board"), "firmware_harness.board.boards"),
          **dict.fromkeys(("build_board_image", "format_image", "flash_commands", "BUNDLE_DIR"),
                          "firmware_harness.board.build"),
          **dict.fromkeys(("DEFAULT_BAUD", "DEFAULT_TIMEOUT"), "firmware_harness.board.protocol"),
          **dict.fromkeys(("run_board", "format_board_report", "DEFAULT_CLIPS", "DEFAULT_PCM_CLIPS"),
                          "firmware_harness.board.run"),
          "qemu_board": "firmware_harness.board.qemu"}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES)

if TYPE_CHECKING:  # the same names for type checkers and readers
    from firmware_harness.api import (bundle, check_firmware, format_report, list_targets, profile, profile_mcus,  # noqa: F401
                                      read_validation, validate, find_third_party, stored_validation,  # noqa: F401
                                      stored_firmware_check, stored_profile, profile_image_flash)  # noqa: F401
    from firmware_harness.board.boards import BOARDS, get_board  # noqa: F401
    from firmware_harness.board.build import BUNDLE_DIR, build_board_image, flash_commands, format_image  # noqa: F401
    from firmware_harness.board.protocol import DEFAULT_BAUD, DEFAULT_TIMEOUT  # noqa: F401
    from firmware_harness.board.qemu import qemu_board  # noqa: F401
    from firmware_harness.board.run import DEFAULT_CLIPS, DEFAULT_PCM_CLIPS, format_board_report, run_board  # noqa: F401
    from firmware_harness.builds.bundle import BUNDLE_TARGETS, Bundle  # noqa: F401
    from firmware_harness.builds.program import MAX_CHUNK_SAMPLES  # noqa: F401
    from firmware_harness.builds.targets import DEFAULT_TARGETS, TARGETS, Target  # noqa: F401
    from firmware_harness.builds.third_party import FirmwareError  # noqa: F401
    from firmware_harness.firmware.check import DEFAULT_EMULATED_CLIPS, FirmwareReport, arena_probes  # noqa: F401
    from firmware_harness.firmware.model_firmware import ModelFirmwareReport  # noqa: F401
    from firmware_harness.model_source import (ModelSource, ModelSourceError, names_an_export,  # noqa: F401
                                                not_a_regular_file, resolve_model_source)
    from firmware_harness.profiling.latency import DEFAULT_PROFILE_TARGETS, PROFILE_TARGETS  # noqa: F401
    from firmware_harness.profiling.profile import MAX_PROFILE_INFERENCES, ProfileReport  # noqa: F401
    from firmware_harness.validation.model_validation import ModelValidationReport  # noqa: F401
    from firmware_harness.validation.report import ValidationReport  # noqa: F401
