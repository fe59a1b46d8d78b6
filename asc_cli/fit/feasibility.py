"""``asc fit``'s cheap feasibility check, before any training: flash, RAM, MACs and latency of a
candidate's architecture on the named microcontroller, from an *untrained* model of that
architecture.

Per architecture (:meth:`asc_cli.fit.space.Candidate.architecture`; cached by its hash in
``OUT/feasibility/<hash>/``):

1. the registry model is built with seeded random weights and converted to int8 with random
   calibration inputs (a LUT candidate's kernels are first folded and snapped to 16 levels, then
   LUT-compressed, so the flatbuffer has the decode operators and tables a trained one would);
2. its tensor arena is measured with TFLM's Python runtime (:func:`tflite_export.arena.measure_arena`)
   and sized as the export sizes the header (:func:`tflite_export.arena.recommended_arena`);
3. ``asc profile`` (:func:`firmware_harness.profile`) counts one inference under QEMU on the
   microcontroller's core and prices it with the cycle model of that microcontroller; its linked
   image gives the flash (model, TFLM runtime and kernels).

Instruction counts do not depend on the weight values (TFLM's int8 kernels have no data-dependent
branches on these operators; ``tests/asc_cli/test_fit_slow.py`` checks it on one architecture), so
the untrained model's time is the trained one's. Per candidate, the RAM adds the front end's state
for its features and window (the export's own formula) and the time multiplies by its windows per
clip; the front end's time and flash are measured on the finalists (``asc profile`` of the export).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

import firmware_harness
import keras_asc
from asc_cli.fit.space import Candidate, architecture_hash
from keras_asc import artifacts, records
from keras_asc.windows import window_plan
from tflite_export.mcu_targets import get_mcu_target

#: Random calibration inputs of the untrained model (normalized log-mel is about N(0, 1)).
CALIBRATION_INPUTS = 16
#: Levels a LUT candidate's kernels are snapped to (4-bit indices).
LUT_LEVELS = 16
#: Files ``OUT/feasibility/<hash>/`` holds besides ``profile/`` (asc profile's own folder).
FEASIBILITY_FILES = ("model.tflite", "estimate.json")
FEASIBILITY_STAGE = "fit-feasibility"


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a candidate must fit: the microcontroller's (or the user's) flash, RAM and time."""

    mcu: str
    flash_bytes: int  # the linked image's text + data
    ram_bytes: int  # the firmware's RAM (the largest contiguous SRAM block by default)
    ms_per_clip: float  # front end and inferences of one clip (default: the clip's length, real time)


@dataclasses.dataclass(frozen=True)
class ArchitectureEstimate:
    """What an untrained model of one architecture needs on one microcontroller (``estimate.json``)."""

    key: str  # architecture_hash
    architecture: dict
    mcu: str
    params: int
    macs_per_inference: int
    flatbuffer_bytes: int
    arena_bytes: int  # as the export's header would size it (TFLM Python's minimum + margin)
    image_flash_bytes: int  # linked Cortex-M image (model, TFLM runtime and kernels), no front end
    instructions_per_inference: int  # exact, under QEMU
    ms_per_inference: float  # the cycle model of ``mcu``, wait states included
    weights_seed: int


@dataclasses.dataclass(frozen=True)
class Feasibility:
    """One candidate against the limits, before training."""

    candidate: Candidate
    key: str
    windows_per_clip: int
    estimate: ArchitectureEstimate | None  # None: not estimated (``error`` says why)
    ram_bytes: int | None  # arena + front end state + static data and stack (the export's estimate)
    ms_per_clip: float | None  # inferences only (the front end is measured on finalists)
    broken: tuple[str, ...]  # every limit broken, as a sentence
    error: str = ""

    @property
    def fits(self) -> bool:
        return self.estimate is not None and not self.broken


def broken_limits(*, flash_bytes: int, ram_bytes: int, ms_per_clip: float, limits: Limits) -> tuple[str, ...]:
    """Each limit of ``limits`` the figures break, named with the option that sets it."""
    out = []
    if flash_bytes > limits.flash_bytes:
        out.append(f"flash {flash_bytes:,d} > {limits.flash_bytes:,d} bytes (--max-flash)")
    if ram_bytes > limits.ram_bytes:
        out.append(f"RAM {ram_bytes:,d} > {limits.ram_bytes:,d} bytes (--max-ram)")
    if ms_per_clip > limits.ms_per_clip:
        out.append(f"{ms_per_clip:,.1f} > {limits.ms_per_clip:,.1f} ms per clip (--max-ms-per-clip)")
    return tuple(out)


def feature_config(candidate: Candidate, *, clip_seconds: float) -> keras_asc.FeatureConfig:
    return keras_asc.FeatureConfig.seed(frames_per_second=candidate.frames_per_second, n_mels=candidate.n_mels,
                                        clip_seconds=clip_seconds)


def frames_and_windows(candidate: Candidate, *, clip_seconds: float) -> tuple[int, int]:
    """``(frames per inference, inferences per clip)`` of ``candidate``."""
    clip_frames = feature_config(candidate, clip_seconds=clip_seconds).n_frames
    plan = window_plan(frames=candidate.window_frames, hop=candidate.window_hop, clip_frames=clip_frames)
    return (clip_frames, 1) if plan is None else (plan.frames, plan.per_clip)


def check_candidate(candidate: Candidate, *, limits: Limits, clip_seconds: float, out_dir: Path, seed: int = 0,
                    log=print) -> Feasibility:
    """``candidate`` against ``limits``: its architecture estimated (or read from
    ``out_dir/<hash>/``), then its own RAM and time per clip. A clip shorter than the window, a
    model its input shrinks to nothing, or one TFLM cannot run is not estimated (``error``)."""
    frames, windows = frames_and_windows(candidate, clip_seconds=clip_seconds)
    arch = candidate.architecture(frames_per_inference=frames)
    key = architecture_hash(arch, mcu=limits.mcu)
    try:
        est = estimate_architecture(arch, key=key, mcu=limits.mcu, folder=Path(out_dir) / key, seed=seed, log=log)
    except (ValueError, keras_asc.AscError) as e:  # a shape the model cannot take; a model TFLM refuses
        if isinstance(e, firmware_harness.FirmwareError):
            raise  # no toolchain or archives: nothing can be estimated; the command names the fix
        return Feasibility(candidate=candidate, key=key, windows_per_clip=windows, estimate=None, ram_bytes=None,
                           ms_per_clip=None, broken=(), error=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
    ram = ram_estimate(Path(out_dir) / key / "model.tflite", candidate=candidate, arena_bytes=est.arena_bytes,
                       clip_seconds=clip_seconds)
    ms = est.ms_per_inference * windows
    return Feasibility(candidate=candidate, key=key, windows_per_clip=windows, estimate=est, ram_bytes=ram,
                       ms_per_clip=round(ms, 3),
                       broken=broken_limits(flash_bytes=est.image_flash_bytes, ram_bytes=ram, ms_per_clip=ms,
                                            limits=limits))


def ram_estimate(tflite: Path, *, candidate: Candidate, arena_bytes: int, clip_seconds: float) -> int:
    """The export's RAM estimate (:func:`tflite_export.export._ram_figures`: arena, the front end's
    state for the candidate's features and window, static data and stack) for ``tflite``."""
    from tflite_export.export import _ram_figures  # heavy: the export module imports TensorFlow
    from tflite_export.flatbuffer import read_model_shared

    model = read_model_shared(Path(tflite).read_bytes())
    return _ram_figures(model, feature_config(candidate, clip_seconds=clip_seconds), arena_bytes=arena_bytes,
                        budget=None, window_frames=candidate.window_frames).needed_bytes


def estimate_architecture(architecture: dict, *, key: str, mcu: str, folder: Path, seed: int = 0,
                          log=print) -> ArchitectureEstimate:
    """The estimate of ``architecture`` on ``mcu`` stored in ``folder``, or made there (model,
    arena, ``asc profile`` of the core of ``mcu``) and stored."""
    folder = Path(folder)
    old = artifacts.read_or_none(lambda f: records.read(ArchitectureEstimate, f / "estimate.json"), folder)
    if old is not None and old.key == key and old.weights_seed == seed:
        return old
    artifacts.claim_folder(folder, stage=FEASIBILITY_STAGE, writes=FEASIBILITY_FILES)
    log(f"fit: estimating {architecture} on {mcu} (untrained model)")
    data, params, macs = untrained_tflite(architecture, seed=seed)
    with artifacts.adding_files(folder, stage=FEASIBILITY_STAGE, names=("model.tflite",)) as tmp:
        artifacts.atomic_write_bytes(tmp / "model.tflite", data)
    from tflite_export.arena import measure_arena, recommended_arena  # heavy: the TFLM runner loads TFLM

    arena = recommended_arena(measure_arena(folder / "model.tflite").min_bytes)
    core = get_mcu_target(mcu).core
    report = firmware_harness.profile(source=folder / "model.tflite", out_dir=folder / "profile", targets=(core,),
                                      mcus=(mcu,), seed=seed, label=f"untrained {key}", log=lambda *_: None)
    if report.failures:
        raise firmware_harness.FirmwareError(f"profile of the untrained model {folder / 'model.tflite'} failed: "
                                             + "; ".join(report.failures))
    est = ArchitectureEstimate(
        key=key, architecture=architecture, mcu=mcu, params=params, macs_per_inference=macs, flatbuffer_bytes=len(data),
        arena_bytes=arena, image_flash_bytes=image_flash_bytes(folder / "profile", core=core),
        instructions_per_inference=report.targets[0].invoke_instructions,
        ms_per_inference=report.mcus[0].ms_per_inference, weights_seed=seed)
    with artifacts.adding_files(folder, stage=FEASIBILITY_STAGE, names=("estimate.json",)) as tmp:
        records.write(tmp / "estimate.json", est)
    return est


def image_flash_bytes(profile_dir: Path, *, core: str) -> int:
    """Text + data of the image ``asc profile`` linked for ``core`` in ``profile_dir``."""
    from firmware_harness.builds.footprint import measure_footprint

    target = firmware_harness.list_targets()[core]
    image = Path(profile_dir) / core
    return measure_footprint(image / "asc_firmware.elf", image / "asc_firmware.map", size_tool=f"{target.prefix}size",
                             stack_bytes=None).flash_bytes


def untrained_tflite(architecture: dict, *, seed: int) -> tuple[bytes, int, int]:
    """``(int8 flatbuffer, trainable params, MACs per inference)`` of ``architecture`` with seeded
    random weights and random calibration inputs; a ``lut4`` graph's kernels are folded, snapped
    to :data:`LUT_LEVELS` levels per tensor and LUT-compressed, as ``asc export --compress`` ends."""
    import keras_asc.tf_setup  # noqa: F401  (tf_keras, never Keras 3; before TensorFlow)
    import tf_keras as keras  # heavy: loads TensorFlow

    from keras_asc.models import build_model, count_macs, trainable_params  # heavy: the builders import tf_keras
    from tflite_export.convert import convert_int8  # heavy: imports TensorFlow

    mels, frames = architecture["input"]
    keras.utils.set_random_seed(seed)
    model = build_model(architecture["model"], (mels, frames, 1), width=architecture["width"])
    params, macs = trainable_params(model), count_macs(model)
    calibration = np.random.default_rng(seed).normal(size=(CALIBRATION_INPUTS, mels, frames, 1)).astype(np.float32)
    if architecture["graph"] != "lut4":
        return convert_int8(model, calibration), params, macs
    from tflite_export.compression import fold_batchnorm, lut_compress  # heavy: imports TensorFlow

    model = fold_batchnorm(model)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            weights = layer.get_weights()
            weights[0] = snap_to_levels(weights[0], levels=LUT_LEVELS)
            layer.set_weights(weights)
    return lut_compress(convert_int8(model, calibration, per_channel_weights=False), bits=4), params, macs


def snap_to_levels(w: np.ndarray, *, levels: int) -> np.ndarray:
    """``w`` (any shape, float32) with every value replaced by the nearest of ``levels`` evenly
    spaced values between its minimum and maximum (what clustering leaves: few distinct values)."""
    lo, hi = float(w.min()), float(w.max())
    if hi == lo:
        return w
    grid = np.linspace(lo, hi, levels, dtype=np.float32)
    return grid[np.abs(w[..., None] - grid).argmin(axis=-1)].astype(np.float32)
