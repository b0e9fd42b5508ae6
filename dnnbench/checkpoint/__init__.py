"""The checkpoint workload (``training.trainer: checkpoint``): R ranks each write their shard of
a checkpoint of a given total size N times, then read N back and verify them. Framework-neutral
here (sizes, the timed loop, the records); each framework's engine lives with the framework
(:mod:`dnnbench.frameworks.pytorch.dcp`, :mod:`dnnbench.frameworks.tensorflow.tfckpt`)."""
