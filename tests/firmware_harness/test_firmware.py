"""The exported C sources compiled with TFLM C++ (host, host CMSIS-NN, Cortex-M4, -M7 and -M33 under
QEMU) are bit-exact with TFLM's Python runtime; a too-small arena and a tampered C array are caught.

Skips only when a toolchain or the source archives are absent, saying which; `.ci/run` installs
the Debian packages, so CI always runs these.
"""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from firmware_harness.builds import footprint, tflm_build, third_party
from firmware_harness.builds.third_party import FirmwareError
from firmware_harness.firmware.check import check_firmware, read_firmware_report
from keras_asc import artifacts
from tests.conftest import write_export_config
from tests.firmware_harness.conftest import QUIET, TARGETS_TESTED
from tests.firmware_harness.conftest import require_targets as _require
from tflite_export import c_sources
from tflite_export.export_result import read_export
from tflite_export.flatbuffer import io_tensors, operator_names, read_model


def test_every_target_is_bit_identical_with_tflm_python(firmware_run, tiny_features):
    export, report = firmware_run
    n_eval = len(tiny_features.table("evaluate"))
    assert report.passed, report.failures
    by_target = {r.target: r for r in report.targets}
    assert [by_target[t].clips for t in TARGETS_TESTED] == [n_eval, n_eval, 3]
    for r in report.targets:
        assert r.inputs_identical == r.outputs_identical == r.clips
        assert 0 < r.arena_used_bytes <= r.header_arena_bytes
        assert r.seconds_per_inference > 0


def test_outputs_files_match_tflm_python(firmware_run, tiny_features):
    from firmware_harness.validation.runners import make_runner
    from tflite_export.input_quant import quantize_input

    export, report = firmware_run
    model = (export / "model.tflite").read_bytes()
    quant = read_export(export).input.quantization
    outputs = np.load(export / "firmware" / "cortex-m4" / "outputs.npy")
    clips = (export / "firmware" / "cortex-m4" / "clips.csv").read_text().splitlines()[1:]
    rows = [int(line.split(",")[-1]) for line in clips]
    assert outputs.shape == (3, 10) and outputs.dtype == np.int8 and rows == sorted(rows)
    tflm = make_runner("tflm", model, arena_bytes=report.targets[0].header_arena_bytes)
    x = quantize_input(np.asarray(tiny_features.features("evaluate"))[rows], quant=quant)
    np.testing.assert_array_equal(outputs, np.concatenate([tflm.run(xi[None]) for xi in x]))
    host = np.load(export / "firmware" / "host" / "outputs.npy")
    np.testing.assert_array_equal(host[rows], outputs)


def test_what_the_device_computed_from_pcm_is_kept(firmware_run):
    """``inputs_from_audio.npy``/``outputs_from_audio.npy`` beside ``inputs.npy``/``outputs.npy``,
    same rows: where the front end's int8 input equals the training features', so do the outputs."""
    export, report = firmware_run
    for r in report.targets:
        folder = export / "firmware" / r.target
        inputs, outputs = np.load(folder / "inputs.npy"), np.load(folder / "outputs.npy")
        pcm_in, pcm_out = np.load(folder / "inputs_from_audio.npy"), np.load(folder / "outputs_from_audio.npy")
        assert pcm_in.shape == inputs.shape and pcm_out.shape == outputs.shape and pcm_out.dtype == np.int8
        same = (pcm_in == inputs).all(axis=1)
        assert same.mean() > 0.5, r.target
        np.testing.assert_array_equal(pcm_out[same], outputs[same])


def test_cortex_m4_footprint_is_the_linked_image(firmware_run):
    export, report = firmware_run
    m4 = next(r for r in report.targets if r.target == "cortex-m4")
    f = m4.footprint
    model_bytes = (export / "model.tflite").stat().st_size
    assert model_bytes <= f.flash_by_part["model"] < model_bytes + 64  # the array plus its length
    assert f.ram_by_part["tensor_arena"] == m4.header_arena_bytes
    assert f.flash_by_part["tflm_kernels"] > 10_000 and f.flash_by_part["tflm_runtime"] > 10_000
    assert 0 < f.stack_bytes < 64 * 1024
    assert f.ram_bytes == f.data + f.bss + f.stack_bytes
    assert abs(sum(f.flash_by_part.values()) - f.flash_bytes) < 0.02 * f.flash_bytes
    md = (export / "firmware" / "firmware_report.md").read_text()
    assert "Footprint: cortex-m4" in md and "QEMU emulation" in md and "PASSED" in md
    # the fit table's latency column: this image's counted inference on each Cortex-M4 MCU
    assert set(m4.estimated_ms) == {"stm32f407", "nucleo-l4r5zi"} and all(v > 0 for v in m4.estimated_ms.values())
    row = next(line for line in md.splitlines() if line.startswith("| stm32f407 |"))
    assert row.endswith(f" {m4.estimated_ms['stm32f407']:,.1f} |") and "est. ms per inference" in md
    assert artifacts.read_json(export / "firmware" / "firmware_report.json")["passed"] is True
    assert read_firmware_report(export) == report


@pytest.mark.parametrize("target,kernels", [("host", "reference"), ("cortex-m4", "cmsis_nn"),
                                            ("cortex-m33", "cmsis_nn")])
def test_too_small_arena_fails_with_the_need(target, kernels, tiny_export, tiny_dataset, tiny_work, tmp_path):
    """TFLM crashes (host: SIGSEGV, QEMU: HardFault) rather than failing AllocateTensors on a
    4 KiB arena; either way the check names the header and the arena the target needs. (The header
    is written as a broken export would write it: its hash recorded, so only the arena is wrong.)"""
    _require(target)
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    header = export / "model_settings.h"
    header.write_text(re.sub(r"kTensorArenaSize = \d+;", "kTensorArenaSize = 4096;", header.read_text()))
    cfg = artifacts.read_json(export / "config.json")
    write_export_config(export, {**cfg, "files_sha256": {**cfg["files_sha256"],
                                                         "model_settings.h": artifacts.sha256_file(header)}})
    with pytest.raises(FirmwareError, match=rf"model_settings.h: kTensorArenaSize is smaller than the [\d,]+ bytes "
                                            rf"TFLM needs on target {target} \({kernels} kernels\)"):
        check_firmware(export, tiny_dataset, tiny_work, targets=(target,), **QUIET)
    assert not (export / "firmware").exists()  # nothing half-written


def _tamper_first_weight(export) -> object:
    """Change one weight of the first convolution in model_data.cc only (the .tflite untouched)."""
    data = bytearray((export / "model.tflite").read_bytes())
    model = read_model(bytes(data))
    first_conv = model.subgraphs[0].operators[0]
    weights = bytes(model.buffers[model.subgraphs[0].tensors[first_conv.inputs[1]].buffer].data)
    at = data.find(weights)
    assert at > 0 and data.find(weights, at + 1) < 0
    data[at] = (data[at] + 64) % 256
    (export / "model_data.cc").write_text(c_sources.cc_array_source(bytes(data)))
    return model


def test_an_edited_c_source_is_refused_by_name(tiny_export, tiny_dataset, tiny_work, tmp_path):
    """One weight byte edited in model_data.cc: refused before anything is built, naming the file,
    never blamed on an operator."""
    from tflite_export.export_result import StaleExport

    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    _tamper_first_weight(export)
    with pytest.raises(StaleExport, match=rf"{export / 'model_data.cc'}: differs from the file `asc export` wrote"):
        check_firmware(export, tiny_dataset, tiny_work, targets=("host",), **QUIET)
    assert not (export / "firmware").exists()


def test_a_differing_firmware_is_localized_to_its_operator(tiny_export, tiny_dataset, tiny_work, tmp_path,
                                                           monkeypatch):
    """With the export's hash gate bypassed, the same edited weight makes the firmware differ, and
    the difference is pinned on the first operator that reads that weight."""
    import firmware_harness.validation.export_validation as validate

    _require("host")
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    model = _tamper_first_weight(export)
    monkeypatch.setattr(validate, "check_export_files", lambda *a, **k: None)
    report = check_firmware(export, tiny_dataset, tiny_work, targets=("host",), **QUIET)
    assert not report.passed
    host = report.targets[0]
    assert host.inputs_identical == host.clips and host.outputs_identical < host.clips
    d = host.first_output_divergence
    assert d["op_index"] == 0 and d["op"] == operator_names(model)[0] == "CONV_2D"
    assert d["runner"] == "host" and d["elements_differing"] > 0


def test_missing_archives_are_named_with_the_fix(tmp_path):
    (tmp_path / "tflite-micro.tar.gz").write_bytes(b"")
    with pytest.raises(FirmwareError) as e:
        third_party.locate_third_party(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "cmsis-nn.tar.gz" in msg and "tflite-micro.tar.gz'" not in msg
    assert "ASC_THIRD_PARTY" in msg and "git -C tflite-micro archive" in msg


def test_only_the_models_kernels_are_compiled():
    _require()
    tree = third_party.prepare_tflm_tree(third_party.locate_third_party(), **QUIET)
    ref = third_party.library_sources(tree, kernels="reference")
    picked = tflm_build.select_sources(tree, ref, ["AddConv2D", "AddMean"])
    kernels = {s.rsplit("/", 1)[-1] for s in picked if s.startswith(tflm_build.KERNELS_DIR)}
    assert kernels == {"conv.cc", "conv_common.cc", "reduce.cc", "reduce_common.cc", "kernel_util.cc",
                       "micro_tensor_utils.cc"}
    assert "tensorflow/lite/micro/micro_interpreter.cc" in picked
    cmsis = tflm_build.select_sources(tree, third_party.library_sources(tree, kernels="cmsis_nn"), ["AddConv2D"])
    assert "tensorflow/lite/micro/kernels/cmsis_nn/conv.cc" in cmsis
    assert "tensorflow/lite/micro/kernels/conv.cc" not in cmsis
    with pytest.raises(FirmwareError, match="no default registration"):
        tflm_build.select_sources(tree, ref, ["AddNoSuchOp"])


def test_the_decode_operator_brings_its_lut_decoder():
    _require()
    tree = third_party.prepare_tflm_tree(third_party.locate_third_party(), **QUIET)
    picked = tflm_build.select_sources(tree, third_party.library_sources(tree, kernels="cmsis_nn"), ["AddDecode"])
    kernels = {s.rsplit("/", 1)[-1] for s in picked if s.startswith(tflm_build.KERNELS_DIR)}
    assert {"decode.cc", "decode_state.cc", "decode_state_lut.cc"} <= kernels


def test_compressed_export_is_bit_identical_on_host_and_cortex_m4(tiny_compressed_export, tiny_dataset, tiny_work,
                                                                 tmp_path):
    """LUT-compressed weights decoded by the pinned C++ TFLM_DECODE, on every host clip and under QEMU."""
    _require("host", "cortex-m4")
    export = tmp_path / "export"
    shutil.copytree(tiny_compressed_export, export)
    report = check_firmware(export, tiny_dataset, tiny_work, targets=("host", "cortex-m4"), clips=2, **QUIET)
    assert report.passed, report.failures
    assert all(t.bit_identical for t in report.targets)
    m4 = next(t for t in report.targets if t.target == "cortex-m4")
    model_bytes = export.joinpath("model.tflite").stat().st_size
    assert m4.clips == 2 and model_bytes <= m4.footprint.flash_by_part["model"] < model_bytes + 64


@pytest.mark.slow
def test_cortex_m7_and_m33_are_bit_identical_with_tflm_python(tiny_export, tiny_dataset, tiny_work, tmp_path):
    """The AN500 (Cortex-M7) and AN505 (Cortex-M33, Secure aliases) boards: two clips each, from
    log-mel, with their own footprints and the scratch memory outside the image."""
    _require("cortex-m7", "cortex-m33")
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    report = check_firmware(export, tiny_dataset, tiny_work, targets=("cortex-m7", "cortex-m33"), clips=2, **QUIET)
    assert report.passed, report.failures
    for t in report.targets:
        assert t.clips == 2 and t.bit_identical and t.emulated and t.kernels == "cmsis_nn"
        f = t.footprint
        assert f.ram_by_part["tensor_arena"] == t.header_arena_bytes and 0 < f.stack_bytes < 64 * 1024
        assert f.flash_by_part["tflm_kernels"] > 10_000


@pytest.mark.parametrize("target,dsp,mve", [("cortex-m4", True, False), ("cortex-m7", True, False),
                                            ("cortex-m33", True, False), ("cortex-m55", True, True),
                                            ("host-cmsis-nn", False, False)])
def test_cmsis_nn_takes_the_cores_fast_path(target, dsp, mve):
    """CMSIS-NN's arm_nn_math_types.h turns the compiler's __ARM_FEATURE_DSP/MVE into
    ARM_MATH_DSP/ARM_MATH_MVEI: with each target's exact flags (preprocessor only)."""
    import subprocess

    from firmware_harness.builds.targets import get_target

    t = get_target(target)
    _require(target)
    tree = third_party.prepare_tflm_tree(third_party.locate_third_party(), **QUIET)
    header = tree / tflm_build.DOWNLOADS / "cmsis_nn" / "Include" / "arm_nn_math_types.h"
    cmd = [c for c in tflm_build.compile_command(tree, t, str(header), opt="-O2") if c != "-c"] + ["-E", "-dM"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    macros = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("#define ")}
    assert ("ARM_MATH_DSP" in macros, "ARM_MATH_MVEI" in macros) == (dsp, mve)


MAP = """\
Discarded input sections
 .text.unused   0x00000000       0x40 /x/obj/main.cc.o

Linker script and memory map

.text           0x00000000      0x238
 .vectors       0x00000000       0x40 /x/obj/startup.S.o
 .text.main     0x00000040       0x60 /x/obj/main.cc.o
 .text._ZN6tflite4ConvEv
                0x000000a0       0x80 /c/lib/libtflm-ab.a(tensorflow__lite__micro__kernels__cmsis_nn__conv.cc.o)
 .rodata.g_model_data
                0x00000120       0x70 /x/obj/model_data.cc.o
 .text          0x00000190       0x30 /c/lib/libtflm-ab.a(tensorflow__lite__micro__micro_interpreter.cc.o)
 *fill*         0x000001c0       0x10
 .text          0x000001d0       0x30 /usr/lib/libc.a(lib_a-memcpy.o)
 .rodata.kHannWindow
                0x00000200       0x20 /x/obj/model_frontend.cc.o
 .text.arm_rfft_fast_f32
                0x00000220       0x18 /c/lib/libcmsisdsp-cd.a(downloads__cmsis_dsp__Source__TransformFunctions__arm_rfft_fast_f32.c.o)
.data           0x20000000       0x10
 .data          0x20000000       0x10 /usr/lib/libc.a(lib_a-impure.o)
.bss            0x20000010      0x108
 .bss._ZN12_GLOBAL__N_112tensor_arenaE
                0x20000010      0x100 /x/obj/main.cc.o
 .bss           0x20000110        0x8 /c/lib/libtflm-ab.a(tensorflow__lite__micro__micro_log.cc.o)
 .bss._ZN12_GLOBAL__N_18frontendE
                0x20000118       0x24 /x/obj/main.cc.o
.debug_info     0x00000000      0x999
 .debug_info    0x00000000      0x999 /x/obj/main.cc.o
"""


def test_map_file_parts():
    flash, ram = footprint.parse_map(MAP)
    assert flash == {"model": 0x70, "tflm_kernels": 0x80, "tflm_runtime": 0x30, "frontend": 0x20, "frontend_fft": 0x18,
                     "program": 0x40 + 0x60, "tensor_arena": 0, "c_runtime": 0x30 + 0x10}
    assert ram == {"model": 0, "tflm_kernels": 0, "tflm_runtime": 0x8, "frontend": 0x24, "frontend_fft": 0,
                   "program": 0, "tensor_arena": 0x100, "c_runtime": 0x10}


def test_io_of_the_tiny_export_is_what_the_program_assumes(tiny_export):
    """The program reads float32 log-mel [mels][frames] and writes kNumClasses int8 per clip."""
    (inp,), (out,) = io_tensors(read_model((tiny_export / "model.tflite").read_bytes()))
    text = (tiny_export / "model_input.h").read_text()
    assert f"constexpr int kNumMels = {inp.shape[1]};" in text and f"constexpr int kNumFrames = {inp.shape[2]};" in text
    assert inp.dtype == out.dtype == "INT8" and out.shape == (1, 10)


def test_export_sizes_the_arena_from_the_largest_probe(tiny_run, tiny_dataset, tiny_work, tmp_path):
    """`asc export` passes firmware arena probes; the header takes the largest need plus the margin."""
    from tflite_export.arena import recommended_arena
    from tflite_export.export import BuildProbe, ExportConfig, export_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    seen = []

    def big_probe(export_dir):
        seen.append(sorted(p.name for p in export_dir.iterdir()))
        return BuildProbe(arena_bytes=1_000_000, image_flash_bytes=123_456)

    cfg = export_run(run, tiny_dataset, tiny_work, config=ExportConfig(calibration_size=20, arena_probes={"fake build": big_probe}), **QUIET)
    assert {"model.tflite", "model_data.cc", "model_input.h", "model_settings.h"} <= set(seen[0])
    assert cfg.arena_needs["fake build"] == 1_000_000
    assert f"kTensorArenaSize = {recommended_arena(1_000_000)};" in (run / "export" / "model_settings.h").read_text()
    # the fit table's flash is the linked image's, and the size report says so
    assert cfg.image_flash_bytes == {"fake build": 123_456} and {f.flash_needed for f in cfg.fits} == {123_456}
    assert "flash: the linked fake build image" in (run / "export" / "size_report.txt").read_text()


def test_host_arena_probe_measures_the_build(tiny_export):
    _require("host")
    from firmware_harness.firmware.check import arena_probes

    measured = arena_probes(("host",), **QUIET)["host"](tiny_export)
    python_need = read_export(tiny_export).size.arena_min_bytes
    assert 0.9 * python_need < measured.arena_bytes <= 1.1 * python_need
    assert measured.image_flash_bytes is None  # a host build has no microcontroller image
