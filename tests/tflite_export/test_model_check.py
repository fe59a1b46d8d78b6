"""The model check (tflite_export.model_check): one behaviour per test, on the MLPerf Tiny reference
models (valid, not made by this project) edited one field at a time."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from tflite_export.flatbuffer import _schema, operator_names, read_model
from tflite_export.model_check import ModelCheckError, check_model

REFERENCE = Path("/work/shared/reference/mlperf_tiny")
KWS = REFERENCE / "kws_dscnn_int8.tflite"
RESNET = REFERENCE / "ic_resnet8_int8.tflite"
SOURCE = "/models/edited.tflite"


def pack(model) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def edited(path: Path, edit) -> bytes:
    """``path``'s model with ``edit(model)`` applied, packed again."""
    model = read_model(path.read_bytes())
    edit(model)
    return pack(model)


def op_index(model, name: str) -> int:
    return operator_names(model).index(name)


def op(model, name: str):
    return model.subgraphs[0].operators[op_index(model, name)]


def tensor(model, index) -> object:
    return model.subgraphs[0].tensors[int(index)]


def refusal(data: bytes) -> str:
    with pytest.raises(ModelCheckError) as e:
        check_model(data, source=SOURCE)
    return str(e.value)


# ----------------------------------------------------------------------------- valid models pass
@pytest.mark.parametrize("path", [KWS, RESNET], ids=lambda p: p.stem)
def test_reference_models_pass(path):
    report = check_model(path.read_bytes(), source=str(path))
    assert (report.subgraphs, report.warnings) == (1, ())
    assert report.operators == len(report.operator_names) > 0


def test_report_gives_the_io_tensor_indices():
    model = read_model(KWS.read_bytes())
    report = check_model(KWS.read_bytes(), source=str(KWS))
    g = model.subgraphs[0]
    assert (report.inputs, report.outputs) == (tuple(g.inputs), tuple(g.outputs))


def test_repacked_model_passes():
    check_model(edited(KWS, lambda m: None), source=SOURCE)


def test_omitted_optional_bias_passes():
    def drop_bias(m):
        op(m, "CONV_2D").inputs = [*op(m, "CONV_2D").inputs[:2], -1]
    check_model(edited(KWS, drop_bias), source=SOURCE)


def lut_compressed_kws() -> bytes:
    """The KWS model with 16 values per weight tensor, LUT-compressed (4-bit indices, TFLM_DECODE)."""
    from tflite_export.compression import lut_compress

    def sixteen_values(m):  # and opcodes in the current form: the compressor merges old-style ones (builtin 0)
        for oc in m.operatorCodes:
            oc.builtinCode = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        for t in m.subgraphs[0].tensors:
            buf = m.buffers[t.buffer]
            if t.type == _schema().TensorType.INT8 and buf.data is not None and len(buf.data) and len(t.shape) >= 2:
                buf.data = ((np.asarray(buf.data).view(np.int8) // 16) * 16).view(np.uint8)
    return lut_compress(edited(KWS, sixteen_values), bits=4)


def test_lut_compressed_model_passes():
    assert "TFLM_DECODE" in check_model(lut_compressed_kws(), source=SOURCE).operator_names


def test_suspect_scale_is_a_warning_naming_the_tensor():
    def tiny_scale(m):
        tensor(m, op(m, "CONV_2D").outputs[0]).quantization.scale = [1e-25]
    report = check_model(edited(KWS, tiny_scale), source=SOURCE)
    assert len(report.warnings) == 1 and "1e-25" in report.warnings[0]


# ----------------------------------------------------------------------------- the message
def test_refusal_is_one_paragraph_naming_the_file_and_the_fix():
    msg = refusal(edited(KWS, lambda m: setattr(m.subgraphs[0], "operators", [])))
    assert msg.startswith(SOURCE + ":") and "\n" not in msg and "convert" in msg.lower()


def test_not_a_flatbuffer_is_refused_naming_the_file():
    assert refusal(b"\x00" * 64).startswith(SOURCE + ": refused by the model check: not a readable TFLite flatbuffer")


def test_tflm_runner_runs_the_check_before_building_an_interpreter():
    from tflite_export.tflm_runtime import TflmRunner

    with pytest.raises(ModelCheckError, match="^model.tflite: .*no operators"):
        TflmRunner(edited(KWS, lambda m: setattr(m.subgraphs[0], "operators", [])), arena_bytes=1 << 20,
                   source="model.tflite")


# ----------------------------------------------------------------------------- issue 28's cases
def test_opcode_index_out_of_range():
    msg = refusal(edited(KWS, lambda m: setattr(m.subgraphs[0].operators[2], "opcodeIndex", 40)))
    assert "operator 2 has opcode index 40" in msg


def test_output_shape_not_matching_what_its_operator_computes():
    def widen(m):
        tensor(m, op(m, "FULLY_CONNECTED").outputs[0]).shape = [1, 13]
    assert f"operator {op_index(read_model(KWS.read_bytes()), 'FULLY_CONNECTED')} (FULLY_CONNECTED)'s output has " \
           "shape [1, 13]" in refusal(edited(KWS, widen))


def test_input_scale_zero():
    def zero(m):
        tensor(m, m.subgraphs[0].inputs[0]).quantization.scale = [0.0]
    assert "has quantization scale 0.0" in refusal(edited(KWS, zero))


def test_weight_buffer_cut_short():
    def cut(m):
        buf = m.buffers[tensor(m, op(m, "FULLY_CONNECTED").inputs[1]).buffer]
        buf.data = buf.data[:-7]
    assert "bytes of data, but its buffer" in refusal(edited(KWS, cut))


def test_no_operators():
    assert "no operators" in refusal(edited(KWS, lambda m: setattr(m.subgraphs[0], "operators", [])))


# ----------------------------------------------------------------------------- structure
def test_schema_version_other_than_3():
    assert "schema version 2" in refusal(edited(KWS, lambda m: setattr(m, "version", 2)))


def test_two_subgraphs():
    assert "2 subgraphs" in refusal(edited(KWS, lambda m: m.subgraphs.append(copy.deepcopy(m.subgraphs[0]))))


def test_operator_input_index_out_of_range():
    def bad(m):
        m.subgraphs[0].operators[0].inputs = [999, *m.subgraphs[0].operators[0].inputs[1:]]
    assert "operator 0 (CONV_2D) has input tensor index 999" in refusal(edited(KWS, bad))


def test_required_input_omitted():
    def bad(m):
        m.subgraphs[0].operators[0].inputs = [-1, *m.subgraphs[0].operators[0].inputs[1:]]
    assert "needs its first 2 input(s) present" in refusal(edited(KWS, bad))


def test_model_output_index_out_of_range():
    assert "output refers to tensor 500" in refusal(edited(KWS, lambda m: setattr(m.subgraphs[0], "outputs", [500])))


def test_buffer_index_out_of_range():
    def bad(m):
        tensor(m, 3).buffer = len(m.buffers) + 2
    assert "refers to buffer" in refusal(edited(KWS, bad))


def test_negative_dimension():
    def bad(m):
        tensor(m, m.subgraphs[0].inputs[0]).shape = [1, -1, 10, 1]
    assert "negative dimension" in refusal(edited(KWS, bad))


def test_tensor_too_large_for_tflm_sizes():
    def bad(m):
        tensor(m, op(m, "SOFTMAX").outputs[0]).shape = [1, 1 << 30, 4]
    assert "more than TFLM's 32-bit sizes" in refusal(edited(KWS, bad))


def test_unknown_tensor_type():
    assert "type code 99" in refusal(edited(KWS, lambda m: setattr(tensor(m, 3), "type", 99)))


def test_type_tflm_cannot_allocate():
    variant = _schema().TensorType.VARIANT
    assert "type VARIANT, which TFLM cannot allocate" in refusal(
        edited(KWS, lambda m: setattr(tensor(m, op(m, "SOFTMAX").outputs[0]), "type", variant)))


def test_buffer_outside_the_vector():
    def bad(m):
        m.buffers[1].offset, m.buffers[1].size = 1 << 20, 64
    assert "outside the flatbuffer's buffer vector" in refusal(edited(KWS, bad))


def test_tensor_read_before_written():
    def bad(m):  # the softmax reads the model's output (written after it)
        op(m, "SOFTMAX").inputs = [op(m, "FULLY_CONNECTED").outputs[0]]
        op(m, "FULLY_CONNECTED").outputs = [op(m, "SOFTMAX").outputs[0]]
        op(m, "SOFTMAX").outputs = [op(m, "SOFTMAX").inputs[0]]
    msg = refusal(edited(KWS, bad))
    assert "before any operator writes it" in msg or "written by no operator" in msg


def test_variable_tensor_read_before_written_passes():
    def variable(m):  # an unwritten tensor that is a variable is state, not garbage
        t = op(m, "SOFTMAX").outputs[0]
        extra = copy.deepcopy(tensor(m, t))
        extra.isVariable = True
        m.subgraphs[0].tensors.append(extra)
        op(m, "SOFTMAX").inputs = [len(m.subgraphs[0].tensors) - 1]
    check_model(edited(KWS, variable), source=SOURCE)


def test_operator_writing_into_a_constant():
    def bad(m):
        op(m, "SOFTMAX").outputs = [op(m, "FULLY_CONNECTED").inputs[1]]
    assert "which is a constant" in refusal(edited(KWS, bad))


def test_stride_zero():
    assert "strideW 0" in refusal(edited(KWS, lambda m: setattr(op(m, "CONV_2D").builtinOptions, "strideW", 0)))


def test_options_of_another_kind():
    def bad(m):
        pool, conv = op(m, "AVERAGE_POOL_2D"), op(m, "CONV_2D")
        pool.builtinOptionsType, pool.builtinOptions = conv.builtinOptionsType, copy.deepcopy(conv.builtinOptions)
    assert "carries Conv2DOptions, not the Pool2DOptions" in refusal(edited(KWS, bad))


def test_filter_of_wrong_rank():
    def bad(m):
        conv = op(m, "CONV_2D")
        conv.inputs = [conv.inputs[0], conv.inputs[2], conv.inputs[2]]
    assert "needs rank 4" in refusal(edited(KWS, bad))


def test_reshape_changing_the_element_count():
    def bad(m):
        tensor(m, op(m, "RESHAPE").outputs[0]).shape = [1, 65]
    assert "elements) to [1, 65]" in refusal(edited(KWS, bad))


# ----------------------------------------------------------------------------- quantization
def test_scale_not_finite():
    def bad(m):
        tensor(m, op(m, "CONV_2D").outputs[0]).quantization.scale = [float("nan")]
    assert "scale nan" in refusal(edited(KWS, bad))


def test_negative_per_channel_scale_names_the_channel():
    def bad(m):
        q = tensor(m, op(m, "CONV_2D").inputs[1]).quantization
        q.scale = [*q.scale[:3], -0.5, *q.scale[4:]]
    assert "scale -0.5 (channel 3)" in refusal(edited(KWS, bad))


def test_zero_point_count_not_the_scale_count():
    def bad(m):
        q = tensor(m, op(m, "CONV_2D").inputs[1]).quantization
        q.zeroPoint = q.zeroPoint[:-1]
    assert "zero point(s)" in refusal(edited(KWS, bad))


def test_zero_point_out_of_int8_range_on_a_clamped_tensor_is_refused():
    def bad(m):  # the first conv has a fused ReLU
        assert op(m, "CONV_2D").builtinOptions.fusedActivationFunction != 0
        tensor(m, op(m, "CONV_2D").outputs[0]).quantization.zeroPoint = [128]
    assert "zero point 128, outside INT8's range -128..127, and an activation" in refusal(edited(KWS, bad))


def test_zero_point_out_of_int8_range_on_the_input_is_a_warning():
    def odd(m):
        tensor(m, m.subgraphs[0].inputs[0]).quantization.zeroPoint = [200]
    (warning,) = check_model(edited(KWS, odd), source=SOURCE).warnings
    assert "zero point 200, outside INT8's range -128..127" in warning


def test_zero_point_beyond_int16_is_refused():
    def bad(m):
        tensor(m, m.subgraphs[0].inputs[0]).quantization.zeroPoint = [40000]
    assert "zero point 40000" in refusal(edited(KWS, bad))


def test_per_channel_scales_not_the_channel_count():
    def bad(m):
        q = tensor(m, op(m, "CONV_2D").inputs[1]).quantization
        q.scale, q.zeroPoint = q.scale[:-1], q.zeroPoint[:-1]
    assert "per-channel scales, but its dimension 0" in refusal(edited(KWS, bad))


def test_quantized_dimension_beyond_the_rank():
    def bad(m):
        tensor(m, op(m, "CONV_2D").inputs[1]).quantization.quantizedDimension = 4
    assert "along dimension 4" in refusal(edited(KWS, bad))


def test_add_output_scale_too_small_for_tflm():
    def bad(m):
        tensor(m, op(m, "ADD").outputs[0]).quantization.scale = [1e-9]
    assert "(ADD): its output scale 1e-09 is too small" in refusal(edited(RESNET, bad))


def test_softmax_negative_beta():
    assert "beta -1 times its input scale" in refusal(
        edited(KWS, lambda m: setattr(op(m, "SOFTMAX").builtinOptions, "beta", -1.0)))


def test_operator_changed_to_one_needing_more_inputs():
    def bad(m):  # SOFTMAX's code turned into LOGICAL_OR, which reads two inputs
        m.operatorCodes[op(m, "SOFTMAX").opcodeIndex].deprecatedBuiltinCode = _schema().BuiltinOperator.LOGICAL_OR
    assert "LOGICAL_OR needs its first 2 input(s) present" in refusal(edited(KWS, bad))


def test_activation_without_elements():
    def bad(m):
        tensor(m, m.subgraphs[0].inputs[0]).shape = [1, 49, 10, 0]
    assert "which has no elements" in refusal(edited(KWS, bad))


def test_depthwise_bias_given_as_omitted():
    def bad(m):
        dw = op(m, "DEPTHWISE_CONV_2D")
        dw.inputs = [*dw.inputs[:2], -1]
    assert "omitted bias (-1) as its third input" in refusal(edited(KWS, bad))


def test_lut_indices_cut_short():
    model = read_model(lut_compressed_kws())
    buf = model.buffers[tensor(model, op(model, "TFLM_DECODE").inputs[0]).buffer]
    buf.data = buf.data[: len(buf.data) // 2]
    assert "bit indices for its output" in refusal(pack(model))


def test_builtin_code_that_is_no_operator():
    def bad(m):
        code = m.operatorCodes[op(m, "SOFTMAX").opcodeIndex]
        code.deprecatedBuiltinCode, code.builtinCode = 127, 1000
    assert "builtin code 1000 is no TFLite operator" in refusal(edited(KWS, bad))


def test_operator_names_of_a_damaged_model_raise_the_check_error_not_index_error():
    model = read_model(edited(KWS, lambda m: setattr(m.subgraphs[0].operators[2], "opcodeIndex", 40)))
    with pytest.raises(ModelCheckError, match="operator 2 has opcode index 40"):
        operator_names(model)
