"""The page cache before each epoch: dropped when ``execution.drop_caches`` asks (and the
machine lets us), then classified cold | warm | partial from a sample of the dataset's local
files; ``unknown`` for storage without local files. What was measured is reported, never
what was asked for."""

from __future__ import annotations

from dnnbench.events import Events
from dnnbench.storage import pagecache
from dnnbench.storage.base import Storage

#: local files sampled to classify the cache
SAMPLED = 64


class CacheProbe:
    """The ``cache`` column of each epoch."""

    def __init__(self, storage: Storage, keys: list[str], drop: bool, events: Events):
        self.paths = [p for p in (storage.local_path(k) for k in pagecache.sample_paths(keys, SAMPLED)) if p]
        self.drop = drop
        self.events = events
        self._warned = False

    def state(self) -> str:
        """Before an epoch: drop the cache if asked, then what it holds of the dataset."""
        if not self.paths:
            return "unknown"
        if self.drop:
            return self._dropped()
        return pagecache.classify(pagecache.resident_fraction(self.paths))

    def _dropped(self) -> str:
        done, why = pagecache.drop_caches()
        if not done:
            self._warn(f"cannot drop the page cache: {why}; the cache column reports what was measured "
                       "instead of cold")
        state = pagecache.classify(pagecache.resident_fraction(self.paths))
        if done and state != "cold":
            self._warn("page cache drop did not take effect (files still resident)")
        return state

    def _warn(self, message: str) -> None:
        if not self._warned:
            self.events.warning(message)
            self._warned = True
