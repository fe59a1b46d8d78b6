"""``asc export RUN_DIR``: trained run -> ``RUN_DIR/export/`` for a TFLM firmware.

Writes, all at once (built in a temp folder, renamed into place only when everything passed)::

    model.tflite        full-integer int8 flatbuffer, batch 1
    model_data.cc/.h    the flatbuffer as a C array
    model_input.h       input shape, normalization, input quantization (includes asc_input_quant.h)
    model_settings.h    output quantization, labels, arena, op registration (includes model_input.h)
    model_frontend.h/.cc  the on-device front end's constants and tables (:mod:`tflite_export.frontend`)
    asc_input_quant.h, asc_clip_accumulator.h, asc_frontend.h/.cc
                        the fixed C++, copied from ``tflite_export/cc/``: log-mel -> int8, a windowed
                        model's clip decision, the front end (streaming PCM -> log-mel -> int8 input
                        tensor, CMSIS-DSP real FFT)
    calibration.csv     the representative clips (stratified, deterministic)
    size_report.txt     flatbuffer bytes vs budget, per-tensor sizes, DCASE counts under the chosen
                        year's rules (:mod:`tflite_export.dcase_rules`), MACs
    config.json         source model hash, calibration list hash, budget, I/O quantization,
                        path (ptq, qat or clustered), converter and package versions

and with ``--qat`` (:mod:`tflite_export.qat`) also the model not chosen, ``model_ptq.tflite`` or
``model_qat.tflite``: QAT and PTQ are both converted and scored on held-out training clips, and
``model.tflite`` (with the C sources) is the better one unless ``--qat-always``; config.json's
``qat`` and size_report.txt give the comparison.

and with ``--compress`` (:mod:`tflite_export.compression`) also::

    model_uncompressed.tflite  the same int8 model with whole weights (LiteRT cannot run
                        TFLM_DECODE, so the harness compares LiteRT on this one)
    float_model.keras   the clustered, BatchNorm-folded float model it was converted from

An over-budget model raises :class:`BudgetError` with the per-tensor table, and nothing is
written (a previous successful export stays as it was). A model over the limits of the chosen
DCASE year (``dcase_year``; by default the one of the data's layout: 2021 for TAU 2020's 10 s
clips, 2025 for TAU 2022's one-second clips) raises
:class:`~tflite_export.dcase_rules.DcaseLimitError` the same way, before any conversion.

The tensor arena in the header is the largest need measured: TFLM's Python runtime (reference
kernels) and every *arena probe* the caller passes (a callable that gets the staged export folder
and returns the bytes one firmware build needs, e.g. with CMSIS-NN kernels), plus a margin. The
probes come from the caller (``asc export`` builds them from ``firmware_harness``), so this
package never depends on the firmware builds.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from keras_asc import artifacts
from keras_asc.calibration import calibration_set
from keras_asc.dataset import SCENE_LABELS, dataset_layout, train_split_of_run
from keras_asc.errors import AscError
from keras_asc.evaluation import accuracy, log_loss
from keras_asc.finetune import holdout_split
from keras_asc.feature_cache import build_feature_cache
from keras_asc.features import FeatureConfig, Normalization
from keras_asc.layouts import LayoutError, layout_for_clip_seconds
from keras_asc.run_record import load_run_model, read_run_config, warn_if_other_training_data
from keras_asc.windows import WindowPlan, split_windows
from tflite_export import c_sources, frontend
from tflite_export.arena import measure_arena, peak_live_tensors, recommended_arena
from tflite_export.compression import cluster_finetune, compress_model, compression_report
from tflite_export.convert import ConversionError, convert_int8
from tflite_export.dcase_rules import DcaseComplexity, check_dcase_limits, complexity_table, dcase_complexity
from tflite_export.export_config import (DCASE_YEAR_AUTO, DEFAULT_BUDGET, DEFAULT_CALIBRATION,  # noqa: F401
                                         ArenaProbes, BuildProbe, ExportConfig)
from tflite_export.export_result import (FLOAT_MODEL, UNCOMPRESSED_MODEL, CalibrationRecord, ExportResult,
                                         InputTensorRecord, OutputTensorRecord, RamFigures, SizeFigures,
                                         check_replaces_own_export, hash_export_files, write_export_result)
from tflite_export.mcu_targets import (FLASH_BESIDES_MODEL_ESTIMATE, RAM_BESIDES_ARENA_ESTIMATE, fit_table,
                                       format_fit_table, get_mcu_target)
from tflite_export.flatbuffer import (ModelCheckError, check_int8_model, describe_tensors, io_tensors,
                                      operator_names, read_model_shared, tensor_size_table)
from tflite_export.input_quant import InputQuantization, quantize_input
from tflite_export.qat import (PTQ, QAT, QatRecord, QatScore, choose_model, other_model_file, qat_learning_rates,
                               quantize_aware_finetune)
from tflite_export.tflm_runtime import TflmRunner
from tflite_export.window_combine import accumulate_windows, clip_probabilities

#: the C/C++ files an export writes for the firmware: generated (data only), then the fixed C++
#: copied from tflite_export/cc/ (c_sources.STATIC_SOURCE_FILES); every .cc is compiled
C_SOURCE_FILES = ("model_data.cc", "model_data.h", "model_input.h", "model_settings.h", "model_frontend.cc",
                  "model_frontend.h", *c_sources.STATIC_SOURCE_FILES)
DCASE_MAC_LIMIT = 30_000_000  # DCASE 2022-2025 Task 1: MACs per inference (dcase_rules.DCASE_RULES[2022+])
CHECK_ARENA_BYTES = 8 << 20  # arena for the compression check's TFLM runs on the host
ARENA_MARGIN_TEXT = ("a margin of max(1 KiB, 10 %) for allocator alignment and kernel scratch buffers, "
                     "rounded up to 16")


class BudgetError(AscError, ValueError):
    """The flatbuffer is larger than the budget; ``nbytes`` is its size."""

    def __init__(self, message: str, nbytes: int):
        super().__init__(message)
        self.nbytes = nbytes


class RamBudgetError(AscError, ValueError):
    """The firmware's RAM estimate is over ``--ram-budget``; ``nbytes`` is the estimate."""

    def __init__(self, message: str, nbytes: int):
        super().__init__(message)
        self.nbytes = nbytes


def check_budget(data: bytes, budget: int, model) -> None:
    if len(data) > budget:
        raise BudgetError(
            f"the int8 flatbuffer is {len(data):,d} bytes, over the budget of {budget:,d} bytes by "
            f"{len(data) - budget:,d}. Nothing was written. Use a smaller model (e.g. --model-arg "
            f"width=...) or raise --budget. Largest tensors:\n{tensor_size_table(model, top=15)}", len(data))


def input_quantization(model, normalization: Normalization) -> InputQuantization:
    """The int8 input definition of a parsed flatbuffer plus the training normalization."""
    (inp,), _ = io_tensors(model)
    return InputQuantization(normalization.mean, normalization.std, inp.scales[0], inp.zero_points[0])


def dcase_figures(keras_model, *, year: int, windows_per_clip: int = 1, clip_seconds: float = 10.0
                  ) -> DcaseComplexity:
    """``keras_model``'s complexity under DCASE ``year``'s rules: its parameters, and the MACs of
    ``windows_per_clip`` inferences per clip of ``clip_seconds`` per second of audio."""
    from keras_asc.models import count_macs, nonzero_params, trainable_params  # heavy: imports tf_keras

    return dcase_complexity(year=year, trainable_params=trainable_params(keras_model),
                            nonzero_params=nonzero_params(keras_model),
                            macs_per_second_of_audio=int(round(count_macs(keras_model) * windows_per_clip / clip_seconds)))


def resolve_dcase_year(dcase_year: int | str | None, *, data_dir: Path, clip_seconds: float) -> int | None:
    """``--dcase-year``: a year, ``None`` (no DCASE check) or ``"auto"``: the year of the data's
    layout (:func:`keras_asc.dataset.dataset_layout`; from the clip length when the layout cannot
    be told)."""
    if dcase_year != DCASE_YEAR_AUTO:
        return None if dcase_year is None else int(dcase_year)

    try:
        return dataset_layout(data_dir).default_dcase_year
    except LayoutError:
        return layout_for_clip_seconds(clip_seconds).default_dcase_year


def size_figures(data: bytes, model, *, budget: int, keras_model, arena_min: int, arena: int,
                 windows_per_clip: int = 1, clip_seconds: float = 10.0,
                 dcase: DcaseComplexity | None = None) -> SizeFigures:
    from keras_asc.models import count_macs, nonzero_params, trainable_params  # heavy: imports tf_keras

    weights = sum(t.nbytes for t in describe_tensors(model) if t.constant)
    nonzero = nonzero_params(keras_model)
    macs = count_macs(keras_model)
    return SizeFigures(
        flatbuffer_bytes=len(data), budget_bytes=budget, budget_used_percent=round(100 * len(data) / budget, 1),
        constant_tensor_bytes=weights, flatbuffer_overhead_bytes=len(data) - weights,
        trainable_params=trainable_params(keras_model), dcase2021_nonzero_params=nonzero,
        dcase2021_size_bytes_at_8_bits=nonzero, macs_per_inference=macs, macs_per_clip=macs * windows_per_clip,
        macs_per_second_of_audio=int(round(macs * windows_per_clip / clip_seconds)),
        arena_min_bytes=arena_min, arena_recommended_bytes=arena, ops=tuple(sorted(set(operator_names(model)))),
        dcase=dcase)


def size_report(size: SizeFigures, model) -> str:
    """``size_report.txt``: the figures and the per-tensor table of parsed flatbuffer ``model``."""
    return "\n".join([
        f"flatbuffer: {size.flatbuffer_bytes:,d} bytes of {size.budget_bytes:,d} budget ({size.budget_used_percent} %)",
        f"  constant tensors {size.constant_tensor_bytes:,d} bytes, flatbuffer structure "
        f"{size.flatbuffer_overhead_bytes:,d} bytes",
        f"DCASE 2021 model size: {size.dcase2021_nonzero_params:,d} non-zero parameters "
        f"= {size.dcase2021_size_bytes_at_8_bits:,d} bytes at 8 bits "
        f"({size.trainable_params:,d} trainable parameters in the float model)",
        f"MACs per inference: {size.macs_per_inference:,d}; per clip {size.macs_per_clip:,d}; per second of audio "
        f"{size.macs_per_second_of_audio:,d} ({size.macs_per_second_of_audio / DCASE_MAC_LIMIT:.2f}x the "
        f"{DCASE_MAC_LIMIT / 1e6:.0f} M MACs DCASE 2022-2025 allow per inference on one second of audio)",
        f"tensor arena: {size.arena_min_bytes:,d} bytes measured minimum, {size.arena_recommended_bytes:,d} recommended",
        f"operators: {', '.join(size.ops)}",
        *(["", size.dcase.describe()] if size.dcase is not None else []),
        "", "under each year's rules (tflite_export/dcase_rules.py):",
        complexity_table(trainable_params=size.trainable_params, nonzero_params=size.dcase2021_nonzero_params,
                         macs_per_second_of_audio=size.macs_per_second_of_audio),
        "", "constant tensors, largest first:", tensor_size_table(model)]) + "\n"


def export_run(run_dir: Path, data_dir: Path, work_dir: Path, *, config: ExportConfig, log=print) -> ExportResult:
    """Export ``run_dir``'s best model as ``config`` asks (:class:`~tflite_export.export_config.ExportConfig`)
    into ``config.export_dir`` (default ``run_dir/export``); returns what config.json records.

    ``config.compression`` clusters, converts and LUT-compresses the weights
    (:mod:`tflite_export.compression`); the compressed model must decode to the uncompressed one
    and give identical TFLM outputs on every calibration input, or nothing is written.

    ``config.mcu_target`` (a name of :data:`~tflite_export.mcu_targets.MCU_TARGETS`) lowers ``budget``
    to its flash minus the runtime estimate and ``ram_budget`` to its largest SRAM block. A
    firmware RAM estimate over ``ram_budget`` raises :class:`RamBudgetError` with the
    activation peak, and nothing is written.

    ``config.dcase_year`` (a year of :data:`~tflite_export.dcase_rules.DCASE_RULES`, ``"auto"`` or None):
    the DCASE rules the model is counted and checked against (:func:`resolve_dcase_year`); over a
    limit raises :class:`~tflite_export.dcase_rules.DcaseLimitError` and nothing is written, or, with
    ``dcase_refuse=False`` (the demo and the grid, which compare models), is a warning and the
    figures are recorded."""
    budget, ram_budget, mcu_target = config.budget, config.ram_budget, config.mcu_target  # lowered by mcu_target
    compression = config.compression
    if mcu_target is not None:
        t = get_mcu_target(mcu_target)
        budget = min(budget, t.flash_bytes - FLASH_BESIDES_MODEL_ESTIMATE)
        ram_budget = min(ram_budget or t.largest_sram_bytes, t.largest_sram_bytes)

    run_dir = Path(run_dir)
    final = Path(config.export_dir) if config.export_dir is not None else run_dir / "export"
    inputs = (run_dir, Path(data_dir), Path(work_dir))
    artifacts.check_replaceable(final, stage="export", inputs=inputs)  # before any work
    check_replaces_own_export(final, run_dir)
    run = read_run_config(run_dir)
    norm, feat = run.normalization, run.features
    train_split = train_split_of_run(run.record)
    fs = build_feature_cache(data_dir, work_dir, config=feat, workers=config.workers, log=log, train_split=train_split)
    warn_if_other_training_data(run, fs, run_dir=run_dir, data_dir=Path(data_dir), log=log)
    train_cfg = run.train
    windows = train_cfg.windows(feat.n_frames)
    # every window of the calibration clips, as the firmware will see them
    calibration = calibration_set(fs, size=config.calibration_size, seed=config.seed, windows=windows)
    calib, calib_x = calibration.clips, calibration.inputs(norm)
    keras_model = load_run_model(run_dir, run=run)

    path, qat_seconds, finetune_seconds, best_epoch = "ptq", 0.0, 0.0, None
    if config.qat and compression is not None:
        raise ConversionError("--qat and --compress cannot be combined: compression fine-tunes the clustered "
                              "model itself; choose one")
    if compression is not None:
        if compression.finetune_epochs is None:  # recorded as the number it stands for
            compression = dataclasses.replace(compression, finetune_epochs=train_cfg.epochs)
        t0 = time.perf_counter()
        keras_model, best_epoch = cluster_finetune(keras_model, fs, norm, train_config=run.train,
                                                   n_classes=len(run.labels), config=compression, seed=config.seed,
                                                   log=log)
        path, finetune_seconds = "clustered", time.perf_counter() - t0
    year = resolve_dcase_year(config.dcase_year, data_dir=Path(data_dir), clip_seconds=feat.clip_seconds)
    dcase = None if year is None else dcase_figures(keras_model, year=year, clip_seconds=feat.clip_seconds,
                                                    windows_per_clip=windows.per_clip if windows else 1)
    if dcase is not None and config.dcase_refuse:
        check_dcase_limits(dcase)  # before QAT and any conversion (after clustering, whose model it counts)
    elif dcase is not None and not dcase.within_limits:
        log(f"warning: {run_dir}: over DCASE {dcase.year}'s complexity limits ({'; '.join(dcase.over_limits)}); "
            "exported anyway, the figures are in size_report.txt (`asc export` refuses such a model)")
    qat = None
    if config.qat:
        t0 = time.perf_counter()
        # keras_model stays the run's: the size figures count its MACs and parameters (tfmot's wrapped
        # layers are not counted by keras_asc.models.count_macs; the architecture is the same)
        qat = _quantize_aware(keras_model, fs, norm, run=run, calib_x=calib_x, windows=windows, config=config, log=log)
        path, qat_seconds = qat.record.chosen, time.perf_counter() - t0
    if qat is None:  # QAT converted both of its models itself
        log(f"export: converting ({path}, {len(calib)} calibration clips"
            f"{f', {len(calib_x)} windows' if windows else ''})")
    t0 = time.perf_counter()
    data = qat.data if qat is not None else convert_int8(keras_model, calib_x,
                                                          per_channel_weights=compression is None or compression.per_channel)
    convert_seconds = qat.convert_seconds if qat is not None else time.perf_counter() - t0
    # the flatbuffer is parsed once per content here, and the parsed model handed to every check
    uncompressed, uncompressed_model, compressed_record = data, read_model_shared(data), None
    if compression is not None:
        calib_quant = input_quantization(uncompressed_model, norm)
        calib_int8 = calibration.split(quantize_input(calibration.features, quant=calib_quant))
        data, compressed_record = compress_model(uncompressed, calib_int8[:, None], config=compression,
                                                 arena_bytes=CHECK_ARENA_BYTES, finetune_seconds=finetune_seconds,
                                                 finetune_best_epoch=best_epoch, log=log)
    model = uncompressed_model if compressed_record is None else read_model_shared(data)
    check_int8_model(model)
    check_budget(data, budget, model)
    (inp,), (out,) = io_tensors(model)
    if tuple(inp.shape[1:]) != run.input_shape:
        raise ModelCheckError(f"input shape {inp.shape} does not match the run's {run.input_shape}")
    quant = input_quantization(model, norm)
    ops = tuple(dict.fromkeys(operator_names(model)))

    with artifacts.staging_dir(final, stage="export", inputs=inputs) as tmp:
        artifacts.atomic_write_bytes(tmp / "model.tflite", data)
        if qat is not None:
            artifacts.atomic_write_bytes(tmp / qat.record.other_model, qat.other_data)
        if compressed_record is not None:
            artifacts.atomic_write_bytes(tmp / UNCOMPRESSED_MODEL, uncompressed)
            keras_model.save(tmp / FLOAT_MODEL)
        log("export: measuring the TFLM tensor arena")
        arena = measure_arena(tmp / "model.tflite", model=model)
        if compressed_record is not None:  # the decoded weights' share of the arena
            compressed_record = dataclasses.replace(
                compressed_record, arena_bytes=arena.min_bytes,
                uncompressed_arena_bytes=measure_arena(tmp / UNCOMPRESSED_MODEL, model=uncompressed_model).min_bytes)

        def settings_for(needs: dict[str, int]) -> c_sources.ModelSettings:
            need = max(needs.values())
            source = ", ".join(f"{name} {n:,d}" for name, n in needs.items())
            return c_sources.ModelSettings(
                input_shape=tuple(inp.shape), input_quant=quant, output_scale=out.scales[0],
                output_zero_point=out.zero_points[0], labels=run.labels, ops=ops,
                arena_min_bytes=need, arena_bytes=recommended_arena(need),
                arena_margin_text=f"{ARENA_MARGIN_TEXT} (measured: {source})",
                feature_text=feat.describe(), windows=windows)

        arena_needs = {"reference kernels (tflite-micro Python)": arena.min_bytes}
        image_flash: dict[str, int] = {}  # linked microcontroller images' text + data
        latency_ms: dict[str, float] = {}  # microcontroller -> estimated ms per inference
        settings = settings_for(arena_needs)
        _write_c_sources(tmp, data, settings, quant, feat)
        for name, probe in (config.arena_probes or {}).items():
            log(f"export: measuring the arena of firmware build {name}")
            measured = probe(tmp)
            arena_needs[name] = int(measured.arena_bytes)
            if measured.image_flash_bytes is not None:  # the arena size changes only .bss, never the flash
                image_flash[name] = int(measured.image_flash_bytes)
            latency_ms.update(measured.estimated_ms)
        if len(arena_needs) > 1:  # only the arena size changes
            settings = settings_for(arena_needs)
            artifacts.atomic_write_text(tmp / "model_settings.h", c_sources.model_settings_header(settings))
        arena_bytes = settings.arena_bytes
        calib_out = calib[["filename", "scene_label", "device"]]
        artifacts.atomic_write_text(tmp / "calibration.csv", calib_out.to_csv(index=False))
        size = size_figures(data, model, budget=budget, keras_model=keras_model,
                            arena_min=max(arena_needs.values()), arena=arena_bytes,
                            windows_per_clip=windows.per_clip if windows else 1, clip_seconds=feat.clip_seconds,
                            dcase=dcase)
        ram = _ram_figures(model, feat, arena_bytes=arena_bytes, budget=ram_budget,
                           window_frames=windows.frames if windows else None)
        if ram_budget is not None and ram.needed_bytes > ram_budget:
            raise RamBudgetError(
                f"the firmware needs about {ram.needed_bytes:,d} bytes of RAM ({_ram_text(ram)}), over the RAM "
                f"budget of {ram_budget:,d} bytes{f' ({mcu_target})' if mcu_target else ''} by "
                f"{ram.needed_bytes - ram_budget:,d}. Nothing was written. Shrink what is live at the activation "
                f"peak: fewer frames per inference (`asc train --window-frames W`; the README's windowed table "
                f"shows the arena per W) or fewer channels in the early layers; or raise --ram-budget. "
                f"The {ram.peak.describe()}", ram.needed_bytes)
        flash_needed = max(image_flash.values(), default=len(data) + FLASH_BESIDES_MODEL_ESTIMATE)
        fits = tuple(fit_table(flash_needed=flash_needed, ram_needed=ram.needed_bytes))
        compression_text = "\n" + compression_report(compressed_record) if compressed_record else ""
        compression_text += f"\nquantize-aware training: {qat.record.describe()}\n" if qat is not None else ""
        artifacts.atomic_write_text(tmp / "size_report.txt", size_report(size, model) + compression_text
                                    + _ram_report(ram, fits, flash_basis=_flash_basis(image_flash),
                                                  latency_ms=latency_ms if latency_ms else None))
        import tensorflow as tf  # heavy: TensorFlow takes seconds to import

        result = ExportResult(
            quantization_path=path, source_run=os.path.relpath(run_dir.resolve(), final.resolve()),
            source_model_sha256=artifacts.sha256_file(run_dir / "model.keras"),
            tflite_sha256=artifacts.sha256_bytes(data), budget_bytes=budget,
            calibration=CalibrationRecord(
                size=len(calib), requested=config.calibration_size, seed=config.seed,
                strata="scene_label x device of the training split",
                file_list_sha256=artifacts.sha256_bytes(calib_out.to_csv(index=False).encode()),
                scenes=int(calib["scene_label"].nunique()), devices=tuple(sorted(calib["device"].unique()))),
            qat_epochs=config.qat_epochs if config.qat else 0,
            input=InputTensorRecord(name=inp.name, shape=tuple(inp.shape), dtype="int8", mean=quant.mean,
                                    std=quant.std, scale=quant.scale, zero_point=quant.zero_point),
            output=OutputTensorRecord(name=out.name, shape=tuple(out.shape), dtype="int8", scale=out.scales[0],
                                      zero_point=out.zero_points[0]),
            labels=tuple(SCENE_LABELS), features=feat, windows=windows, ops=ops, size=size,
            ram=ram, mcu_target=mcu_target, fits=fits, arena_needs=arena_needs, image_flash_bytes=image_flash,
            estimated_ms_per_inference=latency_ms,
            arena_report=arena.report, convert_seconds=round(convert_seconds, 2), qat_seconds=round(qat_seconds, 2),
            converter={"tensorflow": tf.__version__, "optimizations": "DEFAULT",
                       "supported_ops": "TFLITE_BUILTINS_INT8",
                       "weights": "int8 per-tensor" if compression and not compression.per_channel else "int8 per-channel"},
            compression=compressed_record, float_model=FLOAT_MODEL if compressed_record else None,
            float_model_sha256=artifacts.sha256_file(tmp / FLOAT_MODEL) if compressed_record else None,
            files_sha256=hash_export_files(tmp, [f.name for f in tmp.iterdir() if f.is_file()]),
            train_split=train_split, qat=qat.record if qat is not None else None,
            **artifacts.provenance())
        write_export_result(tmp, result)
    log(f"export: {final / 'model.tflite'}: {len(data):,d} bytes (budget {budget:,d}); "
        f"arena {max(arena_needs.values()):,d} bytes measured at most, {arena_bytes:,d} in the header")
    return result


@dataclasses.dataclass(frozen=True)
class QatOutcome:
    """``--qat``'s two int8 models: the one ``model.tflite`` gets and the other, and the comparison."""

    data: bytes  # the chosen flatbuffer
    other_data: bytes  # the other, written as record.other_model
    record: QatRecord
    convert_seconds: float  # the chosen model's conversion


def _quantize_aware(keras_model, fs, norm: Normalization, *, run, calib_x: np.ndarray, windows: WindowPlan | None,
                    config: ExportConfig, log) -> QatOutcome:
    """Quantize-aware fine-tuning of ``keras_model`` (:func:`~tflite_export.qat.quantize_aware_finetune`) on
    the training split minus a held-out part, both it and ``keras_model`` converted to int8 (PTQ) and
    scored with TFLM on the held-out clips, and the better chosen (:func:`~tflite_export.qat.choose_model`)."""
    labels = fs.table("train")["label"].to_numpy(np.int64)
    holdout = holdout_split(labels, fraction=config.qat_holdout_fraction, seed=config.seed)
    rates = qat_learning_rates(run.train, epochs=config.qat_epochs, fraction=config.qat_learning_rate_fraction,
                               final_fraction=config.qat_final_learning_rate_fraction)
    tuned = quantize_aware_finetune(keras_model, fs, norm, train_config=run.train, n_classes=len(run.labels),
                                    epochs=config.qat_epochs, holdout=holdout, learning_rates=rates, seed=config.seed,
                                    calibration_inputs=calib_x, log=log)
    log("export: converting the QAT model and the run's model (PTQ) to compare them on the held-out clips")
    models, seconds, scores = {QAT: tuned.model, PTQ: keras_model}, {}, {}
    held_features, held_labels = fs.features("train")[holdout.holdout_rows], labels[holdout.holdout_rows]
    flatbuffers = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        flatbuffers[name] = convert_int8(model, calib_x, per_channel_weights=True)
        seconds[name] = time.perf_counter() - t0
        scores[name] = holdout_int8_score(flatbuffers[name], features=held_features, labels=held_labels,
                                          normalization=norm, windows=windows)
    better, chosen = choose_model(qat=scores[QAT], ptq=scores[PTQ], choose_better=config.qat_choose_better)
    other = PTQ if chosen == QAT else QAT
    record = QatRecord(
        epochs=config.qat_epochs, learning_rates=tuned.learning_rates, holdout_fraction=config.qat_holdout_fraction,
        holdout_clips=len(holdout.holdout_rows), fit_clips=len(holdout.fit_rows), best_epoch=tuned.best_epoch,
        epoch_holdout_scores=tuned.epoch_scores, qat=scores[QAT], ptq=scores[PTQ], chosen=chosen, better=better,
        other_model=other_model_file(other))
    log(f"{'export' if better == QAT else 'warning'}: {record.describe()}")
    return QatOutcome(data=flatbuffers[chosen], other_data=flatbuffers[other],
                      record=record, convert_seconds=round(seconds[chosen], 2))


def holdout_int8_score(data: bytes, *, features: np.ndarray, labels: np.ndarray, normalization: Normalization,
                       windows: WindowPlan | None) -> QatScore:
    """Int8 flatbuffer ``data`` run by TFLM on clips ``features`` ``(n, n_mels, frames)`` float32 dB (not
    normalized) with labels ``(n,)`` int: clip accuracy and log loss, windows combined as the firmware
    combines them (:mod:`tflite_export.window_combine`)."""
    model = read_model_shared(data)
    _, (out,) = io_tensors(model)
    x = quantize_input(features, quant=input_quantization(model, normalization))  # (n, mels, frames, 1) int8
    if windows is not None:
        x = split_windows(x, window=windows.frames, hop=windows.hop)
    per_clip = windows.per_clip if windows is not None else 1
    runner = TflmRunner(data, arena_bytes=CHECK_ARENA_BYTES, source="the model being compared")
    outputs = np.concatenate([runner.run(xi[None]).reshape(1, -1) for xi in x])  # (n * per_clip, classes) int8
    probs = clip_probabilities(accumulate_windows(outputs, windows_per_clip=per_clip), windows_per_clip=per_clip,
                               scale=out.scales[0], zero_point=out.zero_points[0])
    return QatScore(accuracy=accuracy(probs, labels), log_loss=log_loss(probs, labels))


def _ram_figures(model, feat: FeatureConfig, *, arena_bytes: int, budget: int | None, window_frames: int | None
                 ) -> RamFigures:
    # a windowed model's front end also keeps a ring of its last window_frames int8 columns
    state = frontend.frontend_state_bytes(feat) + (feat.n_mels * window_frames if window_frames else 0)
    return RamFigures(arena_bytes=arena_bytes, frontend_state_bytes=state, besides_estimate_bytes=RAM_BESIDES_ARENA_ESTIMATE,
                      needed_bytes=arena_bytes + state + RAM_BESIDES_ARENA_ESTIMATE, budget_bytes=budget,
                      peak=peak_live_tensors(model))


def _ram_text(ram: RamFigures) -> str:
    return (f"tensor arena {ram.arena_bytes:,d}, front end {ram.frontend_state_bytes:,d}, static data and stack "
            f"about {ram.besides_estimate_bytes:,d}")


def _flash_basis(image_flash: dict[str, int]) -> str:
    if image_flash:
        name = max(image_flash, key=image_flash.get)
        return f"flash: the linked {name} image (text + data), built by the arena probe"
    return (f"flash: flatbuffer + {FLASH_BESIDES_MODEL_ESTIMATE:,d} bytes of runtime, front end and C library measured "
            "on the Cortex-M4 image (no microcontroller image was linked)")


def _ram_report(ram: RamFigures, fits, *, flash_basis: str, latency_ms: dict[str, float] | None = None) -> str:
    budget = f" of a {ram.budget_bytes:,d}-byte budget" if ram.budget_bytes is not None else ""
    return "\n".join([
        "", f"firmware RAM: about {ram.needed_bytes:,d} bytes{budget} ({_ram_text(ram)})", f"activation {ram.peak.describe()}",
        "", format_fit_table(list(fits), basis=f"{flash_basis}; RAM: the estimate above; `asc firmware` gives the "
                             "linked image's RAM", latency_ms=latency_ms), ""])


def _write_c_sources(folder: Path, data: bytes, settings: c_sources.ModelSettings, quant: InputQuantization,
                     feat: FeatureConfig) -> None:
    """Write :data:`C_SOURCE_FILES`."""
    tables = frontend.frontend_tables(feat)
    artifacts.atomic_write_text(folder / "model_frontend.h", frontend.model_frontend_header(feat, tables))
    artifacts.atomic_write_text(folder / "model_frontend.cc", frontend.model_frontend_source(feat, tables))
    artifacts.atomic_write_text(folder / "model_data.h", c_sources.cc_array_header())
    artifacts.atomic_write_text(folder / "model_data.cc", c_sources.cc_array_source(data))
    artifacts.atomic_write_text(folder / "model_input.h", c_sources.model_input_header(
        input_shape=settings.input_shape, quant=quant, feature_text=settings.feature_text))
    artifacts.atomic_write_text(folder / "model_settings.h", c_sources.model_settings_header(settings))
    c_sources.copy_static_sources(folder)
