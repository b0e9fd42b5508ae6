"""The hot-path recorders: per-request rows (any process), per-step and per-epoch records
(the main process) and the system sampler. Storage and the framework runners import only
this package; turning records into CSVs and summaries is :mod:`dnnbench.reporting`'s."""
