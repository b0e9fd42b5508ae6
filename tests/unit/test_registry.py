"""Registries: decorator registration, lazy built-ins, aliases, close matches, user plugins."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dnnbench.errors import PluginError
from dnnbench.registry import DATASETS, MODELS, REGISTRIES, STORAGE, TRAINERS, Registry, load_plugin_module

ROOT = Path(__file__).resolve().parents[2]


def test_decorator_lookup_and_listing():
    reg = Registry("widget")

    @reg.register("alpha", aliases=("Alpha",))
    class Alpha:
        """The alpha widget."""

    assert reg.get("alpha") is Alpha
    assert reg.get("Alpha") is Alpha
    assert reg.names() == ["alpha"]
    assert reg.entries()[0].description == "The alpha widget."


def test_duplicate_name_is_an_error():
    reg = Registry("widget")
    reg.register("x")(type("A", (), {}))
    with pytest.raises(PluginError, match="already registered"):
        reg.register("x")(type("B", (), {}))


def test_unknown_name_lists_close_matches():
    with pytest.raises(PluginError) as e:
        MODELS.get("convnett", "pytorch")
    assert "did you mean 'convnet'" in e.value.message
    assert "convnet" in e.value.hint and "resnet" in e.value.hint


def test_framework_specific_entries():
    reg = Registry("model")
    reg.add("net", "x:A", framework="pytorch")
    reg.add("net", "x:B", framework="tensorflow")
    assert reg.resolve("net", "pytorch").target == "x:A"
    assert reg.resolve("net", "tensorflow").target == "x:B"


def test_legacy_aliases_resolve_to_builtins():
    assert DATASETS.resolve("TorchImageClassificationDataset", "pytorch").name == "image_folder"
    assert DATASETS.resolve("PythonReadDataset", "pytorch").name == "raw"
    assert MODELS.resolve("ConvNet", "pytorch").name == "convnet"
    assert TRAINERS.resolve("RandomAccessDatasetTrain", "pytorch").name == "train"


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_builtin_entry_loads(kind):
    for entry in REGISTRIES[kind].entries():
        if entry.origin == "builtin":
            if entry.framework == "tensorflow":
                continue  # one framework per process: covered by the tensorflow tests
            assert entry.load() is not None


def test_builtin_module_decorator_fills_lazy_entry():
    from dnnbench.frameworks.pytorch.models import ConvNet

    assert MODELS.resolve("convnet", "pytorch").target is ConvNet


def test_registry_import_is_lazy():
    code = ("import sys; import dnnbench.registry, dnnbench.cli; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'boto3', 'minio', 's3fs', 'cv2', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plugin_from_py_path(tmp_path):
    p = tmp_path / "plug_a.py"
    p.write_text(textwrap.dedent("""
        from dnnbench.registry import TRAINERS
        @TRAINERS.register("plug_a_trainer", framework="pytorch")
        class T:
            pass
    """))
    load_plugin_module(str(p))
    entry = TRAINERS.resolve("plug_a_trainer", "pytorch")
    assert entry.origin == f"plugins: {p}"


def test_plugin_relative_to_config_dir(tmp_path):
    (tmp_path / "plug_b.py").write_text(
        "from dnnbench.registry import STORAGE\n"
        "@STORAGE.register('plug_b_store')\nclass S: pass\n")
    load_plugin_module("./plug_b.py", base_dir=tmp_path)
    assert STORAGE.resolve("plug_b_store").name == "plug_b_store"


def test_broken_plugin_is_named(tmp_path):
    p = tmp_path / "broken_plug.py"
    p.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PluginError) as e:
        load_plugin_module(str(p))
    assert "broken_plug.py" in e.value.message and "boom" in e.value.message


def test_missing_plugin_file():
    with pytest.raises(PluginError, match="not found"):
        load_plugin_module("./definitely_missing_plugin.py")


def test_entry_point_group(tmp_path):
    """A distribution exposing dnnbench.plugins is loaded; a broken one is named, not fatal."""
    site = tmp_path / "site"
    (site / "ep_pkg").mkdir(parents=True)
    (site / "ep_pkg" / "__init__.py").write_text(
        "from dnnbench.registry import MODELS\n"
        "@MODELS.register('ep_model', framework='pytorch')\nclass M: pass\n")
    dist = site / "ep_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dnnbench.plugins]\nep = ep_pkg\nbad = ep_pkg_missing_module\n")
    code = ("from dnnbench.registry import MODELS, load_entry_points; probs = load_entry_points(); "
            "e = MODELS.resolve('ep_model', 'pytorch'); print(e.origin); print(len(probs), probs[0])")
    env = {"PYTHONPATH": f"{site}:{ROOT}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("entry point ep")
    assert lines[1].startswith("1 ") and "bad" in lines[1]


PICKLED_PLUGIN = """
from dnnbench.registry import DATASETS

@DATASETS.register("pickled_plug_ds")
class Carried:
    def __init__(self, value):
        self.value = value
"""


def test_plugin_file_classes_unpickle_in_spawned_processes(tmp_path):
    """Loader workers started with spawn import the plugin's classes by module name."""
    import multiprocessing as mp

    p = tmp_path / "datasets.py"  # a file name that is also a common package name
    p.write_text(PICKLED_PLUGIN)
    load_plugin_module(str(p))
    cls = DATASETS.get("pickled_plug_ds")
    assert cls.__module__.startswith("dnnbench_user_datasets_")
    with mp.get_context("spawn").Pool(1) as pool:
        assert pool.apply_async(getattr, (cls(41), "value")).get(timeout=60) == 41


def test_plugin_file_module_name_is_stable_across_processes(tmp_path):
    p = tmp_path / "stable_plug.py"
    p.write_text("from dnnbench.registry import MODELS\n@MODELS.register('stable_plug_model')\nclass M: pass\n")
    code = ("import sys; from dnnbench.registry import MODELS, load_plugin_module; load_plugin_module(sys.argv[1]); "
            "print(MODELS.get('stable_plug_model').__module__)")
    names = {subprocess.run([sys.executable, "-c", code, str(p)], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip() for _ in range(2)}
    assert len(names) == 1 and names.pop().startswith("dnnbench_user_stable_plug_")
