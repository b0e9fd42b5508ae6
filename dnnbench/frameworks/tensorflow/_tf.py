"""The one place that imports tensorflow and keras: quietly, unless ``--debug``
(see :mod:`.quiet`). Keras 3 runs on the TensorFlow backend."""

from __future__ import annotations

import logging
import warnings

from dnnbench.errors import ConfigError
from dnnbench.frameworks import verbose_logs
from dnnbench.frameworks.tensorflow.quiet import prepare_environment, quiet_fd2

VERBOSE = verbose_logs()
prepare_environment(VERBOSE)  # environment first: TensorFlow reads it while it loads

with quiet_fd2(not VERBOSE):
    import tensorflow as tf  # noqa: E402
    import keras  # noqa: E402

if not VERBOSE:
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(tensorflow|keras)(\..*)?$")

if keras.backend.backend() != "tensorflow":
    raise ConfigError(f"Keras is set to the {keras.backend.backend()!r} backend (KERAS_BACKEND)",
                      reference="framework.name",
                      hint="unset KERAS_BACKEND or set it to tensorflow for framework tensorflow")

__all__ = ["tf", "keras", "VERBOSE"]
