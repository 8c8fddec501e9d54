"""Command line: ``python -m neuroevo_bench.analyze [report] RESULTS_DIR [RESULTS_DIR ...] [options]``.

Subcommands keep one entry point for everything done with a results tree: ``report`` (the default, so a bare
results directory works) writes tables and figures; ``compare``, ``promote`` and ``history`` track regressions
against stored baselines (:mod:`.compare`, :mod:`.history`). Everything here reads records only; replaying a
run's policy needs the training stack and has its own entry point, ``python -m neuroevo_bench.replay``.

``status`` lists where every run of a sweep stands (:mod:`.status`); it reads only run records with the standard
library, so it starts fast enough to ``watch``.

Exit status: 0 done (``compare``: no regression; ``status``: no run failed), 1 ``compare`` found a regression or
a baseline row without new runs, ``status`` found a failed run, or nothing could be analysed, 2 bad arguments or
inputs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]

DEFAULT_COMMAND = "report"
MOVED = {"replay": "python -m neuroevo_bench.replay RUN_DIR"}  # former subcommands: where they went


def _threshold(text: str) -> tuple[str, float]:
    env, sep, value = text.partition("=")
    try:
        if not sep or not env:
            raise ValueError
        return env, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ENV=VALUE (e.g. CartPole=475), got {text!r}") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _report(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # a CLI writes files; never open windows
    from .load import NoRunsError
    from .report import analyze

    try:
        report = analyze(
            args.results_dirs,
            args.out,
            thresholds=dict(args.threshold),
            seed=args.seed,
            n_resamples=args.resamples,
            confidence_level=args.confidence,
            reference=args.reference,
            curve_interp=args.curve_interp,
            formats=[fmt for fmt in args.formats.split(",") if fmt],
            dpi=args.dpi,
        )
    except NoRunsError as error:  # bad input, as for status and compare
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.markdown, end="")
    print(f"\nwrote {len(report.files)} files to {report.out_dir}", file=sys.stderr)
    return 0


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare, comparison_markdown, resolve_baseline
    from .history import append_history, comparison_rows
    from .load import NoRunsError

    if not args.new and args.bench is None:
        print("error: nothing to compare: give NEW results and/or --bench NEW.json", file=sys.stderr)
        return 2
    try:
        comparison = compare(
            args.new,
            resolve_baseline(args.baseline, args.baselines_dir),
            bench=args.bench,
            overrides=_tolerance_overrides(args),
            confidence_level=args.confidence,
        )
    except (NoRunsError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    markdown = comparison_markdown(comparison)
    print(markdown, end="")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown)
    if args.history is not None:
        append_history(args.history, comparison_rows(comparison))
        print(f"\nappended to {args.history}", file=sys.stderr)
    return 1 if comparison.failed else 0


def _tolerance_overrides(args: argparse.Namespace) -> dict:
    return {
        "score": args.score_tolerance,
        "fps": args.fps_tolerance,
        "score_abs": dict(args.score_tolerance_abs),
    }


def _promote(args: argparse.Namespace) -> int:
    import shlex

    from .compare import Tolerances, promote
    from .history import append_history, summary_rows
    from .load import NoRunsError

    command = shlex.join(["python", "-m", "neuroevo_bench.analyze", *args.argv])
    try:
        baseline = promote(
            args.results_dirs,
            args.name,
            baselines_dir=args.baselines_dir,
            bench=args.bench,
            tolerances=Tolerances().override(**_tolerance_overrides(args)),
            command=command,
            force=args.force,
        )
    except (NoRunsError, OSError, ValueError) as error:  # FileExistsError is an OSError
        print(f"error: {error}", file=sys.stderr)
        return 2
    print((baseline.path / "summary.md").read_text(), end="")
    print(f"\nwrote baseline {baseline.path} ({len(baseline.runs)} runs)", file=sys.stderr)
    if args.history is not None:
        append_history(
            args.history, summary_rows(baseline.runs, event="promote", label=args.name, bench=baseline.bench)
        )
        print(f"appended to {args.history}", file=sys.stderr)
    return 0


def _history(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .history import plot_history, read_history

    try:
        history = read_history(args.history)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    out = args.out if args.out is not None else args.history.parent / "history"
    files = plot_history(history, out, formats=[f for f in args.formats.split(",") if f], dpi=args.dpi)
    groups = history.groupby(["env", "algo"], sort=False).size()
    print(f"{len(history)} history rows, {len(groups)} (env, algo) series: wrote {len(files)} files to {out}")
    return 0


def _add_tolerance_options(parser: argparse.ArgumentParser, defaults_from: str) -> None:
    parser.add_argument(
        "--score-tolerance",
        type=_non_negative,
        help="score drop that counts, as a fraction of the env's score range (score_max - score_random; "
        f"without references: of |baseline mean|); default: {defaults_from}",
    )
    parser.add_argument(
        "--score-tolerance-abs",
        type=_threshold,
        action="append",
        default=[],
        metavar="ENV=VALUE",
        help="absolute score tolerance for one env (config name or id), replaces the fraction; repeatable",
    )
    parser.add_argument(
        "--fps-tolerance",
        type=_fraction,
        help="throughput drop that counts: regressed when new < (1 - this) x baseline frames/s, same "
        f"machine only; default: {defaults_from}",
    )


def _add_history_options(parser: argparse.ArgumentParser) -> None:
    from .history import DEFAULT_HISTORY

    parser.add_argument(
        "--history",
        type=Path,
        default=DEFAULT_HISTORY,
        help="append-only history table to add this to (%(default)s)",
    )
    parser.add_argument(
        "--no-history", dest="history", action="store_const", const=None, help="do not append to the history"
    )


def build_parser() -> argparse.ArgumentParser:
    from .stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES

    parser = argparse.ArgumentParser(
        prog="python -m neuroevo_bench.analyze",
        description="Analyse a tree of benchmark runs: comparison tables and paper figures.",
        epilog=f"Without a subcommand, '{DEFAULT_COMMAND}' is assumed: "
        "python -m neuroevo_bench.analyze results/ == python -m neuroevo_bench.analyze report results/",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    report = commands.add_parser(
        "report",
        help="tables (Markdown, CSV, LaTeX) and figures for one or more results trees",
        description="Load every run below RESULTS_DIR(s) (directories with run.json), write the comparison.",
    )
    report.add_argument("results_dirs", nargs="+", type=Path, metavar="RESULTS_DIR")
    report.add_argument("--out", type=Path, help="output directory (default: FIRST_RESULTS_DIR/analysis)")
    report.add_argument(
        "--seed", type=int, default=0, help="bootstrap seed; fixed seed = identical report (0)"
    )
    report.add_argument(
        "--threshold",
        type=_threshold,
        action="append",
        default=[],
        metavar="ENV=VALUE",
        help="'solved' score for an env (config name or env id), replaces run.json's; repeatable",
    )
    report.add_argument(
        "--resamples", type=_positive_int, default=DEFAULT_RESAMPLES, help="bootstrap resamples (%(default)s)"
    )
    report.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, help="CI level (%(default)s)")
    report.add_argument(
        "--reference", default="ga", help="algorithm compared with all others in P(X > Y) (%(default)s)"
    )
    report.add_argument(
        "--curve-interp",
        choices=("step", "linear"),
        default="step",
        help="learning curves between eval points: hold the last test score, or interpolate (%(default)s)",
    )
    report.add_argument(
        "--formats",
        default="png,pdf",
        help="figure formats, comma-separated; empty: tables only (%(default)s)",
    )
    report.add_argument("--dpi", type=_positive_int, default=300, help="PNG resolution (%(default)s)")
    report.set_defaults(run=_report)

    from . import status as status_module

    status = commands.add_parser(
        "status",
        help="where every run of a sweep stands: status, frames, score, frames/s, ETA, stale runs, errors",
        description=status_module.DESCRIPTION,
    )
    status_module.add_arguments(status)
    status.set_defaults(run=status_module.run_cli)

    from .compare import DEFAULT_BASELINES_DIR, DEFAULT_FPS_TOLERANCE, DEFAULT_SCORE_TOLERANCE
    from .history import DEFAULT_HISTORY

    compare = commands.add_parser(
        "compare",
        help="regression check: new results (and/or a speed benchmark) against a baseline",
        description="Per (env, algo): baseline vs new final score with Student-t CIs, their difference with "
        "a Welch t CI, P(new > base), frames/s ratio (same machine only) and a verdict (ok, improved, regressed); "
        "per speed-benchmark section: ratio change. Exits 1 when anything regressed. Prints Markdown.",
    )
    compare.add_argument(
        "new", nargs="*", type=Path, metavar="NEW", help="results tree(s) or baseline directory(ies)"
    )
    compare.add_argument(
        "--baseline",
        required=True,
        help="baseline directory, baseline name (under --baselines-dir) or results tree",
    )
    compare.add_argument(
        "--baselines-dir",
        type=Path,
        default=DEFAULT_BASELINES_DIR,
        help="where named baselines live (%(default)s)",
    )
    compare.add_argument(
        "--bench",
        type=Path,
        help="speed benchmark JSON (bench --json) to compare with the baseline's bench.json",
    )
    _add_tolerance_options(
        compare,
        f"the baseline's baseline.json, else {DEFAULT_SCORE_TOLERANCE:g} (score) / {DEFAULT_FPS_TOLERANCE:g} (fps)",
    )
    compare.add_argument("--markdown", type=Path, help="also write the Markdown to this file (PR comment)")
    compare.add_argument(
        "--confidence", type=float, default=DEFAULT_CONFIDENCE, help="CI level (%(default)s)"
    )
    _add_history_options(compare)
    compare.set_defaults(run=_compare)

    promote = commands.add_parser(
        "promote",
        help="store results (and a speed benchmark) as a named baseline under results/baselines/",
        description="Write a compact baseline (runs.csv, baseline.json, summary.md, bench.json) of the runs "
        "below RESULTS_DIR(s): small enough to commit, everything compare needs.",
    )
    promote.add_argument("results_dirs", nargs="+", type=Path, metavar="RESULTS_DIR")
    promote.add_argument("--name", required=True, help="baseline name, e.g. ci_cartpole")
    promote.add_argument(
        "--baselines-dir", type=Path, default=DEFAULT_BASELINES_DIR, help="where baselines live (%(default)s)"
    )
    promote.add_argument("--bench", type=Path, help="speed benchmark JSON to store with it (bench --json)")
    promote.add_argument("--force", action="store_true", help="replace an existing baseline of that name")
    _add_tolerance_options(
        promote,
        f"{DEFAULT_SCORE_TOLERANCE:g} (score) / {DEFAULT_FPS_TOLERANCE:g} (fps); stored in baseline.json",
    )
    _add_history_options(promote)
    promote.set_defaults(run=_promote)

    history = commands.add_parser(
        "history",
        help="plot score and throughput per (env, algo) across the commits in the history table",
    )
    history.add_argument(
        "--history", type=Path, default=DEFAULT_HISTORY, help="the history table to plot (%(default)s)"
    )
    history.add_argument("--out", type=Path, help="output directory (default: HISTORY's directory/history)")
    history.add_argument("--formats", default="png", help="figure formats, comma-separated (%(default)s)")
    history.add_argument("--dpi", type=_positive_int, default=150, help="PNG resolution (%(default)s)")
    history.set_defaults(run=_history)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 nothing to analyse / a regression / a failed run, 2 bad
    arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "status":  # records only, standard library: skip importing what the others need
        from . import status

        return status.main(argv[1:])
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    if argv and argv[0] in MOVED:
        print(
            f"error: '{argv[0]}' is no longer an analysis subcommand: use {MOVED[argv[0]]}", file=sys.stderr
        )
        return 2
    if argv and argv[0] not in commands and argv[0] not in ("-h", "--help"):
        argv.insert(0, DEFAULT_COMMAND)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        # Our warnings (skipped runs) and infos; other libraries only from WARNING up.
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
        logging.getLogger("neuroevo_bench").setLevel(logging.INFO)
    args.argv = argv  # promote records the command that made a baseline
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
