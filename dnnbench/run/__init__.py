"""The run pipeline: the phases of one benchmark run, one concern per module. The executor
(:mod:`dnnbench.executor`) orders them.

- :mod:`.prepare`: writing the dataset into the storage (prepare, upload, pack shards).
- :mod:`.dataset`: the run's dataset checked and resolved to its sample index (list phase).
- :mod:`.epochs`: the measured epoch/step loop.
- :mod:`.skips`: failed samples: on_error fail | skip, the skipped-share limit, the record.
- :mod:`.cache`: the page cache before each epoch.
- :mod:`.identity`: the run's identity columns.
- :mod:`.writer`: the run's artefacts (report, summary rows, the last record of a failed report).
- :mod:`.environment`: environment.json's facts about the machine and the run.
- :mod:`.coordinator`: who does what among the ranks of a run (one process, or torchrun's).
"""
