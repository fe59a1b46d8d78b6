"""``asc demo``: a generated dataset through every stage (:func:`asc_cli.stages.run_pipeline`), a
latency estimate, and the summary table it ends with (``WORK/demo_summary.md``)."""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path

import firmware_harness
import keras_asc
from asc_cli.stages import PipelineConfig, PipelineResult, available_firmware_targets, run_pipeline, stage_banner
from keras_asc import artifacts


def run_demo(work_dir: Path, *, size: str = "demo", seed: int = 0, cfg: PipelineConfig | None = None,
             workers: int = keras_asc.DEFAULT_WORKERS, log=print) -> PipelineResult:
    cfg = cfg or PipelineConfig()
    work_dir = Path(work_dir)
    t0 = time.perf_counter()
    t = stage_banner(f"make-dataset ({size})", log)
    data_dir = keras_asc.make_dataset(out_dir=work_dir / "data" / size, size=size, seed=seed, workers=workers, log=log)
    gen_seconds = time.perf_counter() - t
    result = run_pipeline(data_dir, work_dir, work_dir / "runs" / cfg.name, cfg,
                          clip_seconds=keras_asc.dataset_clip_seconds(size=size), workers=workers,
                          firmware_targets=available_firmware_targets(log=log), log=log)
    timings = {"make_dataset": round(gen_seconds, 1), **result.timings_seconds}
    profile = None
    targets = available_firmware_targets(DEMO_PROFILE_TARGETS, log=log)
    if targets:
        t = stage_banner(f"profile (estimated latency: {', '.join(targets)})", log)
        profile = _profile_stage(result.run_dir / "export", targets, log=log)
        timings["profile"] = round(time.perf_counter() - t, 1)
    result = dataclasses.replace(result, timings_seconds=timings, data_dir=Path(data_dir),
                                 wall_seconds=round(time.perf_counter() - t0, 1), profile=profile)
    summary = demo_summary(result)
    artifacts.atomic_write_text(work_dir / "demo_summary.md", summary)
    log("\n" + summary)
    return result


#: The demo's latency estimate: the cores of the microcontrollers its summary names.
DEMO_PROFILE_TARGETS = ("cortex-m4", "cortex-m7", "cortex-m33")
DEMO_SUMMARY_MCUS = ("stm32f407", "nucleo-l4r5zi", "stm32h743", "nrf5340")


def _profile_stage(export_dir: Path, targets: tuple[str, ...], *, log) -> firmware_harness.ProfileReport:
    """``asc profile EXPORT --targets ...``, reused when the stored report profiled the same model
    and targets with the same code (firmware program, counting plugin, cycle model, MCU table)."""
    old = firmware_harness.stored_profile(source=export_dir, out_dir=export_dir / "profile", targets=targets, log=log)
    if old is not None:
        log("profile: reusing profile/profile_report.json")
        return old
    return firmware_harness.profile(source=export_dir, out_dir=export_dir / "profile", targets=targets,
                                    label=str(export_dir), log=log)


def demo_summary(result: PipelineResult) -> str:
    """The table ``asc demo`` ends with (also saved as WORK/demo_summary.md)."""
    v, size = result.validation, result.export.size
    run = result.run_dir
    ref, opt = v.agreement_with_tflm["litert_ref"], v.agreement_with_tflm["litert_opt"]
    found = Counter(str(d.op) for d in v.reference_divergences)
    ref_ops = ", ".join(f"first at {op} x{c}" for op, c in found.most_common()) or "none"

    lines = [f"# asc demo: {result.name} on generated data (not TAU; not comparable to the seed's figures)", "",
             "| | clips | float acc | int8 (TFLM) acc | float log loss | int8 log loss |", "|---|---|---|---|---|---|"]
    for r in v.scores:
        if r.group not in ("overall", "device"):
            continue
        label = "overall" if r.group == "overall" else f"device {r.name}{'*' if r.unseen_device else ''}"
        lines.append(f"| {label} | {r.clips} | {100 * r.float_accuracy:.1f} % | {100 * r.int8_accuracy:.1f} % "
                     f"| {r.float_log_loss:.3f} | {r.int8_log_loss:.3f} |")
    total = f"; total {result.wall_seconds}" if result.wall_seconds is not None else ""
    lines += ["", "(* device unseen in training)", "",
              f"- flatbuffer: {size.flatbuffer_bytes:,d} bytes of {result.export.budget_bytes:,d} "
              f"({size.budget_used_percent} %); DCASE size {size.dcase2021_nonzero_params:,d} "
              f"non-zero params; {size.macs_per_inference / 1e6:.1f} M MACs",
              f"- tensor arena: {v.arena.measured_min_bytes:,d} bytes measured minimum "
              f"(header: {v.arena.header_bytes:,d})",
              f"- TFLM ({v.truth}) ran {v.clips} clips; LiteRT reference kernels disagreed on "
              f"{ref.clips_with_any_difference} of the {ref.clips} they ran ({ref_ops}), its default optimized "
              f"interpreter (XNNPACK) on {opt.clips_with_any_difference} of {opt.clips} "
              "(rounding differences by design, not localized); "
              f"top-1 changed: {ref.top1_changed} / {opt.top1_changed}",
              f"- validation: {'PASSED' if v.passed else 'FAILED: ' + '; '.join(v.failures)}",
              *_firmware_lines(result.firmware),
              *_latency_lines(result.profile),
              "- stage times (s): " + ", ".join(f"{k} {s}" for k, s in result.timings_seconds.items()) + total,
              "", "Artifacts:",
              f"- dataset: {result.data_dir or ''}",
              f"- float model: {run / 'model.keras'} (config.json, metrics.json, confusion.png, tensorboard/)",
              f"- int8 model: {run / 'export' / 'model.tflite'} (config.json, size_report.txt, calibration.csv)",
              f"- C sources: {run / 'export'}/model_data.cc, model_data.h, model_input.h, model_settings.h, "
              "model_frontend.cc, model_frontend.h",
              f"- validation: {run / 'export'}/validation_report.md, validation_report.json, validation_*.png",
              f"- firmware: {run / 'export'}/firmware/firmware_report.md, firmware/<target>/ (program, outputs.npy)",
              ""]
    return "\n".join(lines)


def _latency_lines(profile: firmware_harness.ProfileReport | None) -> list[str]:
    if profile is None:
        return ["- latency: not estimated (no Arm toolchain or QEMU; see the log)"]
    rows = {m.mcu: m for m in profile.mcus}
    parts = [f"{m.mcu.upper()} ({m.core}, {m.clock_hz / 1e6:.0f} MHz) {m.ms_per_inference:,.1f} ms per inference, "
             f"real-time factor {m.real_time_factor:.3f}" for name in DEMO_SUMMARY_MCUS if (m := rows.get(name))]
    return [f"- latency (estimated from exact instruction counts with the cycle model, not measured; "
            f"profile/profile_report.md): {'; '.join(parts)}"]


def _firmware_lines(fw: firmware_harness.FirmwareReport | None) -> list[str]:
    if fw is None:
        return ["- firmware: not built (no TFLM source archives or toolchain; see the log)"]
    lines = []
    for t in fw.targets:
        per = (f"{t.seconds_per_inference:.2f} s per inference under QEMU (emulation, not a chip's time)"
               if t.emulated else f"{1000 * t.seconds_per_inference:.0f} ms per inference")
        lines.append(f"- firmware {t.target} ({t.kernels} kernels): {t.outputs_identical}/{t.clips} clips "
                     f"bit-identical with TFLM Python (inputs {t.inputs_identical}/{t.clips}); arena used "
                     f"{t.arena_used_bytes:,d} of {t.header_arena_bytes:,d} bytes; {per}")
        f = t.footprint
        if f:
            stack = f"{f.stack_bytes:,d} measured" if f.stack_bytes is not None else "not measured"
            lines.append(f"  - image: flash {f.flash_bytes:,d} bytes (model {f.flash_by_part['model']:,d}, "
                         f"TFLM kernels {f.flash_by_part['tflm_kernels']:,d}, runtime {f.flash_by_part['tflm_runtime']:,d}); "
                         f"RAM {f.ram_bytes:,d} bytes (arena {f.ram_by_part['tensor_arena']:,d}, "
                         f"front end {f.ram_by_part['frontend']:,d}, stack {stack}); front end flash "
                         f"{f.flash_by_part['frontend']:,d} + FFT {f.flash_by_part['frontend_fft']:,d} bytes")
        a = t.from_audio
        if a:
            lines.append(f"  - PCM -> class: {a.clips} clips; int8 input elements identical to the training features' "
                         f"{100 * a.input_identical_fraction:.4f} %, log-mel max diff {a.logmel_max_abs_diff_db:.1e} dB; "
                         f"top-1 = harness {a.top1_agreement}/{a.clips}, outputs identical {a.outputs_identical_to_harness}"
                         f"/{a.clips}; accuracy from PCM {100 * a.accuracy_from_pcm:.1f} % (harness int8 "
                         f"{100 * a.accuracy_harness_int8:.1f} %)")
    if not fw.passed:
        lines.append("- firmware: FAILED: " + "; ".join(fw.failures))
    return lines
