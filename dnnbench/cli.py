"""Command line: ``benchmark.py [run] --config F``, ``validate``, ``prepare``, ``plugins``,
``compare``, ``au-search``, ``predict``.

The one place that turns errors into exit codes: 0 ok, 1 run failed (in a sweep: any
variant failed), 2 bad input or config, 3 a regression beyond ``--max-regression``
against ``--baseline``, 130 interrupted. Tracebacks only with ``--debug``.
Importing this module imports no framework and no storage client library.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from dnnbench import __version__, signals
from dnnbench.errors import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REGRESSION, BenchError,
                             ConfigError)

SUBCOMMANDS = ("run", "validate", "prepare", "plugins", "compare", "au-search", "predict")


def _common(p: argparse.ArgumentParser, config_required: bool = True) -> None:
    p.add_argument("--config", "-c", "-cfg", required=config_required, metavar="FILE",
                   help="YAML or JSON config (the dss-style JSON layout works too; -cfg as upstream)")
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
        epilog="Exit codes: 0 ok, 1 run failed (a sweep: any variant failed), 2 bad input or config, "
               "3 regression beyond --max-regression, 4 a run rule failed under --rules mlperf, 130 interrupted. "
               "`benchmark.py --config F` is short for `benchmark.py run --config F`.")
    parser.add_argument("--version", action="version", version=f"dnnbench {__version__}")
    _flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="{run,validate,prepare,plugins,compare,au-search,predict}")
    run = sub.add_parser("run", help="run a benchmark, or every variant of its sweep: (the default)")
    _common(run)
    run.add_argument("--run-id", metavar="NAME", help="name of the results directory (never reused); "
                                                      "with a sweep: the sweep id")
    run.add_argument("--rules", choices=("mlperf", "none"), default=None,
                     help="mlperf: a failed run rule (dataset >= 5x client memory, >= 500 steps per epoch, "
                          "5 repeats within 5%%) is exit 4; none: rules are reported only (default: rules.enforce)")
    _gate_flags(run, compare=False)
    val = sub.add_parser("validate", help="check a config and print it resolved (secrets redacted)")
    _common(val)
    prep = sub.add_parser("prepare", help="write the synthetic dataset of the config's prepare: section")
    _common(prep)
    prep.add_argument("--force", action="store_true", help="write it again even if present")
    prep.add_argument("--shards", action="store_true",
                      help="also pack the dataset into tar shards under shards.prefix (WebDataset layout)")
    prep.add_argument("--from", dest="source", action="append", metavar="DIR",
                      help="upload this local image-folder dataset (DIR/<class>/<file>) instead of generating "
                           "one; once for all prefixes or once per prefix")
    plug = sub.add_parser("plugins", help="list registered storage clients, datasets, models and trainers")
    _common(plug, config_required=False)
    _compare_parser(sub)
    _au_search_parser(sub)
    _predict_parser(sub)
    return parser


def _gate_flags(p: argparse.ArgumentParser, compare: bool) -> None:
    what = "LABEL|FILE" if compare else "FILE"
    p.add_argument("--baseline", metavar=what,
                   help=("a variant label (the ratios' reference) or a baseline FILE to gate against"
                         if compare else "gate against this baseline file (see --save-baseline)"))
    p.add_argument("--max-regression", action="append", metavar="TOL",
                   help="gate tolerance, default 10%%: exit 3 when throughput (MiB_per_s) drops, or p99 request "
                        "latency or time to first batch rises, by more; METRIC=TOL sets one metric (repeatable)")
    p.add_argument("--save-baseline", metavar="FILE", help="write these results as a baseline file for --baseline")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="gate against a baseline FILE even when the runs differ from it in framework, storage, "
                        "client, access, decode, dataset, trainer, workers, batch size or emulation (default: "
                        "refused, exit 2)")


def _compare_parser(sub) -> None:
    cmp = sub.add_parser("compare", help="compare runs: a table, comparison.csv and plots (default: the last sweep)")
    cmp.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run directories (results/<run-id>)")
    cmp.add_argument("--sweep", action="append", metavar="ID", help="the runs of this sweep (repeatable)")
    cmp.add_argument("--last", type=int, metavar="N", help="the last N runs of results/summary.csv")
    cmp.add_argument("--results", default="results", metavar="DIR", help="where runs are (default: results)")
    cmp.add_argument("--out", metavar="DIR", help="output folder (default: <results>/compare-<sweep id or time>)")
    cmp.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    _gate_flags(cmp, compare=True)
    _flags(cmp)


def _au_search_parser(sub) -> None:
    au = sub.add_parser("au-search", help="how many emulated accelerators can this storage feed at the target AU?")
    _common(au)
    au.add_argument("--compute-time-s", type=float, metavar="X",
                    help="emulated accelerator time per step (default: training.compute_time_s)")
    au.add_argument("--target-au", type=float, default=None, metavar="PCT",
                    help="AU to keep, %% (default: training.au_target_percent, a DLIO workload's metric.au; else 90)")
    au.add_argument("--max-accelerators", type=int, default=32, metavar="N", help="largest count tried (default 32)")
    au.add_argument("--criterion", choices=("min", "mean"), default="min",
                    help="AU over a count's accelerators that must meet the target (default min)")
    au.add_argument("--repeats", type=int, default=3, metavar="N",
                    help="measurements of the counts either side of the answer, to show their noise (default 3; "
                         "other counts are measured once)")
    au.add_argument("--timeout-s", type=float, default=600.0, metavar="S", help="limit per measurement (default 600)")
    au.add_argument("--run-id", metavar="NAME", help="the search id (default <time>-<config name>)")


def _predict_parser(sub) -> None:
    pr = sub.add_parser("predict", help="what if: predict samples/s, MiB/s and AU over a grid from one short probe")
    _common(pr)
    pr.add_argument("--grid", nargs="+", action="extend", default=[], metavar="KEY=V1,V2",
                    help="the what-if grid, sweep keys: framework.num_workers=1,2,4 storage.emulate.latency_ms=0,20 "
                         "dataset.requests_in_flight, training.compute_time_s, framework.batch_size, "
                         "framework.prefetch_factor, storage.emulate.bandwidth_MBps, accelerators")
    pr.add_argument("--check", action="store_true",
                    help="also run a sample of the grid for real and report predicted vs measured")
    pr.add_argument("--check-points", type=int, default=6, metavar="N", help="points --check runs (default 6)")
    pr.add_argument("--check-repeat", type=int, default=3, metavar="N",
                    help="runs of each checked point; the median is compared (default 3)")
    pr.add_argument("--run-id", metavar="NAME", help="the predict folder's id (default <time>-<config name>)")


#: options of the top-level parser; none takes a value
_TOP_FLAGS = ("-h", "-q", "--help", "--quiet", "--debug", "--version")


def _is_top_flag(arg: str) -> bool:
    """A top-level flag, or an unambiguous abbreviation argparse would accept (``--deb``)."""
    if arg in _TOP_FLAGS:
        return True
    return arg.startswith("--") and len(arg) > 3 and "=" not in arg and \
        len([f for f in _TOP_FLAGS if f.startswith(arg)]) == 1


def _normalise(argv: list[str]) -> list[str]:
    """``benchmark.py --config F`` means ``benchmark.py run --config F``.

    Only the first token after the top-level flags (``--debug``, ``-q``...) can be a
    subcommand: ``--run-id plugins`` or ``--config validate`` are option values."""
    i = 0
    while i < len(argv) and _is_top_flag(argv[i]):
        i += 1
    if i < len(argv) and argv[i] in SUBCOMMANDS:
        return argv
    if any(a in ("-h", "--help", "--version") for a in argv) and not any(
            a.startswith("--config") or a in ("-c", "-cfg") for a in argv):
        return argv
    return ["run", *argv] if argv else argv


def _set_signal(sig: int, handler: Any) -> Any:
    try:
        return signal.signal(sig, handler)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Ctrl-C or SIGTERM at any point is one line on stderr and 130, never a traceback.
    """
    entry_point = argv is None  # the process's own command line: it ends when main returns
    argv = list(sys.argv[1:] if argv is None else argv)
    previous = {signal.SIGTERM: _set_signal(signal.SIGTERM, signals.interrupt),
                signal.SIGINT: signal.getsignal(signal.SIGINT)}
    if previous[signal.SIGINT] is signal.default_int_handler:  # an ignored SIGINT (a background job) stays so
        _set_signal(signal.SIGINT, _on_sigint)
    command = None
    interrupted = False
    try:
        parser = build_parser()
        args = parser.parse_args(_normalise(argv))
        command = args.command
        return _main(parser, args, argv)
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM (errors.Interrupted is one)
        interrupted = True
        for sig in previous:  # a second Ctrl-C while saying so (or while exiting) must not print a traceback
            _set_signal(sig, signal.SIG_IGN)
        note = ": the dataset may be incomplete; `prepare --force` writes it again" if command == "prepare" else ""
        print(f"interrupted{note}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        if not (interrupted and entry_point):  # called in-process (tests, embedding): put the handlers back
            for sig, handler in previous.items():
                if handler is not None:
                    _set_signal(sig, handler)


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    debug = getattr(args, "debug", False)
    from dnnbench.frameworks import set_verbose_logs

    set_verbose_logs(debug)  # framework start-up logs (TensorFlow's) only with --debug
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    ui = _Ui(quiet=getattr(args, "quiet", False))
    secrets: set[str] = set()
    try:
        return _dispatch(args, argv, ui.events, secrets)
    except Exception as e:  # noqa: BLE001 - the one place errors become an exit code
        _report_error(e, debug, ui.err_console, secrets)
        return e.exit_code if isinstance(e, BenchError) else EXIT_FAILED


class _Ui:
    """The console UI, made on first use: ``validate`` with nothing to say but the config
    (printed plainly) never imports rich."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.events = _Lazy(self._make_events)

    @functools.cached_property
    def err_console(self) -> Any:
        from dnnbench.ui.console import make_console

        return make_console(stderr=True)

    def _make_events(self) -> Any:
        from dnnbench.ui.console import RichEvents, make_console

        return RichEvents(make_console(), quiet=self.quiet, err_console=self.err_console)


class _Lazy:
    """An object built by ``build()`` on first use of any of its attributes."""

    def __init__(self, build: Any):
        self._build = build
        self._obj: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._obj is None:
            self._obj = self._build()
        return getattr(self._obj, name)


def _on_sigint(signum: int, frame: Any) -> None:
    signals.note(signum)
    raise KeyboardInterrupt()


def _report_error(e: BaseException, debug: bool, console, secrets: set[str]) -> None:
    from dnnbench.ui.console import render_error

    if debug:
        text = "".join(traceback.format_exception(e))
        for s in secrets:
            text = text.replace(s, "***redacted***")
        console.print(text, markup=False, highlight=False)
    render_error(_Scrubbed(e, secrets) if secrets else e, console)


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
    if args.command == "compare":
        return _compare(args, events)
    if args.command == "au-search":  # what the emulated accelerators run, validated as such
        args.overrides.append("training.trainer=emulate")
    if getattr(args, "rules", None):
        args.overrides.append(f"rules.enforce={args.rules}")
    loaded = load_config(args.config, args.overrides)
    from dnnbench.config.plugins import import_plugins

    import_plugins(loaded)  # first: the secrets its storage backends declare are masked from here on
    secrets |= secret_values(loaded.config.model_dump(mode="json"))
    if args.command == "validate":
        for notice in loaded.notices:
            events.notice(notice)
        return _validate(loaded, events, args.overrides)
    from dnnbench.runlog import run_log

    with run_log(loaded.config.logging, loaded.stem, events, args.command, secrets) as logged:
        for notice in loaded.notices:
            logged.notice(notice)
        return _execute(args, argv, loaded, logged)


def _execute(args: argparse.Namespace, argv: list[str], loaded, events) -> int:
    """prepare, au-search or run (a sweep or one run) of a loaded config."""
    from dnnbench import executor

    if args.command == "prepare":
        executor.load_plugins(loaded, events)
        executor.prepare_dataset(loaded, events, force=args.force, source=args.source)
        if args.shards:
            executor.pack_shards(loaded, events, force=args.force)
        return EXIT_OK
    if args.command == "au-search":
        return _au_search(args, loaded, events)
    if args.command == "predict":
        return _predict(args, loaded, events)
    from dnnbench.reporting.gate import gate_spec
    from dnnbench.multirun.plan import is_sweep

    # bad input: nothing runs
    gate = gate_spec(args.baseline, args.max_regression, args.save_baseline, args.allow_mismatch)
    if is_sweep(loaded):
        return _sweep(args, argv, loaded, events, gate)
    outcome = executor.Executor(loaded, events, run_id=args.run_id, argv=["benchmark.py", *argv]).run()
    if outcome.error is not None:
        raise outcome.error
    if outcome.exit_code == EXIT_INTERRUPTED:
        events.warning(f"interrupted: partial results kept in {outcome.run_dir}")
    code = outcome.exit_code
    if code == EXIT_OK and gate is not None:
        from dnnbench.reporting import compare

        code = _apply_gate(compare.compare(compare.read_run_dirs([outcome.run_dir])), gate, events, EXIT_OK)
    if code == EXIT_OK:  # a failed run (1) or a regression (3) is the first thing to fix
        from dnnbench.reporting import rules

        rules.enforce(rules.failed_rules(outcome.row), loaded.config.rules.enforce,
                      str(outcome.run_dir / "summary.csv"))
    return code


def _apply_gate(c, g, events, code: int) -> int:
    """Check ``c`` against the baseline (exit 3 on a regression; a failed run, ``code`` 1, wins)
    and/or save it as the new baseline."""
    from dnnbench.reporting import gate
    from dnnbench.ui.console import render_gate

    if g.doc is not None:
        result = gate.check(g.doc, c, g.tolerances, g.allow_mismatch)
        render_gate(result, g.file, g.tolerances["*"], events.console, events.err_console)
        if not result.passed and code == EXIT_OK:
            code = EXIT_REGRESSION
    if g.save:
        path = gate.save_if_complete(g, c)
        if path is None:
            events.warning(f"baseline not saved to {g.save}: some runs failed")
        else:
            events.notice(f"baseline saved: {path}")
    return code


def _sweep(args: argparse.Namespace, argv: list[str], loaded, events, g) -> int:
    from dnnbench.reporting import compare
    from dnnbench.multirun import plan as sweep_plan
    from dnnbench.multirun.sweep import run_sweep

    plan = sweep_plan.plan(loaded, args.overrides)  # every variant validated before any runs
    result = run_sweep(plan, events, sweep_id=args.run_id, argv=["benchmark.py", *argv])
    if result.interrupted:
        events.warning(f"sweep {result.sweep_id} interrupted after {len(result.runs)} of {plan.runs} runs; "
                       "partial results kept")
        return EXIT_INTERRUPTED
    c = compare.compare(compare.read_run_dirs(result.run_dirs))
    _show_comparison(c, result.compare_dir, events, plots=True)
    failed_rules = _sweep_rules(c, plan.repeat, result, loaded.config.rules.enforce, events)
    if result.failed:
        events.warning(f"{len(result.failed)} of {len(result.runs)} runs failed: "
                       + "; ".join(f"{r.variant} (r{r.repeat}): {r.reason}" for r in result.failed[:3]))
    code = _apply_gate(c, g, events, result.exit_code) if g is not None else result.exit_code
    if code == EXIT_OK:
        from dnnbench.reporting import rules

        rules.enforce(failed_rules, loaded.config.rules.enforce, str(result.compare_dir / "report.md"))
    return code


def _sweep_rules(c, repeat: int, result, enforced: str, events) -> list[str]:
    """The sweep's summary.json and report.md (the repeats rule per variant); returns the rules
    any run or variant fails."""
    from dnnbench.reporting import documents, rules

    doc = documents.write_sweep_documents(result.compare_dir, result.sweep_id, repeat, c.groups, c.table, enforced)
    failed = {f"repeats ({v['variant']})" for v in doc["variants"] if v["rules"]["repeats"]["verdict"] == rules.FAIL}
    for g in c.groups.values():
        for row in g.to_dict("records"):
            failed.update(rules.failed_rules(row))
    for v in doc["variants"]:
        spread, verdict = v["rules"]["repeats"]["spread_percent"], v["rules"]["repeats"]["verdict"]
        say = events.warning if verdict == rules.FAIL else events.notice
        say(f"rule repeats, {v['variant']}: {verdict} ({v['ok_runs']} runs ok"
            + (f", spread {spread:.2f} %)" if spread is not None else ")"))
    events.notice(f"sweep report: {result.compare_dir / 'report.md'}")
    return sorted(failed)


def _show_comparison(c, out_dir, events, plots: bool) -> None:
    from dnnbench.reporting import compare, outputs
    from dnnbench.ui.console import comparison_table

    notes = outputs.write_outputs(c, out_dir, plots)
    events.console.print(comparison_table(c, width=events.console.width))
    for warn, text in compare.identity_notes(c):
        (events.warning if warn else events.notice)(text)
    for note in notes:
        events.notice(note)
    events.console.print(f"comparison: [bold]{out_dir}[/] (comparison.csv"
                         + (", throughput.png, latency_cdf.png, throughput_time.png)" if plots else ")"),
                         highlight=False)


def _compare(args: argparse.Namespace, events) -> int:
    import time

    from dnnbench.reporting import compare, gate
    from dnnbench.results import empty_dir

    label, file = args.baseline, None
    if label and (Path(label).is_file() or label.endswith(".json")):
        label, file = None, label  # a file: the gate's baseline; otherwise a variant label
    g = gate.gate_spec(file, args.max_regression, args.save_baseline, args.allow_mismatch)
    df = compare.read_run_dirs(args.run_dirs) if args.run_dirs else \
        compare.select_runs(args.results, args.sweep, args.last)
    c = compare.compare(df, baseline=label)
    sweeps = [s for s in dict.fromkeys(df["sweep_id"]) if s]
    name = f"compare-{sweeps[0]}" if len(sweeps) == 1 and not args.run_dirs else \
        f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    out = empty_dir(Path(args.out), "--out") if args.out else compare.fresh_dir(args.results, name)
    _show_comparison(c, out, events, plots=not args.no_plots)
    return _apply_gate(c, g, events, EXIT_OK) if g is not None else EXIT_OK


def _au_search(args: argparse.Namespace, loaded, events) -> int:
    from dnnbench.multirun import au_search
    from dnnbench.ui.console import render_au_search

    result = au_search.search(loaded, args.overrides, args.compute_time_s, target=args.target_au,
                              max_accelerators=args.max_accelerators, criterion=args.criterion, events=events,
                              search_id=args.run_id, timeout_s=args.timeout_s, repeats=args.repeats)
    render_au_search(result, events.console)
    return EXIT_OK


def _predict(args: argparse.Namespace, loaded, events) -> int:
    from dnnbench.predict import command

    if args.check_points < 1:
        raise ConfigError("--check-points must be at least 1", reference="--check-points", hint="e.g. --check-points 6")
    if args.check_repeat < 1:
        raise ConfigError("--check-repeat must be at least 1", reference="--check-repeat", hint="e.g. --check-repeat 3")
    result = command.run(loaded, args.overrides, args.grid, events, check=args.check,
                         check_points=args.check_points, check_repeat=args.check_repeat, run_id=args.run_id)
    for line in result.text:
        events.console.print(line, markup=False, highlight=False, soft_wrap=True)
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


def _validate(loaded, events, overrides: list[str]) -> int:
    import yaml

    from dnnbench.config.plugins import check_plugin_names, load_plugins
    from dnnbench.config.redact import redact, secret_values
    from dnnbench.multirun import plan as sweep_plan

    load_plugins(loaded, events)
    check_plugin_names(loaded.config)
    plan = sweep_plan.plan(loaded, overrides) if sweep_plan.is_sweep(loaded) else None
    if plan is not None:
        sweep_plan.check_plugins(plan, events)
    raw = loaded.config.model_dump(mode="json")
    print(yaml.safe_dump(redact(raw, secret_values(raw)), sort_keys=False), end="", flush=True)
    for line in loaded.translation:  # a DLIO workload: where each of its keys went
        print(f"# dlio: {line}", file=sys.stderr)
    if plan is not None:
        print(f"# {len(plan.variants)} variants x {plan.repeat} = {plan.runs} runs: "
              + ", ".join(v.label for v in plan.variants), file=sys.stderr)
    print(f"# {loaded.path}: valid", file=sys.stderr)
    return EXIT_OK


def _plugins(args: argparse.Namespace, events) -> int:
    from dnnbench.registry import REGISTRIES, load_entry_points
    from dnnbench.ui.console import plugins_table

    if args.config:
        from dnnbench.config.loading import load_config
        from dnnbench.config.plugins import load_plugins

        load_plugins(load_config(args.config, args.overrides), events)
    else:
        for problem in load_entry_points():
            events.warning(problem)
    rows = [(kind, e.name, e.framework or "any", ", ".join(e.aliases), e.origin, e.description)
            for kind, registry in REGISTRIES.items() for e in registry.entries()]
    events.console.print(plugins_table(rows, width=events.console.width))
    return EXIT_OK
