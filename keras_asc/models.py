"""The seed's model family in tf_keras, behind one registry.

``build_model(name, input_shape, n_classes, **overrides)`` returns an uncompiled
``tf_keras.Model`` that maps ``(batch, n_mels, n_frames, 1)`` log-mel to class probabilities
(softmax). Every model uses only layers that the TFLite int8 converter and TFLM support, and
runs at batch 1.

Parameter counts against the seed (trainable parameters, 128 x 288 input, 10 classes):

=================  ============  ==========  ===============================================
name               seed          ours        how the seed's figure is matched / explained
=================  ============  ==========  ===============================================
resnet11           83,572        83,572      exact (section 4.3.1; Tables 4-5 print 49,738,
                                             the "non-zero" count, which the seed does not
                                             explain: a trained dense net has no zeros)
resnet11_se        86,516        86,516      exact: SE after each block, reduction 16, no bias
resnet11_cbam      87,011        87,011      exact: CBAM channel MLP without bias (as SE),
                                             spatial 7x7 conv with bias
cnn5               4,308,480     4,310,400   conv weights+biases and the classifier equal the
                                             seed's count; ours adds BatchNorm (1,920)
cnn5_small         1,554,944     1,556,864   same, with 3x3 kernels
cnn9               4,689,344     4,693,184   same, 8 conv layers (VGG-style) + classifier
mobilenetv2        1,946,994     2,236,106   standard MobileNetV2 (alpha 1); the seed gives
mobilenetv2_relu6  1,895,386     2,236,106   no layout, and its two counts differ, which an
                                             activation swap cannot cause; not reproduced
resnet18           11,168,005    11,175,370  standard ResNet18 (basic blocks 2-2-2-2), 1 input
                                             channel; the seed's exact variant is unknown
=================  ============  ==========  ===============================================

Only ResNet11 fits the 128 KiB int8 flatbuffer budget (115,048 bytes trained on the demo
data). Measured at 128 x 288 (BatchNorm statistics set from random data): ResNet11-SE
converts to 133,808 bytes and ResNet11-CBAM to 150,336, over budget though their parameters
fit: the attention blocks add operators and per-channel quantization parameters. The Table 4
comparison models are there to reproduce the comparison in float (export with ``--budget``).
"""
from __future__ import annotations

from typing import Callable

import keras_asc.tf_setup  # noqa: E402,F401  (tf_keras, never Keras 3; before TensorFlow)

import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402
from tf_keras import layers  # noqa: E402

from keras_asc.model_registry import MODELS, model_names  # noqa: E402

ModelBuilder = Callable[..., keras.Model]
#: name -> builder, for the names declared in keras_asc.model_registry.MODELS
_BUILDERS: dict[str, ModelBuilder] = {}


def register(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """The builder of model ``name``, declared (with its description) in
    :data:`keras_asc.model_registry.MODELS`."""
    def deco(fn: ModelBuilder) -> ModelBuilder:
        if name not in MODELS:
            raise ValueError(f"model {name!r} is not declared in keras_asc/model_registry.py; add its ModelEntry "
                             "(name, one-line description, the seed's parameter count) to MODELS there")
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} registered twice")
        _BUILDERS[name] = fn
        return fn
    return deco


def build_model(name: str, input_shape: tuple[int, int, int], n_classes: int = 10,
                **overrides) -> keras.Model:
    """Build registered model ``name`` for ``input_shape = (n_mels, n_frames, 1)``."""
    if name not in _BUILDERS:
        what = "has no builder in keras_asc/models.py" if name in MODELS else "is not a registered model"
        raise ValueError(f"model {name!r} {what}; registered: {', '.join(model_names())}")
    return _BUILDERS[name](input_shape=tuple(input_shape), n_classes=n_classes, **overrides)


# ----------------------------------------------------------------------------- building blocks
#: BatchNorm moving-average momentum 0.9 = PyTorch's default (momentum 0.1), which the seed
#: used. Keras' 0.99 leaves the moving statistics near their initial values after the few
#: hundred steps a small dataset gives, and the model then predicts near-uniform at inference.
BN_MOMENTUM = 0.9


def _bn(name: str):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)


def conv_bn_relu(x, filters: int, kernel: int, *, strides: int = 1, relu: bool = True, name: str):
    """Convolution (no bias, BN follows) -> BatchNorm -> ReLU: the seed's convolution block."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = _bn(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def squeeze_excite(x, *, reduction: int = 16, name: str):
    """Table 2: global average pool -> Linear(c, c/r) -> ReLU -> Linear(c/r, c) -> sigmoid gate.

    Both linear layers without bias: that is the reading that gives the seed's 86,516.
    Written with 1x1 convolutions on a 1x1 map, which TFLM runs as CONV_2D.
    """
    c = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    s = layers.Conv2D(max(1, c // reduction), 1, use_bias=False, activation="relu", name=f"{name}_fc1")(s)
    s = layers.Conv2D(c, 1, use_bias=False, activation="sigmoid", name=f"{name}_fc2")(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


def cbam(x, *, reduction: int = 16, spatial_kernel: int = 7, name: str):
    """Table 3: channel attention (avg- and max-pooled maps through a shared 1x1 MLP, summed,
    sigmoid), then spatial attention (channel mean and max, 7x7 conv with bias, sigmoid)."""
    c = x.shape[-1]
    fc1 = layers.Conv2D(max(1, c // reduction), 1, use_bias=False, activation="relu", name=f"{name}_fc1")
    fc2 = layers.Conv2D(c, 1, use_bias=False, name=f"{name}_fc2")
    avg = fc2(fc1(layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_avg")(x)))
    mx = fc2(fc1(layers.GlobalMaxPooling2D(keepdims=True, name=f"{name}_max")(x)))
    gate = layers.Activation("sigmoid", name=f"{name}_channel_gate")(layers.Add(name=f"{name}_sum")([avg, mx]))
    x = layers.Multiply(name=f"{name}_channel_scale")([x, gate])
    mean_c = layers.Lambda(lambda t: keras.backend.mean(t, axis=-1, keepdims=True), name=f"{name}_cmean")(x)
    max_c = layers.Lambda(lambda t: keras.backend.max(t, axis=-1, keepdims=True), name=f"{name}_cmax")(x)
    s = layers.Concatenate(name=f"{name}_stack")([mean_c, max_c])
    s = layers.Conv2D(1, spatial_kernel, padding="same", activation="sigmoid", name=f"{name}_spatial")(s)
    return layers.Multiply(name=f"{name}_spatial_scale")([x, s])


def residual_block(x, filters: int, kernels: tuple[int, int], *, attention: str | None, name: str):
    """Two Conv-BN-ReLU blocks; the shortcut is identity, or 1x1 conv + BN where the channel
    count changes; optional SE/CBAM on the residual branch before the addition."""
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_proj_conv")(x)
        shortcut = _bn(name=f"{name}_proj_bn")(shortcut)
    y = conv_bn_relu(x, filters, kernels[0], name=f"{name}_a")
    y = conv_bn_relu(y, filters, kernels[1], name=f"{name}_b")
    if attention == "se":
        y = squeeze_excite(y, name=f"{name}_se")
    elif attention == "cbam":
        y = cbam(y, name=f"{name}_cbam")
    return layers.Add(name=f"{name}_add")([shortcut, y])


# ----------------------------------------------------------------------------- ResNet11 (Table 1)
RESNET11_BLOCKS = (  # (channels, kernel pair, 2x2 max-pool after)
    (32, (3, 1), True),
    (32, (3, 3), True),
    (32, (3, 1), False),
    (64, (1, 1), False),
    (128, (1, 1), False),
)


def _resnet11(*, input_shape, n_classes, attention=None, stem_channels=32, width=1.0,
              name="resnet11") -> keras.Model:
    """ResNet11 of the seed's Table 1, as read here:

    - stem: 5x5 convolution, stride 2, 32 channels, Conv-BN-ReLU ("the input of the network
      is 5*5");
    - five residual blocks with kernel pairs (3,1) (3,3) (3,1) (1,1) (1,1) and 32, 32, 32,
      64, 128 channels; "p" = 2x2 max-pool after blocks 1 and 2; every convolution is
      Conv-BN-ReLU (section 3.1); the shortcut is a 1x1 convolution + BN where channels
      change (blocks 4 and 5), identity elsewhere; no activation after the addition;
    - classifier: 1x1 convolution to ``n_classes`` (no bias) + BN, then global average
      pooling and softmax, as in CP-ResNet which the seed's ResNet11 follows. Table 1's
      "Average Pooling 2*2" is read as the global average over the remaining map.

    This reading gives exactly the seed's 83,572 trainable parameters (section 4.3.1).
    ``width`` scales every channel count (tiny test models use 0.25).
    """
    ch = lambda c: max(4, int(round(c * width)))  # noqa: E731
    inp = keras.Input(shape=input_shape, name="logmel")
    x = conv_bn_relu(inp, ch(stem_channels), 5, strides=2, name="stem")
    for i, (c, kernels, pool) in enumerate(RESNET11_BLOCKS, start=1):
        x = residual_block(x, ch(c), kernels, attention=attention, name=f"block{i}")
        if pool:
            x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.Conv2D(n_classes, 1, use_bias=False, name="classifier_conv")(x)
    x = _bn(name="classifier_bn")(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    out = layers.Softmax(name="probabilities")(x)
    return keras.Model(inp, out, name=name)


@register("resnet11")
def resnet11(**kw) -> keras.Model:
    return _resnet11(**kw)


@register("resnet11_se")
def resnet11_se(**kw) -> keras.Model:
    return _resnet11(attention="se", name="resnet11_se", **kw)


@register("resnet11_cbam")
def resnet11_cbam(**kw) -> keras.Model:
    return _resnet11(attention="cbam", name="resnet11_cbam", **kw)


# ----------------------------------------------------------------------------- Table 4 comparisons
def _plain_cnn(*, input_shape, n_classes, channels, kernel, pools, name, width=1.0) -> keras.Model:
    """Conv(bias)-BN-ReLU layers, 2x2 max-pool where ``pools`` says, global average pooling,
    and a bias-free dense classifier (the seed's counts match conv weights+biases plus a
    bias-free classifier)."""
    inp = keras.Input(shape=input_shape, name="logmel")
    x = inp
    for i, (c, pool) in enumerate(zip(channels, pools), start=1):
        x = layers.Conv2D(max(4, int(round(c * width))), kernel, padding="same", name=f"conv{i}")(x)
        x = _bn(name=f"conv{i}_bn")(x)
        x = layers.ReLU(name=f"conv{i}_relu")(x)
        if pool:
            x = layers.MaxPooling2D(2, name=f"conv{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dense(n_classes, use_bias=False, name="classifier")(x)
    return keras.Model(inp, layers.Softmax(name="probabilities")(x), name=name)


@register("cnn5")
def cnn5(**kw) -> keras.Model:
    """Four 5x5 conv layers (64, 128, 256, 512) + classifier."""
    return _plain_cnn(channels=(64, 128, 256, 512), kernel=5, pools=(True,) * 4, name="cnn5", **kw)


@register("cnn5_small")
def cnn5_small(**kw) -> keras.Model:
    """CNN5 with 3x3 instead of 5x5 kernels (Table 4, "CNN5 small")."""
    return _plain_cnn(channels=(64, 128, 256, 512), kernel=3, pools=(True,) * 4, name="cnn5_small", **kw)


@register("cnn9")
def cnn9(**kw) -> keras.Model:
    """Eight 3x3 conv layers in pairs (64, 64, 128, 128, 256, 256, 512, 512) + classifier."""
    return _plain_cnn(channels=(64, 64, 128, 128, 256, 256, 512, 512), kernel=3,
                      pools=(False, True) * 4, name="cnn9", **kw)


def _mobilenetv2(*, input_shape, n_classes, relu6: bool, name: str, width=1.0) -> keras.Model:
    """MobileNetV2 (Sandler et al. 2018), alpha = ``width``, with ReLU or ReLU6."""
    act = (lambda n: layers.ReLU(6.0, name=n)) if relu6 else (lambda n: layers.ReLU(name=n))
    ch = lambda c: max(8, int(round(c * width / 8)) * 8)  # noqa: E731
    inp = keras.Input(shape=input_shape, name="logmel")
    x = layers.Conv2D(ch(32), 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = act("stem_act")(_bn(name="stem_bn")(x))
    cin = ch(32)
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    k = 0
    for t, c, n, s in cfg:
        for i in range(n):
            k += 1
            p = f"ir{k}"
            y = x
            if t != 1:
                y = act(f"{p}_expand_act")(_bn(name=f"{p}_expand_bn")(
                    layers.Conv2D(cin * t, 1, use_bias=False, name=f"{p}_expand")(y)))
            y = layers.DepthwiseConv2D(3, strides=s if i == 0 else 1, padding="same", use_bias=False, name=f"{p}_dw")(y)
            y = act(f"{p}_dw_act")(_bn(name=f"{p}_dw_bn")(y))
            y = _bn(name=f"{p}_project_bn")(
                layers.Conv2D(ch(c), 1, use_bias=False, name=f"{p}_project")(y))
            x = layers.Add(name=f"{p}_add")([x, y]) if (i > 0 and cin == ch(c)) else y
            cin = ch(c)
    x = layers.Conv2D(ch(1280), 1, use_bias=False, name="head_conv")(x)
    x = act("head_act")(_bn(name="head_bn")(x))
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dense(n_classes, name="classifier")(x)
    return keras.Model(inp, layers.Softmax(name="probabilities")(x), name=name)


@register("mobilenetv2")
def mobilenetv2(**kw) -> keras.Model:
    return _mobilenetv2(relu6=False, name="mobilenetv2", **kw)


@register("mobilenetv2_relu6")
def mobilenetv2_relu6(**kw) -> keras.Model:
    return _mobilenetv2(relu6=True, name="mobilenetv2_relu6", **kw)


@register("resnet18")
def resnet18(*, input_shape, n_classes, width=1.0) -> keras.Model:
    """ResNet18 (He et al. 2016): 7x7/2 stem, 3x3/2 max-pool, basic blocks 2-2-2-2 with
    64-128-256-512 channels, global average pooling, dense classifier."""
    ch = lambda c: max(4, int(round(c * width)))  # noqa: E731
    inp = keras.Input(shape=input_shape, name="logmel")
    x = conv_bn_relu(inp, ch(64), 7, strides=2, name="stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, c in enumerate((64, 128, 256, 512), start=1):
        for b in range(2):
            p = f"stage{stage}_{b + 1}"
            stride = 2 if (b == 0 and stage > 1) else 1
            shortcut = x
            if stride != 1 or x.shape[-1] != ch(c):
                shortcut = conv_bn_relu(x, ch(c), 1, strides=stride, relu=False, name=f"{p}_proj")
            y = conv_bn_relu(x, ch(c), 3, strides=stride, name=f"{p}_a")
            y = conv_bn_relu(y, ch(c), 3, relu=False, name=f"{p}_b")
            x = layers.ReLU(name=f"{p}_out")(layers.Add(name=f"{p}_add")([shortcut, y]))
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dense(n_classes, name="classifier")(x)
    return keras.Model(inp, layers.Softmax(name="probabilities")(x), name="resnet18")


# ----------------------------------------------------------------------------- complexity
def trainable_params(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def nonzero_params(model: keras.Model) -> int:
    """Non-zero trainable parameters: the figure the seed reports as model size (section
    4.3, "trainable model parameters non-zero"), times 1 byte at 8 bits."""
    return int(sum(np.count_nonzero(w.numpy()) for w in model.trainable_weights))


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one inference (batch 1): convolutions and dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw
        elif isinstance(layer, layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * cout * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            total += int(layer.input.shape[-1]) * layer.units
    return int(total)


# ----------------------------------------------------------------------------- DCASE 2024 baseline
def _make_divisible(v: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10 % down (MobileNet's rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _cp_block(x, out_channels: int, *, expansion_rate: float, strides: tuple[int, int], name: str):
    """Inverted bottleneck of CP-Mobile: 1x1 expand -> 3x3 depthwise (the stride) -> 1x1 project, each
    Conv-BN(-ReLU); identity shortcut where channels stay, through a 3x3 average pool where the block
    strides; ReLU after the addition."""
    cin = x.shape[-1]
    exp = _make_divisible(cin * expansion_rate)
    y = conv_bn_relu(x, exp, 1, name=f"{name}_expand")
    y = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw_conv")(y)
    y = layers.ReLU(name=f"{name}_dw_relu")(_bn(name=f"{name}_dw_bn")(y))
    y = conv_bn_relu(y, out_channels, 1, relu=False, name=f"{name}_project")
    if cin == out_channels:
        shortcut = x if strides == (1, 1) else layers.AveragePooling2D(3, strides=strides, padding="same",
                                                                       name=f"{name}_shortcut_pool")(x)
        y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_relu")(y)


@register("dcase2024_baseline")
def dcase2024_baseline(*, input_shape, n_classes, width=1.0, channels_multiplier=1.8, expansion_rate=2.1
                       ) -> keras.Model:
    """The DCASE 2024 Task 1 baseline (CPJKU/dcase2024_task1_baseline, a simplified CP-Mobile):
    two 3x3 stride-2 Conv-BN-ReLU (8 and 32 channels), three stages of 3, 2 and 1 inverted
    bottleneck blocks (32, 56, 104 channels: base 32 times 1.8 per stage; expansion 2.1; block 3
    strides time by 2, block 4 frequency by 2), a 1x1 convolution to the classes (no bias) + BN,
    global average pooling and softmax. 61,148 trainable parameters as the baseline's README counts
    them; at its 256 x 65 input 29.4 M MACs there (``count_macs`` counts convolutions only).
    One difference: Keras' "same" average pooling of a strided shortcut divides by the cells inside
    the map, PyTorch's ``AvgPool2d(padding=1)`` by 9 at the borders too.
    ``width`` scales every channel count (teachers: width=2, ...).
    """
    base = _make_divisible(32 * width)
    stages = [base] + [_make_divisible(base * channels_multiplier ** s) for s in range(3)]
    strides = {3: (1, 2), 4: (2, 1)}
    inp = keras.Input(shape=input_shape, name="logmel")
    x = conv_bn_relu(inp, base // 4, 3, strides=2, name="in_c0")
    x = conv_bn_relu(x, base, 3, strides=2, name="in_c1")
    block = 0
    for s, n_blocks in enumerate((3, 2, 1)):
        for _ in range(n_blocks):
            block += 1
            x = _cp_block(x, stages[s + 1], expansion_rate=expansion_rate, strides=strides.get(block, (1, 1)),
                          name=f"b{block}")
    x = layers.Conv2D(n_classes, 1, use_bias=False, name="classifier_conv")(x)
    x = _bn(name="classifier_bn")(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inp, layers.Softmax(name="probabilities")(x), name="dcase2024_baseline")
