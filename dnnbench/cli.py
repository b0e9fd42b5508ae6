"""Command line: ``benchmark.py [run] --config F``, ``validate``, ``prepare``, ``plugins``.

The one place that turns errors into exit codes: 0 ok, 1 run failed, 2 bad
input or config, 130 interrupted. Tracebacks only with ``--debug``.
Importing this module imports no framework and no storage client library.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from typing import Any

from dnnbench import __version__
from dnnbench.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, BenchError

SUBCOMMANDS = ("run", "validate", "prepare", "plugins")


def _common(p: argparse.ArgumentParser, config_required: bool = True) -> None:
    p.add_argument("--config", "-c", required=config_required, metavar="FILE",
                   help="YAML or JSON config (the dss-style JSON layout works too)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set framework.num_workers=4 (repeatable)")
    _flags(p)


def _flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks and framework logs")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress bars; one result line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmark.py",
        description="dnnbench: how fast can training read its dataset from this storage?",
        epilog="Exit codes: 0 ok, 1 run failed, 2 bad input or config, 130 interrupted. "
               "`benchmark.py --config F` is short for `benchmark.py run --config F`.")
    parser.add_argument("--version", action="version", version=f"dnnbench {__version__}")
    _flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="{run,validate,prepare,plugins}")
    run = sub.add_parser("run", help="run a benchmark (the default)")
    _common(run)
    run.add_argument("--run-id", metavar="NAME", help="name of the results directory (never reused)")
    val = sub.add_parser("validate", help="check a config and print it resolved (secrets redacted)")
    _common(val)
    prep = sub.add_parser("prepare", help="write the synthetic dataset of the config's prepare: section")
    _common(prep)
    prep.add_argument("--force", action="store_true", help="write it again even if present")
    plug = sub.add_parser("plugins", help="list registered storage clients, datasets, models and trainers")
    _common(plug, config_required=False)
    return parser


def _normalise(argv: list[str]) -> list[str]:
    """``benchmark.py --config F`` means ``benchmark.py run --config F``."""
    if any(a in SUBCOMMANDS for a in argv):
        return argv
    if any(a in ("-h", "--help", "--version") for a in argv) and not any(
            a.startswith("--config") or a == "-c" for a in argv):
        return argv
    return ["run", *argv] if argv else argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(_normalise(argv))
    debug = getattr(args, "debug", False)
    quiet = getattr(args, "quiet", False)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    from dnnbench.ui.console import RichEvents, make_console, render_error

    events = RichEvents(make_console(), quiet=quiet)
    err_console = make_console(stderr=True)
    secrets: set[str] = set()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _dispatch(args, argv, events, secrets)
    except BenchError as e:
        _report_error(e, debug, err_console, secrets, render_error)
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the one place unexpected errors become an exit code
        _report_error(e, debug, err_console, secrets, render_error)
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _on_sigterm(signum: int, frame: Any) -> None:
    from dnnbench.executor import Interrupted

    raise Interrupted()


def _report_error(e: BaseException, debug: bool, console, secrets: set[str], render) -> None:
    if debug:
        text = "".join(traceback.format_exception(e))
        for s in secrets:
            text = text.replace(s, "***redacted***")
        console.print(text, markup=False, highlight=False)
    render(_Scrubbed(e, secrets) if secrets else e, console)


class _Scrubbed(BenchError):
    """An error whose text has every known secret masked."""

    def __init__(self, e: BaseException, secrets: set[str]):
        def clean(t: str | None) -> str | None:
            if t is None:
                return None
            for s in secrets:
                t = t.replace(s, "***redacted***")
            return t

        if isinstance(e, BenchError):
            super().__init__(clean(e.message), reference=clean(e.reference), hint=clean(e.hint))
            self.details = [clean(d) for d in getattr(e, "details", [])]
        else:
            super().__init__(clean(f"{type(e).__name__}: {e}"), hint="run again with --debug for the traceback")
            self.details = []


def _dispatch(args: argparse.Namespace, argv: list[str], events, secrets: set[str]) -> int:
    from dnnbench.config.loading import load_config
    from dnnbench.config.redact import secret_values

    if args.command == "plugins":
        return _plugins(args, events)
    loaded = load_config(args.config, args.overrides)
    secrets |= secret_values(loaded.config.model_dump(mode="json"))
    for notice in loaded.notices:
        events.notice(notice)
    if args.command == "validate":
        return _validate(loaded, events)
    from dnnbench import executor

    if args.command == "prepare":
        executor.load_plugins(loaded, events)
        executor.prepare_dataset(loaded, events, force=args.force)
        return EXIT_OK
    outcome = executor.Executor(loaded, events, run_id=args.run_id, argv=["benchmark.py", *argv]).run()
    if outcome.error is not None:
        raise outcome.error
    if outcome.exit_code == EXIT_INTERRUPTED:
        events.warning(f"interrupted: partial results kept in {outcome.run_dir}")
    return outcome.exit_code


def _validate(loaded, events) -> int:
    import yaml

    from dnnbench.config.redact import redact, secret_values
    from dnnbench.executor import check_plugin_names, load_plugins

    load_plugins(loaded, events)
    check_plugin_names(loaded.config)
    raw = loaded.config.model_dump(mode="json")
    print(yaml.safe_dump(redact(raw, secret_values(raw)), sort_keys=False), end="")
    print(f"# {loaded.path}: valid", file=sys.stderr)
    return EXIT_OK


def _plugins(args: argparse.Namespace, events) -> int:
    from rich.table import Table

    from dnnbench.registry import REGISTRIES, load_entry_points

    if args.config:
        from dnnbench.config.loading import load_config
        from dnnbench.executor import load_plugins

        load_plugins(load_config(args.config, args.overrides), events)
    else:
        for problem in load_entry_points():
            events.warning(problem)
    table = Table(title="dnnbench plugins", header_style="bold")
    for col in ("kind", "name", "framework", "aliases", "origin", "where", "what"):
        table.add_column(col)
    for kind, registry in REGISTRIES.items():
        for e in registry.entries():
            table.add_row(kind, e.name, e.framework or "any", ", ".join(e.aliases), e.origin, e.location,
                          e.description)
    events.console.print(table)
    return EXIT_OK
