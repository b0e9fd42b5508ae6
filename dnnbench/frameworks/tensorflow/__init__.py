"""TensorFlow adapters: tf.data pipelines, Keras models, trainers and the epoch runner.

Importing this package imports nothing heavy; tensorflow itself is imported (quietly,
see :mod:`._tf`) by the modules that need it, and only by runs with
``framework.name: tensorflow``. :mod:`.plan` is pure Python and testable without it.
"""
