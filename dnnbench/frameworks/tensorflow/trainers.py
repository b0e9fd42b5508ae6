"""TensorFlow trainers: what happens to each batch. Same names and contract as the
PyTorch ones: the executor owns the loop and the clock (it times every ``next()``
of the epoch iterator as wait and every :meth:`Trainer.step` as compute, so AU has
one definition for both frameworks); a trainer only implements ``step``.

Plugins subclass :class:`Trainer`; they are built as
``cls(model=..., device=..., config=training_config)``, ``device`` being a
TensorFlow device string (``/CPU:0``, ``/GPU:0``).
"""

from __future__ import annotations

import time
from typing import Any

from dnnbench.frameworks.common import TrainerBase
from dnnbench.frameworks.tensorflow._tf import keras, tf
from dnnbench.registry import TRAINERS


class Trainer(TrainerBase):
    """Base trainer: holds the model (a ``keras.Model``), the device (a TensorFlow device string)
    and the training config."""

    @property
    def on_gpu(self) -> bool:
        return "GPU" in self.device.upper()

    def synchronize(self) -> None:
        """Wait for queued device work, so compute time is measured, not just launched."""
        if self.on_gpu:
            tf.test.experimental.sync_devices()

    def to_device(self, batch: Any) -> tuple[tf.Tensor, tf.Tensor]:
        """NHWC uint8 batch -> float in [0, 1] on the device (channels last, as Keras wants)."""
        with tf.device(self.device):
            x = tf.cast(tf.identity(batch.data), tf.float32) / 255.0
            return x, tf.identity(batch.labels)


@TRAINERS.register("train", framework="tensorflow", aliases=("RandomAccessDatasetTrain", "DNNTrain"))
class TrainTrainer(Trainer):
    """Real forward, backward and optimizer step (cross-entropy), a compiled tf.function."""

    def setup(self) -> None:
        cfg = self.config
        with tf.device(self.device):
            if cfg.optimizer == "adam":
                self.optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
            else:
                self.optimizer = keras.optimizers.SGD(learning_rate=cfg.lr, momentum=cfg.momentum)
            self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.optimizer.build(self.model.trainable_variables)
        shape = tuple(self.model.input_shape[1:])
        self._step = tf.function(self._train_step, reduce_retracing=True, input_signature=[
            tf.TensorSpec((None, *shape), tf.uint8), tf.TensorSpec((None,), tf.int64)])
        self._warm_up(shape)

    def _train_step(self, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        x = tf.cast(images, tf.float32) / 255.0
        with tf.GradientTape() as tape:
            loss = self.loss_fn(labels, self.model(x, training=True))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return loss

    def _warm_up(self, shape: tuple[int, ...]) -> None:
        """Trace and run the step once on zeros, then put every weight back: the graph
        build (seconds on small machines) is paid here, outside the measured steps."""
        variables = list(self.model.variables) + list(self.optimizer.variables)
        saved = [v.numpy() for v in variables]
        with tf.device(self.device):
            self._step(tf.zeros((1, *shape), tf.uint8), tf.zeros((1,), tf.int64)).numpy()
        for v, value in zip(variables, saved):
            v.assign(value)

    def step(self, batch: Any) -> float | None:
        if batch.samples == 0:
            return None
        with tf.device(self.device):
            loss = self._step(batch.data, batch.labels)
        return float(loss)  # float() also waits for the device


@TRAINERS.register("read", framework="tensorflow")
class ReadTrainer(Trainer):
    """Drains batches with no compute: measures the loader and storage alone."""

    needs_model = False

    def step(self, batch: Any) -> None:
        return None


@TRAINERS.register("emulate", framework="tensorflow")
class EmulateTrainer(Trainer):
    """Sleeps training.compute_time_s per step in place of an accelerator (MLPerf Storage style).

    On a GPU the batch is still copied to the device, as a real step would.
    """

    needs_model = False

    def step(self, batch: Any) -> None:
        if self.on_gpu and batch.samples:
            with tf.device(self.device):
                tf.identity(batch.data)
            self.synchronize()
        time.sleep(self.config.compute_time_s)
        return None
