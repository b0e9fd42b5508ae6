"""The run's dataset: written first when ``prepare.auto`` asks, checked to be there and complete,
then resolved to a sample index: listed from the storage (or read from ``dataset.manifest``),
capped by ``dataset.max_samples``, split for the inference phase's hold-out; or, for
``access: shards``, the shards' index.
"""

from __future__ import annotations

import time
from typing import Any

from dnnbench.config.loading import LoadedConfig
from dnnbench import failures
from dnnbench.data import manifest, prepared, shards
from dnnbench.data.index import SampleIndex
from dnnbench.errors import ConfigError, DataError
from dnnbench.events import Events
from dnnbench.data.layouts import list_layout
from dnnbench.formats.select import extensions, is_file_format
from dnnbench.run import files
from dnnbench.run.prepare import exists, pack_shards, prepare_dataset
from dnnbench.run.skips import Skipped
from dnnbench.storage.base import Storage
from dnnbench.data.listing import ListingStats, list_dataset

#: the listing columns a manifest leaves unmeasured
LISTING_COLUMNS = ("list_s", "objects_listed", "bytes_listed", "objects_listed_per_s")


class DatasetResolver:
    """Finds the dataset of a run and turns it into its sample index.

    Args:
        loaded: the run's config.
        events: where notices and the list phase go.
        skipped: the run's skipped samples (entries listing could not read join it).
        world: ranks in the run (each reads a share of the shards).
    """

    def __init__(self, loaded: LoadedConfig, events: Events, skipped: Skipped, world: int = 1):
        self.loaded = loaded
        self.cfg = loaded.config
        self.events = events
        self.skipped = skipped
        self.world = world

    @property
    def _shards(self) -> bool:
        return self.cfg.dataset.access == "shards"

    # -- before the run ----------------------------------------------------------
    def prepare_if_needed(self, storage: Storage) -> None:
        """``prepare.auto``: write the dataset (and pack its shards) when absent or incomplete;
        when present, check it was prepared as the config asks."""
        cfg = self.cfg
        try:
            storage.check()
        except DataError:  # a missing directory or bucket is what prepare.auto creates
            if not cfg.prepare.auto:
                raise
        if not cfg.prepare.auto:
            return
        prefixes = cfg.storage.prefixes
        if not all(exists(storage, p) for p in prefixes) or prepared.incomplete(storage, prefixes):
            self.events.notice("dataset not found or incomplete: generating it (prepare.auto is on)")
        prepare_dataset(self.loaded, self.events, auto=True)  # present: checks it was prepared as asked
        if self._shards and (not exists(storage, cfg.shards.prefix)
                             or prepared.incomplete(storage, [cfg.shards.prefix])):
            self.events.notice("shards not found or incomplete: packing them (prepare.auto is on)")
            pack_shards(self.loaded, self.events)

    def check(self, storage: Storage) -> None:
        """The storage answers and holds the dataset (or its shards), complete.

        Raises:
            DataError: nothing is stored under a configured prefix, or its writing did not finish.
        """
        cfg = self.cfg
        storage.check()
        wanted = [cfg.shards.prefix] if self._shards else cfg.storage.prefixes
        field = "shards.prefix" if self._shards else "storage.prefixes"
        missing = [p for p in wanted if not exists(storage, p)]
        if missing:
            raise DataError(f"nothing stored under prefix {missing[0] or '(root)'!r} in {storage.label()}",
                            reference=field,
                            hint="fix the prefix, or create the dataset with `benchmark.py prepare --config FILE`"
                                 + (" and pack it with `prepare --shards`" if self._shards else ""))
        unfinished = prepared.incomplete(storage, wanted)
        if unfinished:
            what = "packing the shards" if self._shards else "preparing the dataset"
            raise DataError(f"the data under prefix {unfinished[0] or '(root)'!r} in {storage.label()} is incomplete: "
                            f"{what} was interrupted or failed", reference=field,
                            hint="write it again with `benchmark.py prepare --config FILE`"
                                 + (" --shards" if self._shards else ""))

    def check_manifest(self) -> None:
        """``dataset.manifest`` can be written without writing over a file dnnbench did not write.

        Raises:
            ConfigError: naming dataset.manifest.
        """
        if self.cfg.dataset.manifest and not self._shards:
            manifest.check_target(self.cfg.dataset.manifest)

    # -- the list phase ----------------------------------------------------------
    def resolve(self, storage: Storage, facts: Any) -> SampleIndex:
        """The list phase: the run's sample index; listing figures (or why there are none) into ``facts``."""
        self.events.phase_start("list")
        if self._shards:
            return self._list_shards(storage, facts)
        index = self._from_manifest(storage, facts)
        if index is None:
            index = self._list(storage, facts)
        cfg = self.cfg
        index = index.subset(cfg.dataset.max_samples, cfg.execution.seed) if cfg.dataset.max_samples else index
        if is_file_format(cfg.dataset) and cfg.dataset.access == "random":
            index = files.locate_samples(storage, cfg, index, self.events, self.skipped, facts)
        return index

    def _fingerprint(self, storage: Storage) -> dict[str, Any]:
        cfg = self.cfg
        return manifest.fingerprint(storage.label(), cfg.storage.prefixes, extensions(cfg.dataset),
                                    cfg.dataset.labels)

    def _from_manifest(self, storage: Storage, facts: Any) -> SampleIndex | None:
        """The index saved in ``dataset.manifest`` for this dataset; None when there is none to use."""
        path = self.cfg.dataset.manifest
        if not path:
            return None
        t0 = time.perf_counter()
        index, why = manifest.load(path, self._fingerprint(storage))
        if index is None:
            if why:
                self.events.notice(f"manifest {path} not used: {why}; listing the storage")
            return None
        for col in LISTING_COLUMNS:
            facts.unmeasured[col] = f"listing skipped: the sample index came from manifest {path}"
        self.events.phase_end("list", time.perf_counter() - t0,
                              f"(skipped: {len(index):,} objects from manifest {path}; delete it to list again)")
        return index

    def _list(self, storage: Storage, facts: Any) -> SampleIndex:
        """List the storage (saved to ``dataset.manifest`` when set)."""
        cfg = self.cfg
        index, stats = list_layout(storage, cfg.dataset, cfg.storage.prefixes, cfg.execution.listing_workers,
                                   extensions(cfg.dataset))
        facts.listing = stats
        for key, why in stats.unreadable:
            self.skipped.listed(key, f"{failures.BAD_READ}{why}")
        if stats.unreadable:
            self.events.warning(f"{len(stats.unreadable)} unreadable entries left out of the dataset "
                                f"(dataset.on_error: skip), e.g. {stats.unreadable[0][0]}: {stats.unreadable[0][1]}")
        if cfg.dataset.manifest:
            manifest.save(cfg.dataset.manifest, index, self._fingerprint(storage), stats.seconds)
            self.events.notice(f"sample index saved to manifest {cfg.dataset.manifest}: the next run skips listing")
        self.events.phase_end("list", stats.seconds,
                              f"({stats.objects:,} objects, {stats.bytes / 2**20:.1f} MiB, {stats.classes} classes, "
                              f"{stats.objects_per_s:,.0f} objects/s, {cfg.execution.listing_workers} threads)")
        if stats.skipped_objects:
            self.events.notice(f"{stats.skipped_objects} objects skipped: extension not in "
                               f"{extensions(cfg.dataset)}")
        return index

    def _list_shards(self, storage: Storage, facts: Any) -> SampleIndex:
        """access: shards: list the .tar shards (one row each) and read the pack's index.json."""
        t0 = time.perf_counter()
        index, meta = shards.list_shards(storage, self.cfg.shards.prefix)
        seconds = time.perf_counter() - t0
        facts.listing = ListingStats(seconds, len(index), index.total_bytes, 2, 0, len(index.classes))
        samples = meta.get("samples")
        self.events.phase_end("list", seconds, f"({len(index):,} shards, {index.total_bytes / 2**20:.1f} MiB, "
                                               f"{samples if samples is not None else 'unknown'} samples)")
        workers = self.cfg.framework.num_workers or 1
        parts = self.world * workers
        if len(index) < parts:
            readers = f"{self.world} ranks x {workers} loader workers" if self.world > 1 \
                else f"{workers} loader workers"
            self.events.warning(f"{len(index)} shards for {readers}: {parts - len(index)} of them get none and "
                                "read nothing; pack smaller shards (shards.max_bytes / shards.max_samples) to use "
                                "every reader")
        return index

    def holdout(self, storage: Storage, index: SampleIndex) -> tuple[SampleIndex, SampleIndex]:
        """(train, held-out) for the inference phase: inference.prefixes, else a seeded fraction.

        Raises:
            ConfigError: the access is not random.
        """
        cfg, inf = self.cfg, self.cfg.inference
        if is_file_format(cfg.dataset) or cfg.dataset.layout != "classes":
            raise ConfigError("the inference phase reads a held-out split of image class folders",
                              reference="execution.phases.inference",
                              hint="turn it off for dataset.format files and flat or dlio layouts")
        if cfg.dataset.access != "random":
            raise ConfigError("the inference phase reads a held-out split of random-access samples",
                              reference="execution.phases.inference", hint="use dataset.access: random")
        if inf.prefixes:
            held, _ = list_dataset(storage, inf.prefixes, cfg.execution.listing_workers, cfg.dataset.extensions,
                                   index.classes)
            return index, held
        return index.holdout(inf.holdout_fraction, cfg.execution.seed)
