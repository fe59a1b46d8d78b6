"""LUT weight compression: BatchNorm folding, clustering, the decoder mirror, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest

from keras_asc.dataset import SCENE_LABELS
from keras_asc.training_config import TrainConfig
from tflite_export.compression import (CompressionConfig, CompressionError, check_compressed, cluster_finetune,
                                       compress_model, decode_lut, fold_batchnorm, lut_compress)
from tflite_export.convert import convert_int8
from tflite_export.flatbuffer import describe_tensors, operator_names, read_model

SHAPE = (16, 24, 1)
ARENA = 1 << 20


@pytest.fixture(scope="module")
def bn_model():
    """A quarter-width ResNet11 whose BatchNorms have non-trivial statistics."""
    import tf_keras as keras

    from keras_asc.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model("resnet11", SHAPE, 10, width=0.25)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n),
                               rng.uniform(0.5, 2, n)])
    return model


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *SHAPE)).astype(np.float32)


def _int8_inputs(n: int) -> np.ndarray:
    return np.random.default_rng(1).integers(-128, 128, size=(n, 1, *SHAPE), dtype=np.int8)


def _clustered(model, config: CompressionConfig):
    clustered, kept_epoch = cluster_finetune(model, None, None, train_config=TrainConfig(), n_classes=len(SCENE_LABELS),
                                             config=config, seed=0, log=lambda *_: None)
    assert kept_epoch is None  # no fine-tuning asked
    return clustered


def _weight_tables(data: bytes) -> list[tuple[str, list[np.ndarray]]]:
    """Every int8 weight tensor, split into the rows one LUT table would cover."""
    model = read_model(data)
    out = []
    for t, info in zip(model.subgraphs[0].tensors, describe_tensors(model)):
        if info.constant and info.dtype == "INT8" and len(info.shape) >= 2:
            w = np.frombuffer(bytes(np.asarray(model.buffers[t.buffer].data, np.uint8)), np.int8).reshape(info.shape)
            out.append((info.name, list(w.reshape(len(info.scales), -1)) if len(info.scales) > 1 else [w.ravel()]))
    return out


def test_fold_batchnorm_keeps_the_outputs(bn_model):
    import tf_keras as keras

    folded = fold_batchnorm(bn_model)
    assert not [la for la in folded.layers if isinstance(la, keras.layers.BatchNormalization)]
    x = _inputs(4)
    np.testing.assert_allclose(folded(x, training=False), bn_model(x, training=False), atol=1e-5)


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_clustered_int8_weights_have_at_most_2_to_the_bits_values_per_table(bn_model, granularity):
    config = CompressionConfig(bits=3, granularity=granularity, finetune_epochs=0)
    data = convert_int8(_clustered(bn_model, config), _inputs(20), per_channel_weights=config.per_channel)
    tables = _weight_tables(data)
    assert len(tables) == 14  # every convolution of ResNet11
    for name, rows in tables:
        assert (len(rows) > 1) == config.per_channel, name
        assert max(len(np.unique(r)) for r in rows) <= 8, name


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_compressed_model_decodes_to_the_uncompressed_and_runs_identically(bn_model, granularity):
    config = CompressionConfig(bits=4, granularity=granularity, finetune_epochs=0)
    data = convert_int8(_clustered(bn_model, config), _inputs(20), per_channel_weights=config.per_channel)
    compressed, record = compress_model(data, _int8_inputs(5), config=config, arena_bytes=ARENA,
                                        finetune_seconds=0.0, log=lambda *_: None)
    assert operator_names(read_model(compressed)).count("TFLM_DECODE") == 14
    assert record.compressed_bytes == len(compressed) and record.uncompressed_bytes == len(data)
    assert sum(t.index_bytes for t in record.tensors) < sum(t.original_bytes for t in record.tensors) / 1.9
    assert record.checked_inputs == 5 and len(record.tensors) == 14
    assert all(t.values <= 16 and t.index_bytes == -(-4 * int(np.prod(t.shape)) // 8) for t in record.tensors)
    assert all((t.tables > 1) == config.per_channel for t in record.tensors)


def test_decode_lut_reads_big_endian_indices_and_one_table_per_channel():
    # two channels of three 3-bit indices, tables of stride 8; DCM: LUT type 0, version 1, byte 5 = bits
    indices = [1, 2, 3, 4, 5, 6]
    bits = "".join(f"{i:03b}" for i in indices)
    bits += "0" * (-len(bits) % 8)
    encoded = int(bits, 2).to_bytes(len(bits) // 8, "big")
    dcm = bytes([0, 1, 0, 0, 1, 3, 8]) + bytes(9)
    tables = np.arange(16, dtype=np.int8) * np.int8(-3)
    decoded = decode_lut(encoded, dcm + tables.tobytes(), shape=(2, 3), n_scales=2, quantized_dimension=0)
    np.testing.assert_array_equal(decoded, [tables[[1, 2, 3]], tables[[8 + 4, 8 + 5, 8 + 6]]])


def test_a_per_tensor_table_on_per_channel_weights_is_refused_with_the_tensor_named():
    """The trap the issue names: TFLM's decoder takes one table per quantization scale, so one
    table for a per-channel quantized tensor decodes to other weights, without any error."""
    import tf_keras as keras
    from tflite_micro.tensorflow.lite.micro.compression import spec
    from tflite_micro.tensorflow.lite.micro.compression.compress import compress

    inp = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="three_valued")
    model = keras.Model(inp, keras.layers.Softmax()(keras.layers.GlobalAveragePooling2D()(conv(inp))))
    pattern = np.random.default_rng(0).integers(-1, 2, size=(3, 3, 1, 4)).astype(np.float32)
    conv.set_weights([pattern * np.array([0.1, 0.5, 1.0, 2.0], np.float32)])  # int8: -127, 0, 127 per channel
    data = convert_int8(model, np.random.default_rng(0).normal(size=(20, 8, 8, 1)).astype(np.float32))
    (index,) = [t.index for t in describe_tensors(read_model(data)) if t.constant and len(t.shape) == 4]
    wrong = bytes(compress(data, [spec.Tensor(subgraph=0, tensor=index, compression=[
        spec.LookUpTableCompression(index_bitwidth=2, mode=spec.PerTensor())])]))
    with pytest.raises(CompressionError, match="three_valued"):
        check_compressed(wrong, data, np.zeros((1, 1, 8, 8, 1), np.int8), arena_bytes=ARENA)


def test_unclustered_weights_are_refused_before_compressing(bn_model):
    data = convert_int8(bn_model, _inputs(20))
    with pytest.raises(CompressionError, match="at most 4 distinct int8 values"):
        lut_compress(data, bits=2)


@pytest.mark.parametrize("kwargs", [dict(bits=0), dict(bits=8), dict(granularity="layer"), dict(finetune_epochs=-1),
                                    dict(label_weight=1.5)])
def test_invalid_compression_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        CompressionConfig(**kwargs)


# ----------------------------------------------------------------------------- the export
def test_compressed_export_writes_the_twin_the_float_model_and_the_record(tiny_compressed_export):
    from keras_asc import artifacts
    from tflite_export.export_result import FLOAT_MODEL, UNCOMPRESSED_MODEL, read_export

    exp = read_export(tiny_compressed_export)
    data = (tiny_compressed_export / "model.tflite").read_bytes()
    assert exp.quantization_path == "clustered" and exp.float_model == FLOAT_MODEL
    assert (tiny_compressed_export / FLOAT_MODEL).is_file()
    assert exp.compression.compressed_bytes == len(data) == exp.size.flatbuffer_bytes
    twin = tiny_compressed_export / UNCOMPRESSED_MODEL
    assert artifacts.sha256_file(twin) == exp.compression.uncompressed_sha256
    assert "TFLM_DECODE" in exp.ops and "AddDecode()" in (tiny_compressed_export / "model_settings.h").read_text()
    assert exp.compression.checked_inputs == exp.calibration.size
    assert exp.compression.config.finetune_epochs == 2 and exp.compression.finetune_best_epoch in (1, 2)
    assert artifacts.sha256_file(tiny_compressed_export / FLOAT_MODEL) == exp.float_model_sha256
    # the decoded weights' share of the arena is measured and reported
    c = exp.compression
    assert c.arena_bytes == exp.arena_needs["reference kernels (tflite-micro Python)"]
    assert c.arena_bytes >= c.uncompressed_arena_bytes > 0
    assert exp.converter["weights"] == "int8 per-tensor"
    report = (tiny_compressed_export / "size_report.txt").read_text()
    assert "LUT compression (4-bit LUT, one table per tensor)" in report
    assert f"+{c.arena_bytes - c.uncompressed_arena_bytes:,d} for the decoded weights" in report
    assert all(t.name in report for t in exp.compression.tensors)


def test_compressed_export_validates_against_its_uncompressed_twin(tiny_compressed_export, tiny_dataset, tiny_work):
    from firmware_harness.validation.export_validation import validate_export

    report = validate_export(tiny_compressed_export / "model.tflite", tiny_dataset, tiny_work, layer_clips=2,
                             log=lambda *_: None)
    assert report.passed, report.failures
    assert report.compressed_agreement.clips == report.clips
    assert report.compressed_agreement.clips_with_any_difference == 0


def test_a_replaced_float_model_is_refused_by_validation(tiny_compressed_export, tiny_dataset, tiny_work, tmp_path):
    import shutil

    from firmware_harness.validation.export_validation import validate_export
    from tflite_export.export_result import FLOAT_MODEL, StaleExport

    export = tmp_path / "export"
    shutil.copytree(tiny_compressed_export, export)
    (export / FLOAT_MODEL).write_bytes((export / FLOAT_MODEL).read_bytes() + b"x")
    with pytest.raises(StaleExport, match="float_model.keras: differs from the file `asc export` wrote"):
        validate_export(export / "model.tflite", tiny_dataset, tiny_work, log=lambda *_: None)


def test_qat_and_compression_together_are_refused_with_nothing_written(tiny_run, tiny_dataset, tiny_work, tmp_path):
    from tflite_export.convert import ConversionError
    from tflite_export.export import ExportConfig, export_run

    with pytest.raises(ConversionError, match="--qat and --compress"):
        export_run(tiny_run, tiny_dataset, tiny_work, config=ExportConfig(
            qat=True, compression=CompressionConfig(), export_dir=tmp_path / "export"), log=lambda *_: None)
    assert not (tmp_path / "export").exists()
