"""``asc fit``'s cheap feasibility check, before any training: flash, RAM, MACs and latency of a
candidate's architecture on the named microcontroller, from an *untrained* model of that
architecture.

Per architecture (:meth:`asc_cli.fitting.space.Candidate.architecture`; cached by its hash in
``OUT/feasibility/<hash>/``):

1. the registry model is built with seeded random weights and converted to int8 with random
   calibration inputs (:func:`tflite_export.untrained_int8_model`; a LUT candidate's kernels are
   snapped to 16 levels and LUT-compressed, so the flatbuffer has the decode operators and tables
   a trained one would);
2. its tensor arena is measured with TFLM's Python runtime and sized as the export sizes the
   header (:func:`tflite_export.header_arena_bytes`);
3. ``asc profile`` (:func:`firmware_harness.profile`) counts one inference under QEMU on the
   microcontroller's core and prices it with the cycle model of that microcontroller; its linked
   image gives the flash (:func:`firmware_harness.profile_image_flash`: model, TFLM runtime and
   kernels).

The convolutions' and fully connected layers' instruction counts do not depend on the weight
values; ADD, MEAN and SOFTMAX move by a few hundred instructions with the values (their
saturation and look-up branches), under 0.1 % of an Invoke on the architecture
``tests/asc_cli/test_fit_slow.py`` profiles with two random initialisations. Per candidate, the RAM
adds the front end's state for its features and window (the export's own estimate,
:func:`tflite_export.firmware_ram_estimate`) and the time multiplies by its windows per clip; the
front end's time and flash are measured on the finalists (``asc profile`` of the export).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import firmware_harness
import keras_asc
import tflite_export
from asc_cli.fitting.space import Candidate, architecture_hash
from keras_asc import artifacts

#: Index bits of a ``lut4`` candidate's weights.
LUT_BITS = 4
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
    plan = keras_asc.window_plan(frames=candidate.window_frames, hop=candidate.window_hop, clip_frames=clip_frames)
    return (clip_frames, 1) if plan is None else (plan.frames, plan.per_clip)


def check_candidate(candidate: Candidate, *, limits: Limits, clip_seconds: float, out_dir: Path, seed: int = 0,
                    overrides: tuple[tuple[str, float], ...] = (), log=print) -> Feasibility:
    """``candidate`` against ``limits``: its architecture estimated (or read from
    ``out_dir/<hash>/``; ``overrides``: the base's ``--model-arg`` values beside the width), then its
    own RAM and time per clip. A clip shorter than the window, a
    model its input shrinks to nothing, or one TFLM cannot run is not estimated (``error``)."""
    frames, windows = frames_and_windows(candidate, clip_seconds=clip_seconds)
    arch = candidate.architecture(frames_per_inference=frames, overrides=overrides)
    key = architecture_hash(arch, mcu=limits.mcu)
    try:
        est = estimate_architecture(arch, key=key, mcu=limits.mcu, folder=Path(out_dir) / key, seed=seed, log=log)
    except (ValueError, keras_asc.AscError) as e:  # a shape the model cannot take; a model TFLM refuses; its
        # firmware failing to build, link or run (fit checked the toolchain and the archives before any work)
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
    """The export's RAM estimate (arena, the front end's state for the candidate's features and
    window, static data and stack) of a firmware running ``tflite``."""
    return tflite_export.firmware_ram_estimate(path=tflite, features=feature_config(candidate, clip_seconds=clip_seconds),
                                               window_frames=candidate.window_frames, arena_bytes=arena_bytes)


def estimate_architecture(architecture: dict, *, key: str, mcu: str, folder: Path, seed: int = 0,
                          log=print) -> ArchitectureEstimate:
    """The estimate of ``architecture`` on ``mcu`` stored in ``folder``, or made there (model,
    arena, ``asc profile`` of the core of ``mcu``) and stored."""
    folder = Path(folder)
    old = read_estimate(folder / "estimate.json")
    if old is not None and old.key == key and old.weights_seed == seed:
        return old
    artifacts.claim_folder(folder, stage=FEASIBILITY_STAGE, writes=FEASIBILITY_FILES)
    log(f"fit: estimating {architecture} on {mcu} (untrained model)")
    model = untrained_model(architecture, seed=seed)
    with artifacts.adding_files(folder, stage=FEASIBILITY_STAGE, names=("model.tflite",)) as tmp:
        artifacts.atomic_write_bytes(tmp / "model.tflite", model.data)
    arena = tflite_export.header_arena_bytes(path=folder / "model.tflite")
    core = tflite_export.MCU_TARGETS[mcu].core
    report = firmware_harness.profile(source=folder / "model.tflite", out_dir=folder / "profile", targets=(core,),
                                      mcus=(mcu,), seed=seed, label=f"untrained {key}", log=lambda *_: None)
    if report.failures:
        raise firmware_harness.FirmwareError(f"profile of the untrained model {folder / 'model.tflite'} failed: "
                                             + "; ".join(report.failures))
    est = ArchitectureEstimate(
        key=key, architecture=architecture, mcu=mcu, params=model.params, macs_per_inference=model.macs_per_inference,
        flatbuffer_bytes=len(model.data), arena_bytes=arena,
        image_flash_bytes=firmware_harness.profile_image_flash(out_dir=folder / "profile", target=core),
        instructions_per_inference=report.targets[0].invoke_instructions,
        ms_per_inference=report.mcus[0].ms_per_inference, weights_seed=seed)
    with artifacts.adding_files(folder, stage=FEASIBILITY_STAGE, names=("estimate.json",)) as tmp:
        artifacts.write_json(tmp / "estimate.json", dataclasses.asdict(est))
    return est


def read_estimate(path: Path) -> ArchitectureEstimate | None:
    """The estimate stored at ``path``, or None (absent, unreadable, or of another version)."""
    try:
        return ArchitectureEstimate(**artifacts.read_json(path))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def untrained_model(architecture: dict, *, seed: int) -> tflite_export.UntrainedModel:
    """``architecture``'s int8 flatbuffer with weights seeded by ``seed``
    (:func:`tflite_export.untrained_int8_model`; a ``lut4`` graph LUT-compressed)."""
    mels, frames = architecture["input"]
    return tflite_export.untrained_int8_model(model=architecture["model"], input_shape=(mels, frames),
                                              overrides=(("width", architecture["width"]),
                                                         *(tuple(kv) for kv in architecture.get("overrides", ()))),
                                              lut_bits=LUT_BITS if architecture["graph"] == "lut4" else None, seed=seed)
