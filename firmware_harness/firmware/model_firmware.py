"""``asc firmware MODEL.tflite`` for a model without an export folder.

:func:`check_model_firmware`: the generated sources (:mod:`firmware_harness.builds.model_sources`)
compiled with TFLM C++ for each target (:func:`firmware_harness.builds.program.build_program`) and
compared bit for bit with TFLM Python on the same inputs, the first differing operator localized on
a difference, and the footprint of Cortex-M images; writes ``MODEL.firmware/`` beside the model.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np

from firmware_harness.builds import program as fw_program
from firmware_harness.builds import third_party
from firmware_harness.builds.footprint import measure_footprint
from firmware_harness.builds.model_sources import (
    GeneratedSources,
    PreparedModel,
    fit_arena_to_builds,
    prepare_model_sources,
)
from firmware_harness.builds.program import build_inputs_sha256
from firmware_harness.builds.targets import DEFAULT_TARGETS, get_target
from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.firmware.check import (QEMU_NOTE, TargetResult, TflmTruth, localize_output_difference,
                                             target_result, targets_section)
from firmware_harness.model_file import ARENA_MARGIN_TEXT, FIRMWARE_STAGE, TRUTH, io_text_lines
from firmware_harness.model_inputs import InputsUsed, describe_inputs, load_inputs, start_model_stage
from firmware_harness.model_source import ModelSource
from keras_asc import artifacts, records


# ----------------------------------------------------------------------------- firmware
@dataclasses.dataclass(frozen=True)
class ModelFirmwareReport(records.PassedWithoutFailures):
    """``firmware_report.json`` of ``asc firmware MODEL.tflite`` (no export folder)."""

    model: str
    tflite_sha256: str
    build_inputs_sha256: str  # the program's sources, the generated sources, TFLM, the targets' flags
    inputs: InputsUsed
    sources: GeneratedSources
    targets: tuple[TargetResult, ...]  # clips: inferences run; inputs_identical: the program read them back
    failures: tuple[str, ...]
    seconds: float
    packages: dict[str, str]
    git_commit: str
    truth: str = TRUTH
    qemu_note: str = QEMU_NOTE
    stage: str = FIRMWARE_STAGE


def read_model_firmware_report(folder: Path) -> ModelFirmwareReport:
    return records.read(ModelFirmwareReport, Path(folder) / "firmware_report.json")


def check_model_target(name: str, prepared: PreparedModel, *, tree: Path, out_dir: Path, x: np.ndarray,
                       truth_outputs: np.ndarray, log=print) -> tuple[TargetResult, list[str]]:
    """Build ``prepared`` for target ``name`` into ``out_dir``, run ``x`` (n, input elements) int8
    and compare its outputs with ``truth_outputs`` (n, output elements) int8; returns the result and
    its failures. The first differing input is run again with every tensor dumped and its first
    differing operator named. Writes ``out_dir/outputs.npy`` (n, output elements) int8."""
    target = get_target(name)
    model = prepared.model
    prog = fw_program.build_program(prepared.folder, target, out_dir, tree=tree, log=log)
    work = out_dir / "work"
    log(f"firmware: {name}: running {len(x)} input(s){' under QEMU' if target.emulated else ''}")
    try:
        run = fw_program.run_program(prog, work, int8=x)
    except fw_program.ArenaTooSmall:
        need = fw_program.measure_arena(prog, work, input_elements=prepared.input.elements)
        raise FirmwareError(
            f"{prepared.folder / 'model_settings.h'}: kTensorArenaSize ({prepared.arena_bytes:,d} bytes, sized from "
            f"{', '.join(prepared.sources.arena_needs)}) is smaller than the {need:,d} bytes TFLM needs on target "
            f"{name} ({target.kernels} kernels). Size it with this target's build (fit_arena_to_builds), as "
            f"`asc firmware {model.path}` does") from None
    failures = []
    same_in = (run.inputs == x).all(axis=1)
    same_out = (run.outputs == truth_outputs).all(axis=1)
    first_in = first_out = None
    if not same_in.all():
        i = int(np.flatnonzero(~same_in)[0])
        diff = np.abs(run.inputs[i].astype(int) - x[i].astype(int))
        first_in = {"input": i, "elements_differing": int((diff > 0).sum()), "max_abs_diff": int(diff.max())}
        failures.append(f"{name}: the program ran other int8 inputs than it was given on {int((~same_in).sum())} of "
                        f"{len(x)} input(s), e.g. {first_in}")
    if not same_out.all():
        i = int(np.flatnonzero(~same_out)[0])
        first_out = {"input": i, **localize_output_difference(prog, model.data, x[i].reshape(model.input.shape)[0],
                                                              arena=prepared.arena_bytes, work=work)}
        failures.append(f"{name}: int8 outputs differ from TFLM Python on {int((~same_out).sum())} of {len(x)} "
                        f"input(s); first at operator {first_out.get('op_index')} {first_out.get('op')} (input {i})")
    footprint = None
    if prog.map_file is not None:
        footprint = measure_footprint(prog.path, prog.map_file, size_tool=f"{target.prefix}size",
                                      stack_bytes=run.stack_used_bytes)
    np.save(out_dir / "outputs.npy", run.outputs)
    shutil.rmtree(work, ignore_errors=True)
    result = target_result(target, prog, run, clips=len(x), inputs_identical=int(same_in.sum()),
                           outputs_identical=int(same_out.sum()), first_input_difference=first_in,
                           first_output_divergence=first_out, footprint=footprint)
    return result, failures


def check_model_firmware(model_path: Path | ModelSource, *, inputs_path: Path | None = None,
                         random_count: int | None = None, seed: int = 0, targets: tuple[str, ...] = DEFAULT_TARGETS,
                         out_dir: Path | None = None, third_party_dir: Path | None = None,
                         log=print) -> ModelFirmwareReport:
    """Generate the C sources of any int8 .tflite, build them for every target and compare each
    with TFLM Python on the same int8 inputs (:func:`load_inputs`; ``random_count`` defaults to
    :data:`DEFAULT_RANDOM_INPUTS`), every target on all of them. Writes ``out_dir`` (default
    :func:`~firmware_harness.model_source.out_dir_beside`): the sources and ``config.json``,
    ``inputs.npy`` (n, *input shape) int8,
    ``expected_outputs.npy`` (TFLM Python's, n x output elements), ``<target>/`` (the program,
    ``outputs.npy``) and ``firmware_report.json/.md``; ``report.failures`` lists what failed."""
    t0 = time.perf_counter()
    start = start_model_stage(model_path, inputs_path=inputs_path, random_count=random_count, out_dir=out_dir,
                              stage=FIRMWARE_STAGE, command="firmware")  # before any work
    model, out, stage_inputs, random_count = start.model, start.out, start.reads, start.random_count
    for name in targets:
        get_target(name).check_tools()
    x = load_inputs(model, inputs_path=inputs_path, random_count=random_count, seed=seed)
    used = describe_inputs(x, inputs_path=inputs_path, random_count=random_count, seed=seed)
    tp = third_party.locate_third_party(third_party_dir, log=log)
    tree = third_party.prepare_tflm_tree(tp, log=log)
    with artifacts.staging_dir(out, stage=FIRMWARE_STAGE, inputs=stage_inputs) as tmp:
        prepared = prepare_model_sources(model, tmp, log=log)
        prepared = fit_arena_to_builds(prepared, targets, tree=tree, work=tmp / ".arena-probes", log=log)
        truth = TflmTruth(model.data, x.reshape(len(x), *model.input.shape[1:]), arena=prepared.arena_bytes)
        truth_outputs = truth.outputs(np.arange(len(x)))
        np.save(tmp / "inputs.npy", x.reshape(len(x), *model.input.shape))
        np.save(tmp / "expected_outputs.npy", truth_outputs)
        results, failures = [], []
        for name in targets:
            r, f = check_model_target(name, prepared, tree=tree, out_dir=tmp / name, x=x, truth_outputs=truth_outputs,
                                      log=log)
            results.append(r)
            failures += f
            log(f"firmware: {name}: {r.outputs_identical}/{r.clips} inputs bit-identical, arena "
                f"{r.arena_used_bytes:,d} B, {1000 * r.seconds_per_inference:.1f} ms per inference"
                f"{' (QEMU emulation)' if r.emulated else ''}")
        report = ModelFirmwareReport(
            model=str(model.path.resolve()), tflite_sha256=model.sha256,
            build_inputs_sha256=build_inputs_sha256(tmp, tp, targets), inputs=used, sources=prepared.sources,
            targets=tuple(results), failures=tuple(failures), seconds=round(time.perf_counter() - t0, 1),
            **artifacts.provenance())
        records.write(tmp / "firmware_report.json", report)
        artifacts.atomic_write_text(tmp / "firmware_report.md", format_model_firmware(report))
    return report


def format_model_firmware(r: ModelFirmwareReport) -> str:
    """``firmware_report.md``; also what the CLI prints."""
    s = r.sources
    lines = [f"# Firmware check of {Path(r.model).name}", "",
             f"Truth: TFLM's Python runtime on the same inputs ({r.inputs.describe()}). "
             f"Result: **{'PASSED' if r.passed else 'FAILED'}**", ""]
    lines += [f"- FAILURE: {f}" for f in r.failures] + ([""] if r.failures else [])
    lines += io_text_lines(r.model, r.tflite_sha256, s.ops, s.input, s.output, s.flatbuffer_bytes)
    needs = ", ".join(f"{k} {v:,d}" for k, v in s.arena_needs.items())
    lines += ["", f"Generated sources: model_data.cc/.h, model_settings.h (no front end: MODEL_NO_FRONTEND); "
                  f"kTensorArenaSize = {s.arena_bytes:,d}: the largest measured need (bytes: {needs}) plus "
                  f"{ARENA_MARGIN_TEXT}."]
    lines += targets_section(r.targets, unit="inputs")
    lines += ["", QEMU_NOTE, ""]
    return "\n".join(lines)
