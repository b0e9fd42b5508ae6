"""Built-in Keras models, the TensorFlow twins of the PyTorch ones. Every model is built
as ``cls(in_channels=C, num_classes=K, image_size=(H, W), **model.options)`` and
takes float NHWC input (channels last, TensorFlow's native layout)."""

from __future__ import annotations

from typing import Sequence

from dnnbench.frameworks.tensorflow._tf import keras
from dnnbench.registry import MODELS

layers = keras.layers
ops = keras.ops


class AdaptiveAvgPool(layers.Layer):
    """PyTorch's ``AdaptiveAvgPool2d``: bin ``i`` of ``n`` averages rows ``floor(i*H/n)`` to
    ``ceil((i+1)*H/n)``, so inputs smaller than the output work too (Keras's own layer
    refuses them)."""

    def __init__(self, size: tuple[int, int], **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(size)

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        oh, ow = self.size
        rows = []
        for i in range(oh):
            r0, r1 = i * h // oh, -(-(i + 1) * h // oh)
            cols = [ops.mean(x[:, r0:r1, j * w // ow:-(-(j + 1) * w // ow), :], axis=(1, 2)) for j in range(ow)]
            rows.append(ops.stack(cols, axis=1))
        return ops.stack(rows, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[-1])


@MODELS.register("convnet", framework="tensorflow", aliases=("ConvNet",))
class ConvNet(keras.Model):
    """Small CNN for any image size, channel and class count (adaptive pooling head)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: Sequence[int] = (32, 32),
                 width: int = 16, hidden: int = 64):
        h, w = image_size
        inputs = keras.Input((h, w, in_channels))
        x = layers.Conv2D(width, 5, padding="same", activation="relu")(inputs)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Conv2D(2 * width, 5, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = AdaptiveAvgPool((4, 4))(x)
        x = layers.Flatten()(x)
        x = layers.Dense(hidden, activation="relu")(x)
        outputs = layers.Dense(num_classes)(x)
        super().__init__(inputs=inputs, outputs=outputs, name="convnet")


def _basic_block(x, cout: int, stride: int):
    short = x
    out = layers.Conv2D(cout, 3, stride, padding="same", use_bias=False)(x)
    out = layers.BatchNormalization()(out)
    out = layers.ReLU()(out)
    out = layers.Conv2D(cout, 3, 1, padding="same", use_bias=False)(out)
    out = layers.BatchNormalization()(out)
    if stride != 1 or x.shape[-1] != cout:
        # a 1x1 convolution with stride 2 as subsampling + a 1x1 convolution (the same maths):
        # TensorFlow 2.21's oneDNN kernel for the strided 1x1 convolution corrupts the heap
        # with few channels and a batch of one (a last, partial batch)
        if stride != 1:
            x = layers.MaxPooling2D(pool_size=1, strides=stride)(x)
        short = layers.Conv2D(cout, 1, 1, use_bias=False)(x)
        short = layers.BatchNormalization()(short)
    return layers.ReLU()(layers.Add()([out, short]))


@MODELS.register("resnet", framework="tensorflow", aliases=("ResNet",))
class ResNet(keras.Model):
    """Small ResNet of basic blocks; ``layers=[2, 2, 2, 2], width=64`` is ResNet-18."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, image_size: Sequence[int] = (32, 32),
                 layers: Sequence[int] = (1, 1, 1, 1), width: int = 32):
        h, w = image_size
        inputs = keras.Input((h, w, in_channels))
        x = keras.layers.Conv2D(width, 3, 1, padding="same", use_bias=False)(inputs)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        for stage, n in enumerate(layers):
            for b in range(n):
                x = _basic_block(x, width * 2 ** stage, 2 if (b == 0 and stage > 0) else 1)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(num_classes)(x)
        super().__init__(inputs=inputs, outputs=outputs, name="resnet")
