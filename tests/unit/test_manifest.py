"""``dataset.manifest``: the sample index is cached, a re-run skips listing (and says so)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from dnnbench.config.loading import load_config
from dnnbench.data import manifest
from dnnbench.data.index import SampleIndex
from dnnbench.executor import Executor


def index() -> SampleIndex:
    return SampleIndex(["p/a/1.jpg", "p/b/2.jpg"], np.array([0, 1]), np.array([10, 20]), ["a", "b"])


@pytest.mark.parametrize("name", ["m.json", "m.json.gz"])
def test_round_trip(tmp_path, name):
    fp = manifest.fingerprint("s3://b@h", ["p"], [".jpg"], None)
    manifest.save(tmp_path / "sub" / name, index(), fp, 0.5)
    loaded, why = manifest.load(tmp_path / "sub" / name, fp)
    assert why is None and loaded.keys == index().keys and loaded.classes == ["a", "b"]
    assert loaded.sizes.tolist() == [10, 20] and loaded.labels.dtype == np.int64
    if name.endswith(".gz"):
        assert json.loads(gzip.open(tmp_path / "sub" / name).read())["objects"] == 2
    assert not list((tmp_path / "sub").glob(".*tmp*"))  # written atomically, nothing left behind


def test_missing_other_dataset_and_damaged(tmp_path):
    fp = manifest.fingerprint("s3://b@h", ["p"], [".jpg"], None)
    assert manifest.load(tmp_path / "none.json", fp) == (None, None)
    manifest.save(tmp_path / "m.json", index(), fp)
    other = manifest.fingerprint("s3://b@h", ["q"], [".jpg"], None)
    got, why = manifest.load(tmp_path / "m.json", other)
    assert got is None and "prefixes" in why
    (tmp_path / "bad.json").write_text('{"format": "dnnbench-manifest/1", "keys": [')
    got, why = manifest.load(tmp_path / "bad.json", fp)
    assert got is None and why.startswith("unreadable")


def test_rerun_skips_listing(tiny_root, write_config, tmp_path):
    path = tmp_path / "index.json"
    cfg = load_config(write_config(tiny_root, dataset={"decode": "none", "manifest": str(path)}))
    first = Executor(cfg).run()
    assert first.exit_code == 0 and path.exists() and first.row["objects_listed"] == 36
    second = Executor(cfg).run()
    assert second.exit_code == 0 and second.row["list_s"] is None and second.row["objects_listed"] is None
    assert second.row["byte_check"] == "ok" and second.row["samples"] == 36
    env = json.loads((second.run_dir / "environment.json").read_text())
    assert "manifest" in env["unmeasured"]["list_s"]
    changed = load_config(write_config(tiny_root, dataset={"decode": "none", "manifest": str(path),
                                                           "labels": ["class_000"]}))
    third = Executor(changed).run()  # another dataset: listed again, manifest rewritten
    assert third.row["objects_listed"] == 12
    assert json.loads(path.read_text())["fingerprint"]["labels"] == ["class_000"]


def test_manifest_with_escaping_keys_is_refused(tmp_path):
    """Keys from a manifest never become paths outside the storage root."""
    import gzip
    import json as _json

    from dnnbench.data import manifest as m
    from dnnbench.data.index import SampleIndex

    import numpy as _np

    fp = m.fingerprint("fs:/x", ["train"], [".jpg"], None)
    path = tmp_path / "evil.json"
    m.save(path, SampleIndex(["train/a/1.jpg"], _np.array([0]), _np.array([3]), ["a"]), fp, 0.1)
    doc = _json.loads(path.read_text()) if not str(path).endswith(".gz") else _json.load(gzip.open(path, "rt"))
    doc["keys"] = ["../../etc/passwd"]
    path.write_text(_json.dumps(doc))
    index, why = m.load(path, fp)
    assert index is None and "unsafe key" in why
