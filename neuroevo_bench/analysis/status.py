"""Where a sweep stands: ``python -m neuroevo_bench.analyze status RESULTS_DIR [...] [--json]``.

One row per run below the given directories: every directory holding ``run.json``, plus directories a job has
entered but whose run has not written ``run.json`` yet (a ``.hydra/`` or a ``checkpoint.pkl`` only: status
``starting``). Per run: env, algo, seed, status, training frames against the budget, the last test score,
training frames/s, an ETA for running runs, the age of the last checkpoint and of the last update of
``run.json``, and for failed runs the line of the error that names the exception.

A ``running`` (or ``starting``) run whose files have not changed for longer than
``max(10 min, 3 x checkpoint_every_s)`` is flagged ``stale?``: its process is probably gone (killed, node lost)
and the run needs ``resume=true``.

It is a pure reading of records with the standard library only (PyYAML, if installed, to read ``.hydra/`` of a
run without ``run.json``): fast enough to ``watch``, and a file that is missing, half written or unreadable is
noted and skipped, never fatal. The multirun callback (:mod:`.callback`) uses :func:`read_status` to find the
jobs that failed.

Exit status of the command: 0 no run failed, 1 at least one run failed, 2 bad input (a path that does not
exist, no runs found).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .labels import format_count, format_score

__all__ = [
    "NoRunsFound",
    "RunStatus",
    "SweepStatus",
    "add_arguments",
    "first_error_line",
    "format_duration",
    "format_table",
    "read_status",
    "run_cli",
    "summary_line",
]

RUN_FILE = "run.json"
CURVE_FILE = "curve.csv"
CHECKPOINT_FILE = "checkpoint.pkl"
ERROR_FILE = "error.txt"
HYDRA_DIR = ".hydra"
STALE_MIN_S = 600.0  # a running run silent for longer than max(this, 3 x checkpoint_every_s) is flagged
STALE_CHECKPOINTS = 3
STATUS_ORDER = ("ok", "running", "starting", "interrupted", "failed")
DASH = "—"


class NoRunsFound(ValueError):
    """Bad input for the status reader: a path that does not exist, or no run below the given paths."""


@dataclass
class RunStatus:
    """One run as its records show it now. Ages are in seconds before the time of reading; ``None`` = unknown."""

    run_dir: str  # the path as reachable from here (root as given + relative path)
    run: str  # relative to its root ("." for the root itself)
    env: str | None = None
    env_id: str | None = None
    algo: str | None = None
    seed: int | None = None
    status: str = "starting"
    train_frames: int | None = None
    budget_frames: int | None = None
    progress: float | None = None  # train_frames / budget_frames
    score: float | None = None  # last test score
    score_source: str | None = None  # "run.json" or "curve.csv"
    train_fps: float | None = None
    eta_s: float | None = None  # running runs only: (budget - frames) / train_fps
    checkpoint_age_s: float | None = None
    updated_age_s: float | None = None  # age of run.json
    stale: bool = False
    stale_after_s: float = STALE_MIN_S
    error: str | None = None  # the line of the error that names the exception
    last_write: float | None = None  # newest mtime (epoch s) among the run's records and .hydra/ files
    notes: list[str] = field(default_factory=list)

    @property
    def sort_key(self) -> tuple:
        return (self.env or "", self.algo or "", self.seed if self.seed is not None else -1, self.run)


@dataclass
class SweepStatus:
    runs: list[RunStatus]
    skipped: list[tuple[str, str]]  # (run dir, reason)
    read_at: float

    @property
    def failed(self) -> list[RunStatus]:
        return [run for run in self.runs if run.status == "failed"]

    def counts(self) -> dict[str, int]:
        counts = Counter(run.status for run in self.runs)
        ordered = {s: counts.pop(s) for s in STATUS_ORDER if s in counts}
        return {**ordered, **dict(sorted(counts.items()))}

    def to_json(self) -> dict[str, Any]:
        frames, budget = _totals(self.runs)
        return {
            "runs": [asdict(run) for run in self.runs],
            "skipped": [{"run_dir": d, "reason": r} for d, r in self.skipped],
            "summary": {
                "runs": len(self.runs),
                "counts": self.counts(),
                "stale": sum(run.stale for run in self.runs),
                "skipped": len(self.skipped),
                "train_frames": frames,
                "budget_frames": budget,
                "failed": len(self.failed),
            },
            "read_at": self.read_at,
        }


# --- finding and reading runs -------------------------------------------------------------------------------


def find_candidate_dirs(root: Path) -> list[tuple[Path, bool]]:
    """(directory, has run.json) for every run directory below ``root`` (or ``root`` itself): directories with
    ``run.json``, and directories with ``.hydra/`` or ``checkpoint.pkl`` but no ``run.json`` yet. Hidden
    directories (``.hydra``, ``.submitit``) are not descended into; unreadable directories are passed over."""
    found: list[tuple[Path, bool]] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda _error: None):
        names = set(filenames)
        if RUN_FILE in names:
            found.append((Path(dirpath), True))
        elif CHECKPOINT_FILE in names or HYDRA_DIR in dirnames:
            found.append((Path(dirpath), False))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return found


def read_status(roots: str | Path | Iterable[str | Path], now: float | None = None) -> SweepStatus:
    """Read every run below ``roots``; raises :class:`NoRunsFound` for a missing path or when there is no run
    directory at all. Unreadable ``run.json`` files are listed in ``skipped``, never raised."""
    roots = [roots] if isinstance(roots, str | Path) else list(roots)
    if not roots:
        raise NoRunsFound("no results directory given")
    now = time.time() if now is None else now
    runs: list[RunStatus] = []
    skipped: list[tuple[str, str]] = []
    seen: set[Path] = set()
    for root in map(Path, roots):
        if not root.is_dir():
            what = "is a file, not a directory" if root.exists() else "does not exist"
            raise NoRunsFound(f"results directory {root} {what}")
        for run_dir, has_record in find_candidate_dirs(root):
            key = run_dir.resolve()
            if key in seen:
                continue
            seen.add(key)
            rel = run_dir.relative_to(root).as_posix() if run_dir != root else "."
            try:
                runs.append(_read_run(run_dir, rel, has_record, now))
            except _Skip as skip:
                skipped.append((str(run_dir), str(skip)))
            except Exception as error:  # records of a shape nobody wrote: note it, read the others
                skipped.append((str(run_dir), f"cannot read its records: {error!r}"))
    if not runs and not skipped:
        raise NoRunsFound(
            f"no runs below {', '.join(map(str, roots))} (no directory with {RUN_FILE}, {HYDRA_DIR}/ or "
            f"{CHECKPOINT_FILE})"
        )
    runs.sort(key=lambda run: run.sort_key)
    return SweepStatus(runs, skipped, now)


class _Skip(Exception):
    """This run directory cannot be read (message = reason)."""


def _read_run(run_dir: Path, rel: str, has_record: bool, now: float) -> RunStatus:
    run = RunStatus(run_dir=str(run_dir), run=rel)
    meta: dict[str, Any] = {}
    if has_record:
        meta = _read_meta(run_dir / RUN_FILE)
        run.status = str(meta.get("status") or "unknown")
    hydra_cfg: dict[str, Any] | None = None

    def from_hydra(*keys: str) -> Any:
        nonlocal hydra_cfg
        if hydra_cfg is None:
            hydra_cfg = _read_hydra_config(run_dir / HYDRA_DIR / "config.yaml")
        return _lookup(hydra_cfg, keys)

    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    run.env = _text(meta.get("env")) or _text(from_hydra("env", "name"))
    run.env_id = _text(meta.get("env_id")) or _text(_lookup(config, ("env", "id")))
    if run.env_id is None and not has_record:
        run.env_id = _text(from_hydra("env", "id"))
    run.algo = _text(meta.get("algo")) or _text(from_hydra("algo", "name"))
    run.seed = _integer(meta.get("seed"))
    if run.seed is None:
        run.seed = _integer(from_hydra("seed"))
    run.budget_frames = _integer(meta.get("budget_frames"))
    if run.budget_frames is None:
        run.budget_frames = _integer(_lookup(config, ("budget", "frames"))) or _integer(
            from_hydra("budget", "frames")
        )
    checkpoint_every = _number(config.get("checkpoint_every_s")) if config else None
    if checkpoint_every is None:
        checkpoint_every = _number(from_hydra("checkpoint_every_s"))
    run.stale_after_s = max(STALE_MIN_S, STALE_CHECKPOINTS * (checkpoint_every or 0.0))

    # Progress: run.json's totals (written at every eval point and checkpoint), else the last eval row.
    last_row = _last_curve_row(run_dir / CURVE_FILE, run.notes) if has_record else None
    run.train_frames = _integer(meta.get("train_frames"))
    wall = _number(meta.get("train_wall_s"))
    if run.train_frames is None and last_row:
        run.train_frames = _integer(_number(last_row.get("frames")))
        wall = _number(last_row.get("train_wall_s"))
    if run.train_frames is not None and run.budget_frames:
        run.progress = run.train_frames / run.budget_frames
    if run.train_frames and wall and wall > 0:
        run.train_fps = run.train_frames / wall
    run.score = _number(meta.get("final_score"))
    run.score_source = "run.json" if run.score is not None else None
    if run.score is None and last_row:
        run.score = _number(last_row.get("score_mean"))
        run.score_source = "curve.csv" if run.score is not None else None
    if run.status == "running" and run.budget_frames is not None and run.train_frames is not None:
        remaining = max(run.budget_frames - run.train_frames, 0)
        if remaining == 0:
            run.eta_s = 0.0
        elif run.train_fps:
            run.eta_s = remaining / run.train_fps

    # Ages, and signs of life.
    mtimes = {name: _mtime(run_dir / name) for name in (RUN_FILE, CHECKPOINT_FILE, CURVE_FILE, ERROR_FILE)}
    hydra_mtime = max(
        (t for t in (_mtime(run_dir / HYDRA_DIR / n) for n in ("config.yaml", "overrides.yaml")) if t),
        default=None,
    )
    if mtimes[CHECKPOINT_FILE] is not None:
        run.checkpoint_age_s = max(now - mtimes[CHECKPOINT_FILE], 0.0)
    if mtimes[RUN_FILE] is not None:
        run.updated_age_s = max(now - mtimes[RUN_FILE], 0.0)
    written = [t for t in (*mtimes.values(), hydra_mtime) if t is not None]
    run.last_write = max(written, default=None)
    if run.status in ("running", "starting"):
        # run.json and the checkpoint are written at every eval point and every checkpoint_every_s; either one
        # recent proves life.
        alive = [t for t in (mtimes[RUN_FILE], mtimes[CHECKPOINT_FILE]) if t is not None]
        if run.status == "starting" and hydra_mtime is not None:
            alive.append(hydra_mtime)
        run.stale = bool(alive) and now - max(alive) > run.stale_after_s

    if run.status == "failed" or meta.get("error"):
        text = meta.get("error") if isinstance(meta.get("error"), str) else None
        if not text:
            text = _read_text(run_dir / ERROR_FILE, run.notes)
        run.error = first_error_line(text) if text else None
        if run.status == "failed" and run.error is None:
            run.notes.append(f"no error recorded (run.json has no 'error', no readable {ERROR_FILE})")
    return run


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise _Skip(f"cannot read {RUN_FILE}: {error}") from error
    except ValueError as error:
        raise _Skip(f"{RUN_FILE} is not valid JSON ({error})") from error
    if not isinstance(meta, dict):
        raise _Skip(f"{RUN_FILE} holds a {type(meta).__name__}, not an object")
    return meta


def _last_curve_row(path: Path, notes: list[str]) -> dict[str, str] | None:
    if not path.exists():
        return None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        notes.append(f"cannot read {CURVE_FILE}: {error}")
        return None
    return rows[-1] if rows else None


def _read_text(path: Path, notes: list[str]) -> str | None:
    if not path.exists():
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        notes.append(f"cannot read {path.name}: {error}")
        return None


_INTERPOLATION = re.compile(r"^\$\{([A-Za-z0-9_.]+)\}$")


def _read_hydra_config(path: Path) -> dict[str, Any]:
    """``.hydra/config.yaml`` as a dict (``{}`` if missing, unreadable, or PyYAML is not installed). Plain
    ``${a.b}`` interpolations are resolved within the file when looked up (:func:`_lookup`)."""
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # ImportError, OSError, yaml.YAMLError: a best-effort fallback only
        return {}
    return data if isinstance(data, dict) else {}


def _lookup(tree: dict[str, Any] | None, keys: Sequence[str], depth: int = 0) -> Any:
    node: Any = tree or {}
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if isinstance(node, str) and depth < 5 and (match := _INTERPOLATION.match(node.strip())):
        return _lookup(tree, match.group(1).split("."), depth + 1)
    return node


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _text(value: Any) -> str | None:
    return (
        str(value) if isinstance(value, str | int) and not isinstance(value, bool) and value != "" else None
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


# --- the error line -----------------------------------------------------------------------------------------

_FRAME = re.compile(r'^\s+File "')
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning|Failure|Fault)\b")


def first_error_line(text: str) -> str | None:
    """The line of an error record that names the exception.

    For a Python traceback that is the first unindented line after the last ``File "..."`` frame (the
    exception and the first line of its message: ``ValueError: ...``), which is not always the last line (a
    message over several lines, notes, chained exceptions). A record that is not a traceback gives its last
    line naming an exception, else its first non-empty line.
    """
    lines = [line.rstrip() for line in text.splitlines()]
    frames = [i for i, line in enumerate(lines) if _FRAME.match(line)]
    if frames:
        for line in lines[frames[-1] + 1 :]:
            if line.strip() and not line[0].isspace():
                return line.strip()
    named = [line.strip() for line in lines if _EXCEPTION.match(line.strip())]
    if named:
        return named[-1]
    return next((line.strip() for line in lines if line.strip()), None)


# --- formatting ---------------------------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """``42s``, ``12m05s``, ``3h04m``, ``2d03h``; ``—`` for unknown."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    s = round(max(seconds, 0.0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _frames(value: int | None) -> str:
    """Frames with four significant digits, truncated (``499980`` -> ``499.9k``): like the percentage, a
    count below the budget never prints as the budget."""
    if value is None:
        return DASH
    value = int(value)
    if abs(value) < 1000:
        return str(value)
    keep = 10 ** (len(str(abs(value))) - 4)
    value = value // keep * keep if value > 0 else -(-value // keep * keep)
    for factor, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:g}{suffix}"
    return str(value)  # unreachable


def _percent(fraction: float | None) -> str:
    if fraction is None:
        return DASH
    return f"{math.floor(fraction * 1000) / 10:.1f}"  # never rounds up to 100.0 before the budget is spent


COLUMNS = (  # header, alignment
    ("env", "<"),
    ("algo", "<"),
    ("seed", ">"),
    ("status", "<"),
    ("frames / budget", ">"),
    ("%", ">"),
    ("score", ">"),
    ("frames/s", ">"),
    ("ETA", ">"),
    ("checkpoint", ">"),
    ("updated", "<"),
    ("run", "<"),
)


def _row(run: RunStatus) -> list[str]:
    budget = _frames(run.budget_frames)
    frames = (
        DASH
        if run.train_frames is None and run.budget_frames is None
        else f"{_frames(run.train_frames)} / {budget}"
    )
    updated = format_duration(run.updated_age_s)
    if run.stale:
        updated = f"{updated} stale?" if run.updated_age_s is not None else "stale?"
    eta = format_duration(run.eta_s) if run.status == "running" else DASH
    if run.status == "running" and (run.eta_s is None or run.stale):  # no rate yet, or likely not running
        eta = "?"
    return [
        run.env or DASH,
        run.algo or DASH,
        DASH if run.seed is None else str(run.seed),
        run.status,
        frames,
        _percent(run.progress),
        DASH if run.score is None else format_score(run.score),
        DASH if run.train_fps is None else format_count(run.train_fps),
        eta,
        format_duration(run.checkpoint_age_s),
        updated,
        run.run,
    ]


def format_table(sweep: SweepStatus) -> str:
    """The runs as an aligned plain-text table (two spaces between columns)."""
    rows = [[header for header, _ in COLUMNS]] + [_row(run) for run in sweep.runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for row in rows:
        cells = [
            f"{cell:{align}{width}}" for cell, (_, align), width in zip(row, COLUMNS, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _totals(runs: Iterable[RunStatus]) -> tuple[int, int]:
    runs = list(runs)
    return sum(r.train_frames or 0 for r in runs), sum(r.budget_frames or 0 for r in runs)


def summary_line(sweep: SweepStatus) -> str:
    """``20 runs: 18 ok, 1 running (1 stale?), 1 failed; frames 9.5M / 10M (95.0%)``."""
    parts = []
    stale = Counter(run.status for run in sweep.runs if run.stale)
    for status, count in sweep.counts().items():
        parts.append(f"{count} {status}" + (f" ({stale[status]} stale?)" if stale[status] else ""))
    text = f"{len(sweep.runs)} run{'s' if len(sweep.runs) != 1 else ''}"
    if parts:
        text += ": " + ", ".join(parts)
    if sweep.skipped:
        text += f"; {len(sweep.skipped)} unreadable"
    frames, budget = _totals(sweep.runs)
    text += f"; frames {_frames(frames)} / {_frames(budget)}"
    if budget:
        text += f" ({_percent(frames / budget)}%)"
    return text


def format_report(sweep: SweepStatus) -> str:
    """Table, failed runs (``failed: <run dir>: <error line>``), notes, summary line."""
    out = [format_table(sweep), ""]
    for run in sweep.failed:
        out.append(f"failed: {run.run_dir}: {run.error or 'no error recorded'}")
    for run in sweep.runs:
        out.extend(f"note: {run.run_dir}: {note}" for note in run.notes)
    out.extend(f"note: skipped {run_dir}: {reason}" for run_dir, reason in sweep.skipped)
    if len(out) > 2:
        out.append("")
    out.append(summary_line(sweep))
    return "\n".join(out) + "\n"


# --- command line -------------------------------------------------------------------------------------------

DESCRIPTION = (
    "List every run of a sweep (directories with run.json, and jobs not started yet) with its status, frames "
    "against the budget, last test score, frames/s, ETA, and the age of its last checkpoint and run.json update "
    "('stale?': a running run silent for longer than max(10 min, 3 x checkpoint_every_s)). Exit status: 0 no "
    "run failed, 1 a run failed, 2 bad input."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dirs", nargs="+", type=Path, metavar="RESULTS_DIR")
    parser.add_argument("--json", action="store_true", help="print the rows and the summary as JSON")


def run_cli(args: argparse.Namespace) -> int:
    try:
        sweep = read_status(args.results_dirs)
    except NoRunsFound as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not sweep.runs:
        for run_dir, reason in sweep.skipped:
            print(f"note: skipped {run_dir}: {reason}", file=sys.stderr)
        print(f"error: no readable runs below {', '.join(map(str, args.results_dirs))}", file=sys.stderr)
        return 2
    text = (
        json.dumps(sweep.to_json(), indent=2, allow_nan=False) + "\n" if args.json else format_report(sweep)
    )
    _write(text)
    return 1 if sweep.failed else 0


def _write(text: str) -> None:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        DASH.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        text = text.replace(DASH, "-")
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `status ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m neuroevo_bench.analyze status", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build_parser().parse_args(argv))
