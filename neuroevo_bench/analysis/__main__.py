"""Command line: ``python -m neuroevo_bench.analyze [report] RESULTS_DIR [RESULTS_DIR ...] [options]``.

Subcommands keep one entry point for everything done with a results tree: ``report`` (the default, so a bare
results directory works) writes tables and figures; ``replay`` and ``compare`` (regression tracking) will join
it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES

__all__ = ["build_parser", "main"]

DEFAULT_COMMAND = "report"


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
    except NoRunsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report.markdown, end="")
    print(f"\nwrote {len(report.files)} files to {report.out_dir}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 nothing to analyse, 2 bad arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
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
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
