"""How a storage backend joins: the one table of built-ins, a plugin's own kind, options model and
secret options (an Azure-like plugin's keys never written anywhere), the pip package named when
a library is missing, and the names every consumer reads from the registry."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from dnnbench.cli import main
from dnnbench.config.loading import LoadedConfig, validate
from dnnbench.config.redact import REDACTED, is_secret_key, redact
from dnnbench.errors import EXIT_BAD_INPUT, ConfigError, PluginError
from dnnbench.registry import STORAGE, Registry
from dnnbench.storage import create_storage
from dnnbench.storage.backends import BUILTINS, S3, Backend
from tests.conftest import base_config

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_KEY = "AZKEY-sekrit-0123456789"
CONNECTION = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=CONNSTR-sekrit-987"

FAKE_AZURE = '''
from pydantic import BaseModel, ConfigDict

from dnnbench.errors import StorageError
from dnnbench.registry import STORAGE
from dnnbench.storage.fs import FileSystemStorage


class AzureOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    container: str
    account_name: str
    account_key: str | None = None
    connection_string: str | None = None
    refuse: bool = False


@STORAGE.register("fakeazure", kind="other", options=AzureOptions, secrets=("account_key", "connection_string"),
                  install="azure-storage-blob")
class FakeAzure(FileSystemStorage):
    """Blobs of a container (a folder here), reached with an account key."""

    def __init__(self, config, recorder=None, options=None):
        super().__init__(config.model_copy(update={"root": options.container}), recorder, options)

    def check(self):
        if self.options.refuse:
            raise StorageError(f"the account refused {self.options.connection_string}", reference="storage")
        super().check()
'''


def azure_config(tmp_path: Path, root: Path, **options) -> Path:
    (tmp_path / "fakeazure.py").write_text(FAKE_AZURE)
    data = base_config(root, tmp_path / "results", plugins=["./fakeazure.py"], logging={"path": str(tmp_path / "logs")})
    data["storage"] = {"client": "fakeazure", "prefixes": ["train"], "options": {
        "container": str(root), "account_name": "acct", "account_key": ACCOUNT_KEY, "connection_string": CONNECTION,
        **options}}
    path = tmp_path / "azure.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def everything_written(tmp_path: Path, printed: str) -> str:
    """What dnnbench wrote (results, run log) and printed."""
    files = [p for d in ("results", "logs") for p in (tmp_path / d).rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in files)
    return "".join(p.read_text(errors="replace") for p in files) + printed


# -- the table ----------------------------------------------------------------------------------------------
def test_every_builtin_row_is_the_registry_entry():
    for b in BUILTINS:
        entry = STORAGE.resolve(b.name)
        assert (entry.spec, entry.target if isinstance(entry.target, str) else entry.location,
                entry.aliases) == (b.backend, b.target, b.aliases)
        for alias in b.aliases:
            assert STORAGE.resolve(alias) is entry and STORAGE.canonical(alias) == b.name


def test_an_alias_is_checked_like_its_backend():
    """``s3torch`` (s3torchconnector's alias) passed validation without storage.s3 and failed at run time."""
    with pytest.raises(ConfigError) as e:
        validate({"storage": {"client": "s3torch"}})
    assert "client 's3torch' reads S3: add storage.s3" in str(e.value)
    with pytest.raises(ConfigError) as e:
        validate({"storage": {"client": "s3torch", "s3": {"bucket": "b"}}, "framework": {"name": "tensorflow"}})
    assert "s3torchconnector imports torch" in str(e.value) and "use boto3, minio or s3fs" in str(e.value)
    with pytest.raises(ConfigError, match="storage.root is needed by the local client"):
        validate({"storage": {"client": "local"}})


def test_a_failed_sweep_variant_names_the_client_as_a_run_does(tmp_path):
    from dnnbench.multirun.runs import record_failure

    cfg = validate({"storage": {"client": "s3", "s3": {"bucket": "b"}},
                    "metrics": {"output_dir": str(tmp_path)}})
    run_dir = record_failure(LoadedConfig(cfg, None, []), None, {}, "endpoint unreachable")
    assert "boto3" in (run_dir / "summary.csv").read_text().splitlines()[1].split(",")


def test_the_dss_layout_reads_with_the_s3_clients_of_the_table():
    from dnnbench.config.legacy_storage import _CLIENT_LIBS

    assert list(_CLIENT_LIBS) == [b.name for b in BUILTINS if b.backend.kind == S3]


# -- registration ---------------------------------------------------------------------------------------------
class Opts(BaseModel):
    key: str | None = None


@pytest.mark.parametrize("facts,needle", [
    ({"kind": "blob"}, "kind 'blob' is not one of filesystem, s3, other"),
    ({"options": dict}, "options must be a pydantic model class"),
    ({"options": Opts, "secrets": ("token",)}, "secrets ['token'] are not fields of Opts"),
    ({"secrets": "key"}, "secrets must be a tuple"),
    ({"colour": "red"}, "unexpected keyword argument 'colour'"),
])
def test_wrong_facts_are_refused_when_registering(facts, needle):
    reg = Registry("storage client", spec=Backend)
    with pytest.raises(PluginError) as e:
        reg.register("x", **facts)(type("S", (), {}))
    assert needle in e.value.message and "cannot be registered" in e.value.message
    with pytest.raises(PluginError, match="takes no"):
        Registry("model").register("m", kind="s3")(type("M", (), {}))


def test_a_plugin_without_an_options_model_gets_its_options_unchecked(tmp_path):
    from dnnbench.storage.fs import FileSystemStorage

    @STORAGE.register("plain_fs_plugin")
    class Plain(FileSystemStorage):  # the contract before options models: (config, recorder)
        def __init__(self, config, recorder=None):
            super().__init__(config, recorder)

    cfg = validate({"storage": {"client": "plain_fs_plugin", "root": str(tmp_path), "options": {"any": 1}}})
    store = create_storage(cfg.storage)
    assert isinstance(store, Plain) and store.options is None and store.config.options == {"any": 1}
    assert STORAGE.spec_of("plain_fs_plugin") == Backend()


def test_builtin_options_are_checked_against_their_model():
    with pytest.raises(ConfigError) as e:
        validate({"storage": {"client": "s3", "s3": {"bucket": "b"}, "options": {"pool": 4}}})
    assert "storage.options.pool: boto3 has no option 'pool' (its options: none)" in str(e.value)


def test_a_missing_library_names_its_pip_package():
    code = textwrap.dedent("""
        import sys
        sys.modules["minio"] = None  # as if not installed
        from dnnbench.config.loading import validate
        from dnnbench.errors import PluginError
        from dnnbench.storage import create_storage
        cfg = validate({"storage": {"client": "minio", "s3": {"bucket": "b"}}})
        try:
            create_storage(cfg.storage)
        except PluginError as e:
            print(e.exit_code, e.message, "|", e.hint)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"{EXIT_BAD_INPUT} storage client 'minio' needs the Python package 'minio'")
    assert "| pip install minio" in out


# -- a plugin backend's secrets ------------------------------------------------------------------------------
def test_plugin_backend_secrets_are_never_written(tiny_root, tmp_path, capsys):
    cfg = azure_config(tmp_path, tiny_root)
    assert main(["validate", "--config", str(cfg)]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)["storage"]["options"]
    assert shown == {"container": str(tiny_root), "account_name": "acct", "account_key": REDACTED,
                     "connection_string": REDACTED}
    assert main(["-q", "--config", str(cfg), "--set", "dataset.max_samples=8"]) == 0
    (run,) = (p for p in (tmp_path / "results").iterdir() if p.is_dir())
    assert (run / "config.yaml").is_file() and "fakeazure" in (run / "summary.csv").read_text()
    captured = capsys.readouterr()
    text = everything_written(tmp_path, captured.out + captured.err)
    assert ACCOUNT_KEY not in text and "CONNSTR-sekrit" not in text and REDACTED in text


def test_plugin_backend_secret_in_an_error_is_masked(tiny_root, tmp_path):
    """A fresh process: the plugin's declared secrets are known before the first line is printed or logged."""
    cfg = azure_config(tmp_path, tiny_root, refuse=True)
    r = subprocess.run([sys.executable, "benchmark.py", "-q", "--config", str(cfg)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and "the account refused" in r.stderr
    text = everything_written(tmp_path, r.stdout + r.stderr)
    assert "CONNSTR-sekrit" not in text and ACCOUNT_KEY not in text
    (log,) = (tmp_path / "logs").glob("*.log")
    assert "the account refused" in log.read_text()


def test_plugin_backend_options_are_checked_against_its_model(tiny_root, tmp_path, capsys):
    cfg = azure_config(tmp_path, tiny_root, acount_name="typo")
    assert main(["validate", "--config", str(cfg)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "storage.options.acount_name: fakeazure has no option 'acount_name'" in " ".join(err.split())


def test_declared_secret_names_are_secrets_anywhere():
    assert is_secret_key("storage.options.connection_string") and is_secret_key("account_key")
    assert not is_secret_key("account_name")
    assert redact({"storage.options.account_key": "abc"}) == {"storage.options.account_key": REDACTED}
