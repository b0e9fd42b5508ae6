"""dataset.format / format_options / layout / shuffle keys checked at validation: one clear
message naming the field; dataset.format: None keeps today's image path."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from dnnbench.config.loading import validate
from dnnbench.config.plugins import check_plugin_names
from dnnbench.errors import ConfigError, PluginError
from dnnbench.formats.base import FileFormat
from dnnbench.formats.select import extensions, is_file_format
from dnnbench.registry import FORMATS


def config(**dataset):
    return validate({"storage": {"client": "fs", "root": "data"}, "dataset": dataset,
                     "training": {"trainer": "read"}})


def test_no_format_is_todays_image_path():
    ds = config().dataset
    assert ds.format is None and ds.layout == "classes" and not is_file_format(ds)
    assert extensions(ds) == [".jpg", ".jpeg", ".png"]


def test_a_format_lists_its_own_extensions_unless_given():
    assert extensions(config(format="npz").dataset) == [".npz"]
    assert extensions(config(format="hdf5").dataset) == [".hdf5", ".h5"]
    assert extensions(config(format="npz", extensions=["dat"]).dataset) == [".dat"]
    assert is_file_format(config(format="npz").dataset) and not is_file_format(config(format="jpg").dataset)


def test_format_raw_reads_with_the_raw_dataset_and_yaml_off_is_off():
    ds = config(format="raw", file_shuffle=False, sample_shuffle="seed").dataset
    assert ds.name == "raw" and ds.file_shuffle == "off" and ds.sample_shuffle == "seed"
    assert config(format="raw", name="image_folder").dataset.name == "image_folder"


def test_unknown_format_is_named_with_close_matches():
    with pytest.raises(PluginError) as e:
        check_plugin_names(config(format="nzp"))
    assert e.value.reference == "dataset.format" and "'npz'" in e.value.message


@pytest.mark.parametrize("options,needle", [
    ({"arrays": "x"}, "dataset.format_options.arrays: npz has no option 'arrays' (its options: sample_axis, array)"),
    ({"sample_axis": "middle"}, "dataset.format_options.sample_axis"),
])
def test_format_options_are_checked_against_the_formats_model(options, needle):
    with pytest.raises(ConfigError) as e:
        config(format="npz", format_options=options)
    assert needle in e.value.message


@pytest.mark.parametrize("dataset,needle", [
    ({"format_options": {"array": "x"}}, "format_options is given without dataset.format"),
    ({"format": "npz", "access": "shards"}, "dataset.access shards"),
    ({"labels_file": "l.csv"}, "dataset.labels_file labels a flat layout"),
    ({"layout": "dlio", "labels_file": "l.csv"}, "dataset.labels_file labels a flat layout"),
    ({"layout": "flat", "manifest": "m.json"}, "dataset.manifest"),
    ({"file_shuffle": "sometimes"}, "dataset.file_shuffle"),
    ({"layout": "nested"}, "dataset.layout"),
])
def test_keys_that_do_not_fit_together_are_bad_input(dataset, needle):
    with pytest.raises(ConfigError) as e:
        config(**dataset)
    assert needle in e.value.message


class _PluginOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 4


def test_a_plugin_format_joins_with_its_options_model():
    unchecked = config(format="test_myrec", format_options={"height": 8})  # not loaded yet: named later
    with pytest.raises(PluginError):
        check_plugin_names(unchecked)

    @FORMATS.register("test_myrec", extensions=(".myrec",), options=_PluginOptions)
    class MyRec(FileFormat):
        pass

    try:
        with pytest.raises(ConfigError) as e:  # the plugin is loaded now: its options model decides
            check_plugin_names(unchecked)
        assert "dataset.format_options.height: test_myrec has no option 'height'" in e.value.message
        cfg = config(format="test_myrec", format_options={"width": 8})
        check_plugin_names(cfg)
        assert extensions(cfg.dataset) == [".myrec"] and is_file_format(cfg.dataset)
        with pytest.raises(ConfigError):  # registered: checked at validation already
            config(format="test_myrec", format_options={"height": 8})
    finally:
        FORMATS._entries.pop(("test_myrec", None), None)
