"""Any int8 .tflite without an export folder (``firmware_harness.model_file`` and its rooms): the two MLPerf Tiny
reference models validate (TFLM against LiteRT, every disagreement localized and explained) and run
bit-exact in the firmware; what the harness cannot run is refused by name; the generated op
resolver registers exactly the model's operators.

The firmware tests skip, saying why, when a toolchain or the TFLM source archives are missing.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest

from firmware_harness import model_file
from firmware_harness.builds import tflm_build, third_party
from firmware_harness.builds.model_sources import prepare_model_sources
from firmware_harness.builds.program import has_frontend, resolver_methods
from firmware_harness.builds.targets import TARGETS
from firmware_harness.firmware import model_firmware
from firmware_harness.firmware.check import TflmTruth
from firmware_harness.firmware.model_firmware import check_model_firmware, check_model_target
from firmware_harness.model_file import DynamicShapeError, FloatModelError, UnsupportedOperatorError, read_model_file
from firmware_harness.model_inputs import InputsFileError, load_inputs
from firmware_harness.validation import model_validation
from firmware_harness.validation.model_validation import validate_model
from keras_asc import artifacts
from tests.firmware_harness.conftest import QUIET, require_targets
from tflite_export import c_sources
from tflite_export.flatbuffer import (
    TFLM_MUTABLE_RESOLVER_METHODS,
    TFLM_OPS_NOT_BUILT,
    TFLM_RESOLVER_METHODS,
    ModelCheckError,
    operator_names,
    read_model,
)

#: ../shared/reference/mlperf_tiny beside the checkout (the nearest folder up that has shared/reference: a
#: checkout of its own or a git worktree one level deeper)
MLPERF = next((p / "shared" / "reference" / "mlperf_tiny" for p in Path(__file__).resolve().parents[3:]
               if (p / "shared" / "reference").is_dir()), Path(__file__).resolve().parents[3] / "shared" / "reference"
              / "mlperf_tiny")
IC, KWS = MLPERF / "ic_resnet8_int8.tflite", MLPERF / "kws_dscnn_int8.tflite"
MODELS = {"ic_resnet8": IC, "kws_dscnn": KWS}
#: Rows of ``default_rng(0).integers(-128, 128, (200, 3072), int8)`` on which LiteRT's reference
#: kernels differ from TFLM on IC ResNet-8 (7 of those 200 rows, all first at FULLY_CONNECTED;
#: ai-edge-litert 2.3.0, tflite-micro 0.dev20261023), and two on which they agree.
IC_DIFFERING_ROWS, IC_AGREEING_ROWS = (37, 58), (0, 1)


def _model(name: str, tmp_path: Path) -> Path:
    """A copy of an MLPerf model in ``tmp_path`` (its default output folders are written beside it)."""
    if not MODELS[name].is_file():
        pytest.skip(f"{MODELS[name]} not found (the MLPerf Tiny reference models of ../shared/reference)")
    path = tmp_path / MODELS[name].name
    path.write_bytes(MODELS[name].read_bytes())
    return path


def _repack(model) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _tiny_int8(tmp_path: Path, name: str, middle) -> Path:
    """A tiny int8 model (tf_keras, the TFLite converter): conv, ``middle(keras, tf, tensor)``, flatten."""
    import tensorflow as tf
    import tf_keras as keras

    import keras_asc.tf_setup  # noqa: F401  (tf_keras, never Keras 3)
    from tflite_export.convert import convert_int8

    inp = keras.Input((4, 4, 1))
    x = keras.layers.Flatten()(middle(keras, tf, keras.layers.Conv2D(2, 1)(inp)))
    data = convert_int8(keras.Model(inp, x), np.random.default_rng(0).normal(size=(8, 4, 4, 1)).astype(np.float32))
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- validation
def test_ic_resnet8_validates_with_every_disagreement_localized(tmp_path):
    """Rows known to differ: each reference-kernel disagreement is pinned on FULLY_CONNECTED, the
    documented float requantization, so validation passes; the reports are written and round-trip."""
    model = _model("ic_resnet8", tmp_path)
    x = np.random.default_rng(0).integers(-128, 128, size=(200, 32, 32, 3), dtype=np.int8)
    inputs = tmp_path / "x.npy"
    np.save(inputs, x[list(IC_DIFFERING_ROWS + IC_AGREEING_ROWS)])
    r = validate_model(model, inputs_path=inputs, workers=1, **QUIET)
    ref = r.agreement_with_tflm["litert_ref"]
    assert r.passed, r.failures
    assert ref.clips == 4 and ref.differing_clip_indices == (0, 1)
    assert [d.index for d in r.reference_divergences] == [0, 1]  # every disagreement localized
    assert {d.op for d in r.reference_divergences} == {"FULLY_CONNECTED"} and all(d.known for d in r.reference_divergences)
    out = tmp_path / "ic_resnet8_int8.validation"
    assert model_validation.read_model_validation_report(out) == r
    assert np.load(out / "inputs.npy").shape == (4, 1, 32, 32, 3) and np.load(out / "outputs.npy").shape == (4, 10)
    md = (out / "validation_report.md").read_text()
    assert "PASSED" in md and "FULLY_CONNECTED: documented" in md
    assert 0 < r.arena.measured_min_bytes < r.arena.header_bytes


def test_kws_dscnn_validates_on_random_inputs(tmp_path):
    model = _model("kws_dscnn", tmp_path)
    r = validate_model(model, random_count=12, seed=1, out_dir=tmp_path / "report", workers=1, **QUIET)
    assert r.passed, r.failures
    assert r.inputs.kind == "random" and r.inputs.count == 12 and r.inputs.seed == 1
    assert r.agreement_with_tflm["litert_ref"].clips == 12
    assert all(d.known for d in r.reference_divergences)
    assert r.ops == ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX")


def test_an_undocumented_divergence_fails(tmp_path, monkeypatch):
    """With FULLY_CONNECTED taken out of the documented differences, the same rows fail, naming it."""
    from firmware_harness.validation import runners

    model = _model("ic_resnet8", tmp_path)
    x = np.random.default_rng(0).integers(-128, 128, size=(200, 32, 32, 3), dtype=np.int8)
    monkeypatch.setattr(runners, "KNOWN_DIFFERENCES", {})
    inputs = tmp_path / "x.npy"
    np.save(inputs, x[list(IC_DIFFERING_ROWS)])
    r = validate_model(model, inputs_path=inputs, workers=1, **QUIET)
    assert not r.passed and "['FULLY_CONNECTED'], not a documented kernel difference, on 2 input(s)" in r.failures[0]


def test_output_folder_never_replaces_what_it_did_not_write(tmp_path):
    model = _model("kws_dscnn", tmp_path)
    mine = tmp_path / "kws_dscnn_int8.validation"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(artifacts.RefusedOverwrite, match=re.escape(str(mine))):
        validate_model(model, random_count=1, **QUIET)
    assert (mine / "notes.txt").read_text() == "mine"
    with pytest.raises(artifacts.RefusedOverwrite, match="input"):
        validate_model(model, random_count=1, out_dir=tmp_path, **QUIET)  # the folder holding the model


# ----------------------------------------------------------------------------- inputs
def test_inputs_with_and_without_the_batch_dimension(tmp_path):
    model = read_model_file(_model("kws_dscnn", tmp_path))
    x = np.arange(3 * 490).astype(np.int8).reshape(3, 49, 10, 1)
    for name, arr in (("with.npy", x[:, None]), ("without.npy", x)):
        np.save(tmp_path / name, arr)
        got = load_inputs(model, inputs_path=tmp_path / name)
        assert got.shape == (3, 490) and got.dtype == np.int8
        np.testing.assert_array_equal(got, x.reshape(3, -1))
    random = load_inputs(model, random_count=4, seed=7)
    assert random.shape == (4, 490) and random.dtype == np.int8
    np.testing.assert_array_equal(random, load_inputs(model, random_count=4, seed=7))


def test_inputs_of_the_wrong_shape_are_refused_naming_the_file(tmp_path):
    model = read_model_file(_model("kws_dscnn", tmp_path))
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 10, 49, 1), np.int8))
    with pytest.raises(InputsFileError, match=rf"{re.escape(str(bad))}: shape \(3, 10, 49, 1\).*has shape "
                                              r"\(1, 49, 10, 1\).*\(N, 1, 49, 10, 1\) or \(N, 49, 10, 1\)"):
        load_inputs(model, inputs_path=bad)


def test_inputs_of_another_dtype_are_refused_naming_the_file(tmp_path):
    model = read_model_file(_model("kws_dscnn", tmp_path))
    bad = tmp_path / "float.npy"
    np.save(bad, np.zeros((3, 49, 10, 1), np.float32))
    with pytest.raises(InputsFileError, match=rf"{re.escape(str(bad))}: dtype float32.*int8.*zero point 83"):
        load_inputs(model, inputs_path=bad)


# ----------------------------------------------------------------------------- refusals
def test_a_float_model_is_refused(float_io_tflite, tmp_path):
    path = tmp_path / "float.tflite"
    path.write_bytes(float_io_tflite)
    with pytest.raises(FloatModelError, match=rf"{re.escape(str(path))}: refused: its input tensor '.*' is FLOAT32"):
        read_model_file(path)


def test_an_operator_tflm_lacks_is_refused_by_name(tmp_path):
    path = _tiny_int8(tmp_path, "tile.tflite",
                      lambda keras, tf, t: keras.layers.Lambda(lambda v: tf.tile(v, [1, 2, 1, 1]))(t))
    assert "TILE" in operator_names(read_model(path.read_bytes()))
    with pytest.raises(UnsupportedOperatorError, match=rf"{re.escape(str(path))}: refused: operator\(s\) \['TILE'\] "
                                                       "are not among the .* MicroMutableOpResolver"):
        read_model_file(path)


def test_a_dynamic_shape_is_refused_naming_the_tensor(tmp_path):
    """-1 in the batch dimension is the converter's unspecified batch (both MLPerf models have it);
    -1 elsewhere is refused."""
    fb = read_model(KWS.read_bytes())
    assert list(fb.subgraphs[0].tensors[0].shapeSignature) == [-1, 49, 10, 1]  # accepted: read_model_file below
    read_model_file(_model("kws_dscnn", tmp_path))
    fb.subgraphs[0].tensors[0].shapeSignature = np.array([-1, -1, 10, 1], np.int32)
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(_repack(fb))
    with pytest.raises(DynamicShapeError, match=rf"{re.escape(str(path))}: refused: tensor 'input_1' has a dynamic "
                                                r"shape \(shape_signature \[-1, -1, 10, 1\]"):
        read_model_file(path)


def test_several_subgraphs_are_refused(tmp_path):
    fb = read_model(KWS.read_bytes())
    fb.subgraphs.append(copy.deepcopy(fb.subgraphs[0]))
    path = tmp_path / "two.tflite"
    path.write_bytes(_repack(fb))
    with pytest.raises(ModelCheckError, match=rf"{re.escape(str(path))}: refused by the model check: 2 subgraphs"):
        read_model_file(path)


def test_cli_exit_statuses(float_io_tflite, tmp_path, capsys):
    """A refused model exits 1 with one paragraph naming it; --inputs with --random is a bad option (2)."""
    from asc_cli.main import main

    path = tmp_path / "float.tflite"
    path.write_bytes(float_io_tflite)
    for command in ("validate", "firmware"):
        assert main([command, str(path)]) == 1
        err = capsys.readouterr().err
        assert f"asc {command}: error: {path}: refused" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        main(["validate", str(path), "--inputs", "x.npy", "--random", "3"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


# ----------------------------------------------------------------------------- generated sources
def test_the_generated_resolver_registers_exactly_the_models_ops(tmp_path):
    for name in MODELS:
        model = _model(name, tmp_path)
        prepared = prepare_model_sources(model, tmp_path / f"{name}.src", **QUIET)
        ops = list(dict.fromkeys(operator_names(read_model(model.read_bytes()))))
        assert resolver_methods(prepared.folder) == [TFLM_MUTABLE_RESOLVER_METHODS[o] for o in ops]
        header = (prepared.folder / "model_settings.h").read_text()
        assert f"constexpr int kNumModelOps = {len(ops)};" in header and "#define MODEL_NO_FRONTEND 1" in header
        assert f"constexpr int kTensorArenaSize = {prepared.arena_bytes};" in header
        assert f"constexpr int kInputElements = {prepared.input.elements};" in header
        assert not has_frontend(prepared.folder)
        assert sorted(p.name for p in prepared.folder.iterdir()) == ["config.json", *model_file.SOURCE_FILES]
        config = artifacts.read_json(prepared.folder / "config.json")
        assert config["files_sha256"] == {f: artifacts.sha256_file(prepared.folder / f) for f in model_file.SOURCE_FILES}
        assert c_sources.cc_array_source(model.read_bytes(), generator="asc firmware") == \
            (prepared.folder / "model_data.cc").read_text()


def test_the_resolver_table_is_the_pinned_tflm_headers():
    """Every MicroMutableOpResolver method the firmware builds can select is in the table (and only
    those); the export's own table is a subset with the same methods."""
    require_targets()
    tree = third_party.prepare_tflm_tree(third_party.locate_third_party(), **QUIET)
    header = (tree / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    buildable = tflm_build._registrations(tree)
    ops = {}
    for method, body in re.findall(r"TfLiteStatus (Add\w+)\((.*?)\n  }", header, re.S):
        m = re.search(r'AddBuiltin\(\s*BuiltinOperator_(\w+)|AddCustom\(\s*"([^"]+)"', body)
        if m and method in buildable:
            ops[m.group(1) or m.group(2)] = method
    assert ops == TFLM_MUTABLE_RESOLVER_METHODS
    assert set(TFLM_OPS_NOT_BUILT.values()) & set(buildable) == set()
    assert all(TFLM_MUTABLE_RESOLVER_METHODS[k] == v for k, v in TFLM_RESOLVER_METHODS.items())


# ----------------------------------------------------------------------------- firmware (slow)
@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_mlperf_model_is_bit_exact_on_host_and_cortex_m4(name, tmp_path):
    require_targets("host", "cortex-m4")
    model = _model(name, tmp_path)
    r = check_model_firmware(model, random_count=3, seed=0, targets=("host", "cortex-m4"), **QUIET)
    assert r.passed, r.failures
    assert [(t.target, t.clips, t.outputs_identical, t.inputs_identical) for t in r.targets] == [
        ("host", 3, 3, 3), ("cortex-m4", 3, 3, 3)]
    out = tmp_path / f"{model.stem}.firmware"
    expected = np.load(out / "expected_outputs.npy")
    for t in r.targets:
        np.testing.assert_array_equal(np.load(out / t.target / "outputs.npy"), expected)
        assert 0 < t.arena_used_bytes <= t.header_arena_bytes == r.sources.arena_bytes
    m4 = r.targets[1].footprint
    assert len(model.read_bytes()) <= m4.flash_by_part["model"] < len(model.read_bytes()) + 64
    assert m4.flash_by_part["frontend"] == m4.flash_by_part["frontend_fft"] == 0  # no front end linked
    assert m4.ram_by_part["tensor_arena"] == r.sources.arena_bytes
    assert model_firmware.read_model_firmware_report(out) == r
    assert "PASSED" in (out / "firmware_report.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_mlperf_model_is_bit_exact_on_cortex_m33(name, tmp_path):
    if "cortex-m33" not in TARGETS:
        pytest.skip("no cortex-m33 target in firmware_harness/builds/targets.py")
    require_targets("cortex-m33")
    r = check_model_firmware(_model(name, tmp_path), random_count=2, seed=0, targets=("cortex-m33",), **QUIET)
    assert r.passed, r.failures
    assert r.targets[0].clips == r.targets[0].outputs_identical == 2


@pytest.mark.slow
def test_the_arena_covers_every_builds_need(tmp_path):
    """KWS DS-CNN with Helium CMSIS-NN kernels needs more arena than TFLM Python plus the margin
    (its depthwise convolutions' scratch buffers): the header is sized from the build's need."""
    from tflite_export.arena import recommended_arena

    require_targets("cortex-m55")
    r = check_model_firmware(_model("kws_dscnn", tmp_path), random_count=2, seed=0, targets=("cortex-m55",), **QUIET)
    assert r.passed, r.failures
    needs = r.sources.arena_needs
    assert needs["cortex-m55 (cmsis_nn)"] > recommended_arena(needs[model_file.PYTHON_NEED])
    assert r.sources.arena_bytes == recommended_arena(max(needs.values())) == r.targets[0].header_arena_bytes
    header = (tmp_path / "kws_dscnn_int8.firmware" / "model_settings.h").read_text()
    assert f"cortex-m55 (cmsis_nn) {needs['cortex-m55 (cmsis_nn)']:,d}" in header


@pytest.mark.slow
def test_a_differing_firmware_is_localized_to_its_operator(tmp_path):
    """One weight of the first convolution edited in the generated model_data.cc: the host build
    differs from TFLM Python, and the difference is pinned on operator 0."""
    require_targets("host")
    model = _model("kws_dscnn", tmp_path)
    prepared = prepare_model_sources(model, tmp_path / "src", **QUIET)
    data = bytearray(model.read_bytes())
    fb = read_model(bytes(data))
    conv = fb.subgraphs[0].operators[0]
    weights = bytes(fb.buffers[fb.subgraphs[0].tensors[conv.inputs[1]].buffer].data)
    at = data.find(weights)
    data[at] = (data[at] + 64) % 256
    (prepared.folder / "model_data.cc").write_text(c_sources.cc_array_source(bytes(data)))
    x = load_inputs(prepared.model, random_count=2, seed=0)
    truth = TflmTruth(prepared.model.data, x.reshape(2, 49, 10, 1), arena=prepared.arena_bytes).outputs(np.arange(2))
    tree = third_party.prepare_tflm_tree(third_party.locate_third_party(), **QUIET)
    result, failures = check_model_target("host", prepared, tree=tree, out_dir=tmp_path / "host", x=x,
                                          truth_outputs=truth, **QUIET)
    d = result.first_output_divergence
    assert failures and result.outputs_identical < 2
    assert d["input"] == 0 and d["op_index"] == 0 and d["op"] == "CONV_2D" and d["runner"] == "host"
