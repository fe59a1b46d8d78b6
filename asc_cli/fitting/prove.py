"""``asc fit``'s proof of a finalist, with the stages' public functions, each reused when its
stored result is still valid: the trained run exported with the finalist's quantization
(``asc export [--qat|--compress]`` with arena probes of the host and the microcontroller's core),
validated against LiteRT and the float model (``asc validate``), built and run bit for bit on the
host firmware from audio (``asc firmware --from-audio``), linked for the board when the
microcontroller has one (``asc board build``: the board's memory map; else the core's image under
QEMU, ``asc firmware --targets CORE``), and profiled on the microcontroller (``asc profile``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import firmware_harness
import tflite_export
from asc_cli.fitting.feasibility import Limits, broken_limits
from asc_cli.fitting.space import Candidate
from keras_asc import artifacts

#: Clips of the core's image under QEMU when the microcontroller has no board (its footprint).
CORE_CLIPS = 1


@dataclasses.dataclass(frozen=True)
class Finalist:
    """A proven finalist: measured where the tools measure, estimated where they estimate."""

    candidate: Candidate
    run_dir: str
    export_dir: str
    float_accuracy: float
    int8_accuracy: float  # TFLM, every evaluate clip
    arena_bytes: int  # measured minimum (TFLM's Python runtime)
    linked_flash_bytes: int | None  # the linked image (the board's, else the core's)
    linked_ram_bytes: int | None  # idem: data + bss (+ the board's reserved heap and stack)
    linked_on: str  # "board stm32f407", "cortex-m4 image" or "" (not linked)
    ms_per_clip: float  # asc profile: front end and inferences of one clip on the microcontroller (estimated)
    real_time_factor: float | None
    validation_passed: bool
    bit_exact_clips: str  # "N/N" host firmware outputs identical to TFLM Python (from audio)
    firmware_passed: bool
    broken: tuple[str, ...]  # limits the measured figures break (or the link's refusal)

    @property
    def proven(self) -> bool:
        return self.validation_passed and self.firmware_passed

    @property
    def fits(self) -> bool:
        return not self.broken


def export_config(candidate: Candidate, *, export_dir: Path, budget: int, calibration_size: int, seed: int,
                  core: str, workers: int, log=print) -> tflite_export.ExportConfig:
    """The finalist's ``asc export`` options: its quantization, arena probes of the host and ``core``."""
    compression = tflite_export.CompressionConfig(bits=4) if candidate.quantization == "lut4" else None
    return tflite_export.ExportConfig(budget=budget, calibration_size=calibration_size, seed=seed,
                                      qat=candidate.quantization == "qat", compression=compression, workers=workers,
                                      qat_choose_better=False,  # a qat candidate is proven as QAT; fit compares
                                      arena_probes=firmware_harness.arena_probes(("host", core), log=log),
                                      export_dir=export_dir, dcase_year=None)


def _reusable_export(export_dir: Path, run_dir: Path, quantization: str, *, budget: int, calibration_size: int,
                     seed: int) -> tflite_export.ExportResult | None:
    """The export in ``export_dir`` when it was made from this run's model with this quantization,
    budget and calibration sample, its files unchanged."""
    model = run_dir / "model.keras"
    if not model.is_file():
        return None
    return tflite_export.reusable_export_record(
        export_dir=export_dir, source_model_sha256=artifacts.sha256_file(model), budget=budget,
        calibration_size=calibration_size, seed=seed,
        quantization_path={"ptq": "ptq", "qat": "qat", "lut4": "clustered"}[quantization])


def prove_finalist(candidate: Candidate, *, run_dir: Path, data_dir: Path, work_dir: Path, limits: Limits,
                   clip_seconds: float, budget: int, calibration_size: int, seed: int, workers: int,
                   log=print) -> Finalist:
    """Export, validate, run on the host firmware, link and profile ``candidate``'s trained run
    (``run_dir``) into ``run_dir/fit_<quantization>/``; returns what was measured."""
    run_dir = Path(run_dir)
    export_dir = run_dir / f"fit_{candidate.quantization}"
    core = tflite_export.MCU_TARGETS[limits.mcu].core
    exp = _reusable_export(export_dir, run_dir, candidate.quantization, budget=budget,
                           calibration_size=calibration_size, seed=seed)
    if exp is None:
        exp = tflite_export.export_model(run_dir=run_dir, data_dir=data_dir, work_dir=work_dir, config=export_config(
            candidate, export_dir=export_dir, budget=budget, calibration_size=calibration_size, seed=seed, core=core,
            workers=workers, log=log), log=log)
    else:
        log(f"fit: reusing {export_dir}")
    validation = firmware_harness.stored_validation(export_dir=export_dir, tflite_sha256=exp.tflite_sha256,
                                                    data_dir=data_dir) or firmware_harness.validate(
        source=export_dir, data_dir=data_dir, work_dir=work_dir, workers=workers, log=log)
    board = limits.mcu in firmware_harness.BOARDS
    targets = ("host",) if board else ("host", core)  # no board: the core's image gives the footprint
    firmware = firmware_harness.stored_firmware_check(export_dir=export_dir, tflite_sha256=exp.tflite_sha256,
                                                      data_dir=data_dir, targets=targets, clips=CORE_CLIPS)
    if firmware is None:
        firmware = firmware_harness.check_firmware(source=export_dir, data_dir=data_dir, work_dir=work_dir,
                                                   targets=targets, clips=CORE_CLIPS, host_clips="all",
                                                   from_audio=True, workers=workers, log=log)
    flash, ram, linked_on, refused = (_board_link(export_dir, board=limits.mcu, log=log) if board
                                      else _core_footprint(firmware, core))
    profile = firmware_harness.stored_profile(source=export_dir, out_dir=export_dir / "profile", targets=(core,),
                                              log=log) or firmware_harness.profile(
        source=export_dir, out_dir=export_dir / "profile", targets=(core,), mcus=(limits.mcu,), log=log)
    mcu = next(m for m in profile.mcus if m.mcu == limits.mcu)
    ms = mcu.real_time_factor * 1000.0 * clip_seconds if mcu.real_time_factor is not None else mcu.ms_per_clip
    ram_checked = ram if ram is not None else exp.ram.needed_bytes
    flash_checked = flash if flash is not None else exp.size.flatbuffer_bytes + tflite_export.FLASH_BESIDES_MODEL_ESTIMATE
    broken = refused + broken_limits(flash_bytes=flash_checked, ram_bytes=ram_checked, ms_per_clip=ms, limits=limits)
    target = next(t for t in firmware.targets if t.target == "host")
    overall = validation.overall
    return Finalist(candidate=candidate, run_dir=str(run_dir), export_dir=str(export_dir),
                    float_accuracy=overall.float_accuracy, int8_accuracy=overall.int8_accuracy,
                    arena_bytes=validation.arena.measured_min_bytes, linked_flash_bytes=flash, linked_ram_bytes=ram,
                    linked_on=linked_on, ms_per_clip=round(ms, 3), real_time_factor=mcu.real_time_factor,
                    validation_passed=validation.passed, bit_exact_clips=f"{target.outputs_identical}/{target.clips}",
                    firmware_passed=firmware.passed and profile.passed, broken=broken)


def _board_link(export_dir: Path, *, board: str, log) -> tuple[int | None, int | None, str, tuple[str, ...]]:
    """``(flash, RAM, what was linked, refusals)`` of the export's image linked for ``board`` (``asc
    board build``: its memory map refuses what does not fit; RAM is the main SRAM region, with the
    heap and stack the linker script reserves)."""
    try:
        image = firmware_harness.build_board_image(export_dir, board=board, log=log)
    except firmware_harness.FirmwareError as e:
        if type(e).__name__ != "ImageTooLarge":
            raise
        return None, None, f"board {board}", (f"the board's link refused it: {str(e).splitlines()[0]}",)
    regions = {r.region: r.used for r in image.regions}
    return regions.get("FLASH"), regions.get("RAM"), f"board {board}", ()


def _core_footprint(report, core: str) -> tuple[int | None, int | None, str, tuple[str, ...]]:
    """``(flash, RAM, what was linked, ())`` of the ``core`` image the firmware check ran."""
    f = next((t.footprint for t in report.targets if t.target == core), None)
    return (f.flash_bytes, f.ram_bytes, f"{core} image", ()) if f is not None else (None, None, "", ())
