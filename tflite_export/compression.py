"""Weight compression: clustering-aware fine-tuning, then TFLM's look-up-table (LUT) compression.

``asc export --compress`` runs, in order:

1. :func:`fold_batchnorm`: every BatchNormalization that directly follows a convolution is
   folded into that convolution's kernel and bias, exactly as the converter would fold it. The
   clusters are then formed on the weights the flatbuffer stores (clustering before the fold
   would be undone by the fold's per-channel scaling: 16 values per layer become 16 per channel).
2. :func:`cluster_finetune`: tensorflow-model-optimization clusters every convolution and dense
   kernel to ``2**bits`` values (per layer, or per output channel), fine-tunes it at a tenth of
   the run's learning rate (as QAT does) for as many epochs as the run trained, keeps the epoch
   with the lowest evaluate-split log loss (as training picked the run's model), and strips the
   wrappers. Each kernel then has at most ``2**bits`` distinct float values (per tensor or per
   channel).
3. Conversion as for PTQ, with **per-tensor** int8 weights for ``granularity="tensor"`` (one
   scale per tensor keeps at most ``2**bits`` distinct int8 values per tensor) and per-channel
   weights for ``"channel"``.
4. :func:`lut_compress`: the ``tflite-micro`` package's compressor replaces each int8 weight
   tensor by ``bits``-bit indices and value tables, read at run time by a ``TFLM_DECODE``
   operator. The table layout follows the tensor's quantization: one table per quantization
   scale. That is what the pinned TFLM C++ decoder assumes (``decode_state_lut.cc`` takes the
   channel count from the weights' scales); a per-tensor table on per-channel weights decodes
   garbage there without any error.
5. :func:`check_compressed`: every compressed tensor is decoded back in Python the way the
   pinned C++ decoder does (:func:`decode_lut`) and compared with the uncompressed weights, and
   both models run through TFLM on the calibration inputs; any difference raises
   :class:`CompressionError` naming the tensor, and nothing is written.

Pruning is not offered: TFLM's kernels do not skip zeros, and LUT indices cost the same bits
for a zero as for any other value, so zeros would save neither time nor flash here.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import time

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)

import numpy as np  # noqa: E402

from keras_asc import artifacts  # noqa: E402
from keras_asc.errors import AscError  # noqa: E402
from keras_asc.finetune import (FINETUNE_LEARNING_RATE_DIVISOR, compile_for_training,  # noqa: E402
                                finetune_batches, finetune_config, validation_data)
from tflite_export.flatbuffer import _schema, operator_names, read_model_shared  # noqa: E402
from tflite_export.tflm_runtime import TflmRunner  # noqa: E402

GRANULARITIES = ("tensor", "channel")
DECODE_OP = "TFLM_DECODE"  # the custom operator's name in the flatbuffer
_DCM_BYTES = 16  # DECODE common metadata ahead of the value tables


class CompressionError(AscError, ValueError):
    """The model cannot be compressed as asked, or its compressed form does not decode to it."""


@dataclasses.dataclass(frozen=True)
class CompressionConfig:
    """How ``asc export --compress`` compresses (saved in the export's config.json)."""

    bits: int = 4  # index bits: at most 2**bits values per table
    granularity: str = "tensor"  # "tensor": one table and one int8 scale per tensor; "channel": per output channel
    # fine-tuning epochs; None: as many as the run was trained for (the export records the number).
    # On the demo run, fine-tuning on the labels alone at a constant rate, 10, 20 and 40 (its own
    # count) epochs gave 65.0, 69.2 and 70.0 % float accuracy (an experiment before distillation).
    finetune_epochs: int | None = None
    # fine-tune at the run's learning rate / this (as QAT)
    learning_rate_divisor: float = FINETUNE_LEARNING_RATE_DIVISOR
    # fine-tuning loss: label_weight x cross-entropy with the labels + (1 - label_weight) x KL divergence
    # from the uncompressed model's outputs (distillation); 1.0: labels only
    label_weight: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 7:
            raise ValueError(f"compression bits must be 1-7 (TFLM's LUT decoder), got {self.bits}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"compression granularity must be one of {GRANULARITIES}, got {self.granularity!r}")
        if ((self.finetune_epochs is not None and self.finetune_epochs < 0) or self.learning_rate_divisor <= 0
                or not 0.0 <= self.label_weight <= 1.0):
            raise ValueError(f"invalid compression fine-tuning: {self}")

    @property
    def per_channel(self) -> bool:
        return self.granularity == "channel"

    def describe(self) -> str:
        return f"{self.bits}-bit LUT, one table per {self.granularity}"


@dataclasses.dataclass(frozen=True)
class CompressedTensorRecord:
    """One weight tensor before and after LUT compression."""

    name: str
    shape: tuple[int, ...]
    tables: int  # value tables (1, or one per output channel)
    values: int  # most distinct values in one table
    original_bytes: int  # int8 weights in the uncompressed flatbuffer
    index_bytes: int  # packed indices
    table_bytes: int  # DECODE metadata + value tables


@dataclasses.dataclass(frozen=True)
class CompressionRecord:
    """What the export's compression did and what it checked."""

    config: CompressionConfig
    uncompressed_bytes: int  # model_uncompressed.tflite (same int8 model, weights stored whole)
    compressed_bytes: int  # model.tflite
    uncompressed_sha256: str
    tensors: tuple[CompressedTensorRecord, ...]
    checked_inputs: int  # calibration inputs whose TFLM outputs were identical in both models
    finetune_seconds: float
    finetune_best_epoch: int | None  # the fine-tuning epoch kept (lowest evaluate-split log loss)
    # TFLM's measured arena need of both models: the decoded weights live in the arena
    arena_bytes: int | None = None
    uncompressed_arena_bytes: int | None = None


# ----------------------------------------------------------------------------- float model
def fold_batchnorm(model):
    """A copy of functional ``model`` in which every BatchNormalization that directly follows a
    Conv2D (its only consumer) is folded into it: ``w * g``, ``(b - mean) * g + beta`` with
    ``g = gamma / sqrt(var + eps)``. The BatchNormalization becomes an Identity of the same name,
    so layer names (and the harness's layer matching) stay. Outputs equal the original's in
    inference mode up to float rounding."""
    import tf_keras as keras  # heavy: loads TensorFlow
    from tf_keras import layers

    folded_into: dict[str, layers.BatchNormalization] = {}
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization) and len(layer._inbound_nodes) == 1:
            src = layer._inbound_nodes[0].inbound_layers
            if isinstance(src, layers.Conv2D) and len(src._outbound_nodes) == 1:
                folded_into[src.name] = layer
    folded_bn = {bn.name for bn in folded_into.values()}

    def clone(layer):
        cfg = layer.get_config()
        if layer.name in folded_bn:
            return layers.Identity(name=layer.name)
        if layer.name in folded_into:
            cfg["use_bias"] = True
        return layer.__class__.from_config(cfg)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name in folded_bn:
            continue
        if layer.name in folded_into:
            bn = folded_into[layer.name]
            g = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
            bias = layer.bias.numpy() if layer.use_bias else 0.0
            new.get_layer(layer.name).set_weights([layer.kernel.numpy() * g,
                                                   (bias - bn.moving_mean.numpy()) * g + bn.beta.numpy()])
        else:
            new.get_layer(layer.name).set_weights(layer.get_weights())
    return new


def cluster_finetune(model, fs, normalization, *, train_config, n_classes: int, config: CompressionConfig, seed: int,
                     log=print) -> tuple[object, int | None]:
    """Fold BatchNorm, cluster every Conv2D and Dense kernel to ``2**bits`` values with tfmot,
    fine-tune for ``config.finetune_epochs`` (None: the run's epochs) on the training split (the
    run's pipeline, without mixup, at a constant learning rate) towards the labels and the
    uncompressed ``model``'s outputs (:func:`_distilling`), and keep the epoch with the lowest log
    loss on the evaluate split, as training chose the run's model; strip the wrappers.

    Returns the plain tf_keras model whose kernels hold the clustered values, and the epoch kept
    (None when there was no fine-tuning)."""
    import tensorflow_model_optimization as tfmot  # heavy: loads TensorFlow
    import tf_keras as keras
    from tf_keras import layers  # heavy: loads TensorFlow

    clustering = tfmot.clustering.keras
    keras.utils.set_random_seed(seed)
    folded = fold_batchnorm(model)

    def wrap(layer):  # the folded model is ours alone, so its other layers are reused as they are
        if isinstance(layer, (layers.Conv2D, layers.Dense)):
            return clustering.cluster_weights(
                layer, number_of_clusters=2 ** config.bits, cluster_per_channel=config.per_channel,
                cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS)
        return layer

    clustered = keras.models.clone_model(folded, clone_function=wrap)
    ft_cfg = finetune_config(train_config, seed=seed, learning_rate_divisor=config.learning_rate_divisor)
    trainer = _distilling(clustered, model, label_weight=config.label_weight)
    compile_for_training(trainer, ft_cfg)  # its loss and metrics score the evaluate split; fit uses _distilling's
    epochs = train_config.epochs if config.finetune_epochs is None else config.finetune_epochs
    if not epochs:
        return clustering.strip_clustering(clustered), None
    batches = finetune_batches(fs, normalization=normalization, config=ft_cfg, n_classes=n_classes)
    validation = validation_data(fs, normalization=normalization, config=ft_cfg, n_classes=n_classes)
    best = {"loss": math.inf, "epoch": None, "weights": None}

    class KeepBest(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs["val_log_loss"] < best["loss"]:
                best.update(loss=logs["val_log_loss"], epoch=epoch + 1, weights=clustered.get_weights())

    log(f"export: clustering to {2 ** config.bits} values per {config.granularity}, fine-tuning for {epochs} "
        f"epoch(s) (labels x {config.label_weight:g}, the uncompressed model's outputs x {1 - config.label_weight:g}), "
        "keeping the one with the lowest evaluate-split log loss")
    trainer.fit(batches, epochs=epochs, verbose=2, validation_data=validation, callbacks=[KeepBest()])
    clustered.set_weights(best["weights"])
    log(f"export: kept fine-tuning epoch {best['epoch']} (log loss {best['loss']:.4f})")
    return clustering.strip_clustering(clustered), best["epoch"]


def _distilling(student, teacher, *, label_weight: float):
    """A tf_keras model whose training steps move ``student`` towards
    ``label_weight * CE(labels, student) + (1 - label_weight) * KL(teacher || student)`` (the
    teacher's probabilities on the same batch, crops included); its predictions and evaluation are
    the student's. Fine-tuned on the labels alone, the 4-bit demo models ended 5.0 points below
    (seed 1) to 0.4 above (seed 0) their PTQ models; with distillation 0.8 to 5.4 points above."""
    import tensorflow as tf  # heavy: TensorFlow takes seconds to import
    import tf_keras as keras

    class Distilling(keras.Model):
        def __init__(self):
            super().__init__()
            self.student, self.teacher = student, teacher

        def call(self, x, training=False):
            return self.student(x, training=training)

        def train_step(self, data):
            x, labels = data
            target = self.teacher(x, training=False)
            with tf.GradientTape() as tape:
                p = self.student(x, training=True)
                loss = tf.reduce_mean(label_weight * keras.losses.categorical_crossentropy(labels, p)
                                      + (1 - label_weight) * keras.losses.kl_divergence(target, p))
            weights = self.student.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
            return {"loss": loss}

    return Distilling()


# ----------------------------------------------------------------------------- flatbuffer
def lut_compress(data: bytes, *, bits: int) -> bytes:
    """LUT-compress every constant int8 weight tensor (rank >= 2) of flatbuffer ``data``.

    The table layout follows each tensor's quantization (one table per scale, along its
    quantized dimension), the layout the pinned TFLM decoder reads. A tensor with more than
    ``2**bits`` distinct values in a table raises :class:`CompressionError` naming it."""
    # heavy: the TFLM Python package loads its interpreter
    from tflite_micro.tensorflow.lite.micro.compression import spec
    from tflite_micro.tensorflow.lite.micro.compression.compress import compress
    from tflite_micro.tensorflow.lite.micro.compression.compressor import CompressionError as TflmError


    model = read_model_shared(data)
    specs = []
    for i, t in enumerate(model.subgraphs[0].tensors):
        if not _is_weight(model, t):
            continue
        n_scales = len(t.quantization.scale) if t.quantization is not None and t.quantization.scale is not None else 1
        mode = spec.PerChannel(axis=int(t.quantization.quantizedDimension)) if n_scales > 1 else spec.PerTensor()
        specs.append(spec.Tensor(subgraph=0, tensor=i, compression=[
            spec.LookUpTableCompression(index_bitwidth=bits, mode=mode)]))
    if not specs:
        raise CompressionError("the model has no int8 weight tensor to compress")
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # "index_bitwidth larger than necessary" per small tensor
            return bytes(compress(data, specs))
    except TflmError as e:
        raise CompressionError(f"TFLM's compressor refused the model: {e}. Every weight tensor needs at most "
                               f"{2 ** bits} distinct int8 values per table: compress a clustered model "
                               "(`asc export --compress` clusters it first)") from None


def _is_weight(model, t) -> bool:
    buf = model.buffers[t.buffer] if t.buffer is not None and t.buffer < len(model.buffers) else None
    has_data = buf is not None and buf.data is not None and len(buf.data) > 0
    return has_data and t.type == _schema().TensorType.INT8 and t.shape is not None and len(t.shape) >= 2


def decode_lut(encoded: bytes, ancillary: bytes, *, shape: tuple[int, ...], n_scales: int,
               quantized_dimension: int) -> np.ndarray:
    """Decode one LUT-compressed int8 tensor as the pinned TFLM C++ decoder does.

    ``decode_state_lut.cc`` (the commit in ``shared/third_party``): the channel count is the
    number of quantization scales of the decoded tensor; channel ``c``'s table starts at
    ``c * stride`` (DCM byte 6) after the 16-byte DCM; the index width is DCM byte 5, bits 2-0
    (later TFLM versions put the table axis in bits 7-4; this decoder ignores them); indices are
    packed big-endian. Channels run along axis 0, or along the last axis when the weights are
    quantized there. Returns int8 of ``shape``.
    """
    dcm = np.frombuffer(ancillary[:_DCM_BYTES], np.uint8)
    if len(ancillary) < _DCM_BYTES or dcm[0] != 0 or dcm[1] != 1:
        raise CompressionError(f"not a version-1 LUT DECODE metadata block (type {dcm[0] if len(dcm) else None})")
    bits, stride = int(dcm[5]) & 0x07, int(dcm[6])
    count = int(np.prod(shape))
    channels = max(1, n_scales)
    alternate = channels > 1 and quantized_dimension == len(shape) - 1
    if channels > 1 and not alternate and quantized_dimension != 0:
        raise CompressionError(f"quantized dimension {quantized_dimension} is not one TFLM's LUT decoder supports")
    packed = np.unpackbits(np.frombuffer(encoded, np.uint8))[:count * bits]
    if bits == 0 or packed.size != count * bits:
        raise CompressionError(f"{len(encoded)} bytes of indices cannot hold {count} {bits}-bit indices")
    index = packed.reshape(count, bits).astype(np.int64) @ (1 << np.arange(bits - 1, -1, -1))
    position = np.arange(count)
    channel = position % channels if alternate else position // (count // channels)
    tables = np.frombuffer(ancillary[_DCM_BYTES:], np.int8)
    at = channel * stride + index
    if at.max() >= tables.size:
        raise CompressionError(f"an index points past the value tables ({at.max()} >= {tables.size})")
    return tables[at].reshape(shape)


def compressed_tensors(compressed: bytes, uncompressed: bytes) -> list[tuple[CompressedTensorRecord, np.ndarray, np.ndarray]]:
    """For every DECODE operator: its record, the weights decoded as the C++ decoder would,
    and the uncompressed model's weights of the same name. Raises :class:`CompressionError`
    when a decoded tensor has no uncompressed counterpart of the same shape."""
    cm, um = read_model_shared(compressed), read_model_shared(uncompressed)
    by_name = {_name(t): t for t in um.subgraphs[0].tensors}
    g = cm.subgraphs[0]
    out = []
    for op, name in zip(g.operators, operator_names(cm)):
        if name != DECODE_OP:
            continue
        enc_t, anc_t, dec_t = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
        encoded, ancillary = _data(cm, enc_t), _data(cm, anc_t)
        shape = tuple(int(v) for v in dec_t.shape)
        scales = dec_t.quantization.scale if dec_t.quantization is not None and dec_t.quantization.scale is not None else ()
        qdim = int(dec_t.quantization.quantizedDimension) if dec_t.quantization is not None else 0
        orig_t = by_name.get(_name(enc_t))
        if orig_t is None or tuple(int(v) for v in orig_t.shape) != shape:
            raise CompressionError(f"compressed tensor {_name(enc_t)!r} has no uncompressed tensor of shape {shape}")
        original = np.frombuffer(_data(um, orig_t), np.int8).reshape(shape)
        try:
            decoded = decode_lut(encoded, ancillary, shape=shape, n_scales=len(scales), quantized_dimension=qdim)
        except CompressionError as e:
            raise CompressionError(f"compressed tensor {_name(enc_t)!r} {shape} does not decode as TFLM's decoder "
                                   f"reads it: {e}. Nothing was written") from None
        per = (np.moveaxis(original, qdim, 0).reshape(original.shape[qdim], -1) if len(scales) > 1
               else original.reshape(1, -1))  # one row per value table
        rec = CompressedTensorRecord(
            name=_name(enc_t), shape=shape, tables=per.shape[0], values=max(len(np.unique(r)) for r in per),
            original_bytes=original.size, index_bytes=len(encoded), table_bytes=len(ancillary))
        out.append((rec, decoded, original))
    return out


def _name(t) -> str:
    return t.name.decode() if isinstance(t.name, bytes) else str(t.name)


def _data(model, t) -> bytes:
    return bytes(np.asarray(model.buffers[t.buffer].data, np.uint8))


def check_compressed(compressed: bytes, uncompressed: bytes, inputs: np.ndarray, *, arena_bytes: int
                     ) -> tuple[tuple[CompressedTensorRecord, ...], int]:
    """Refuse a compressed model that is not the uncompressed one.

    Decodes every compressed tensor (:func:`decode_lut`) and compares it with the uncompressed
    weights, then runs both models through TFLM's Python runtime on ``inputs`` (int8,
    ``(n, 1, H, W, 1)``) and compares the outputs. Returns the tensors' records and the number
    of inputs checked; raises :class:`CompressionError` naming the first difference."""
    found = compressed_tensors(compressed, uncompressed)
    for rec, decoded, original in found:
        bad = np.flatnonzero(decoded.ravel() != original.ravel())
        if bad.size:
            raise CompressionError(
                f"compressed tensor {rec.name!r} {rec.shape} decodes to other weights than the uncompressed model's: "
                f"{bad.size} of {original.size} differ (first at flat index {bad[0]}: {decoded.ravel()[bad[0]]} instead "
                f"of {original.ravel()[bad[0]]}). Its value tables do not match how TFLM's decoder reads them (one "
                "table per quantization scale). Nothing was written")
    ya, yb = (_tflm_outputs(m, inputs, arena_bytes=arena_bytes) for m in (compressed, uncompressed))
    differs = np.flatnonzero((ya != yb).reshape(len(inputs), -1).any(axis=1))
    if differs.size:
        k = int(differs[0])
        raise CompressionError(
            f"the compressed model's TFLM outputs differ from the uncompressed model's on {differs.size} of "
            f"{len(inputs)} calibration inputs, first input {k} (max difference "
            f"{int(np.abs(ya[k].astype(int) - yb[k].astype(int)).max())} steps), although every tensor decodes to "
            "its weights. Nothing was written")
    return tuple(rec for rec, _, _ in found), len(inputs)


def _tflm_outputs(model: bytes, inputs: np.ndarray, *, arena_bytes: int) -> np.ndarray:
    """TFLM's Python runtime (the truth) on every input."""
    runner = TflmRunner(model, arena_bytes=arena_bytes)
    return np.stack([runner.run(x) for x in inputs])


def compress_model(uncompressed: bytes, inputs: np.ndarray, *, config: CompressionConfig, arena_bytes: int,
                   finetune_seconds: float, finetune_best_epoch: int | None = None,
                   log=print) -> tuple[bytes, CompressionRecord]:
    """:func:`lut_compress` + :func:`check_compressed`; the compressed flatbuffer and its record."""
    t0 = time.perf_counter()
    compressed = lut_compress(uncompressed, bits=config.bits)
    tensors, checked = check_compressed(compressed, uncompressed, inputs, arena_bytes=arena_bytes)
    log(f"export: LUT-compressed {len(tensors)} weight tensors, {len(uncompressed):,d} -> {len(compressed):,d} bytes; "
        f"decoded weights and TFLM outputs on {checked} calibration inputs identical ({time.perf_counter() - t0:.1f} s)")
    if len(compressed) >= len(uncompressed):
        log(f"warning: --compress made the model larger ({len(uncompressed):,d} -> {len(compressed):,d} bytes): its "
            f"tensors are too small for {2 ** config.bits}-entry tables{' per channel' if config.per_channel else ''} "
            "to pay; export without --compress, or with --compress-granularity tensor or fewer --compress-bits")
    return compressed, CompressionRecord(
        config=config, uncompressed_bytes=len(uncompressed), compressed_bytes=len(compressed),
        uncompressed_sha256=artifacts.sha256_bytes(uncompressed), tensors=tensors, checked_inputs=checked,
        finetune_seconds=round(finetune_seconds, 2), finetune_best_epoch=finetune_best_epoch)


def compression_report(record: CompressionRecord) -> str:
    """The size report's section: bytes before and after, per tensor."""
    lines = [f"LUT compression ({record.config.describe()}): {record.uncompressed_bytes:,d} -> "
             f"{record.compressed_bytes:,d} bytes ({100 * record.compressed_bytes / record.uncompressed_bytes:.1f} %); "
             f"decoded weights identical, TFLM outputs identical on {record.checked_inputs} calibration inputs",
             *([f"tensor arena: {record.arena_bytes:,d} bytes measured, {record.uncompressed_arena_bytes:,d} for the "
                f"uncompressed model: +{record.arena_bytes - record.uncompressed_arena_bytes:,d} for the decoded weights"]
               if record.arena_bytes is not None and record.uncompressed_arena_bytes is not None else []),
             f"{'before':>8} {'indices':>8} {'tables':>7} {'values':>6}  {'shape':<18} name"]
    lines += [f"{t.original_bytes:>8,d} {t.index_bytes:>8,d} {t.table_bytes:>7,d} {t.values:>6d}  {str(t.shape):<18} {t.name}"
              for t in sorted(record.tensors, key=lambda t: -t.original_bytes)]
    return "\n".join(lines) + "\n"
