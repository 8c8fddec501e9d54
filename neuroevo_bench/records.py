"""Run records: atomic file writes, the eval-curve table, run metadata (machine, versions, git commit).

Everything here is written atomically (temp file in the same directory, then `os.replace`), so a run killed
at any moment leaves either the previous complete file or the new complete file, never half of one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
import platform
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

RUN_JSON = "run.json"
CURVE_CSV = "curve.csv"
CHECKPOINT = "checkpoint.pkl"
CURVE_COLUMNS = [
    "frames",
    "agent_steps",
    "train_wall_s",
    "eval_wall_s",
    "eval_frames",
    "score_mean",
    "score_std",
    "score_min",
    "score_max",
    "episodes",
]
TRACKED_PACKAGES = [
    "torch",
    "numpy",
    "gymnasium",
    "ale-py",
    "stable-baselines3",
    "hydra-core",
    "ray",
    "neuroevo_bench",
]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file beside it, fsync, ``os.replace``), mode 0644, creating
    the parent directory. A file rendered by a library (a matplotlib figure) goes through a ``BytesIO``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON (NaN and infinities become null, so every JSON reader accepts the file)."""
    text = json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy / torch scalars
        return _finite(obj.item())
    return obj


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_curve(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """The eval curve as CSV: the standard columns first, then any algorithm-specific ones."""
    extra = sorted({k for r in rows for k in r} - set(CURVE_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS + extra, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def _fmt(v: Any) -> Any:
    return repr(float(v)) if isinstance(v, float) else v


def save_pickle(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def load_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch_threads: int) -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch_threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(repo: Path | None = None) -> str | None:
    """The commit of the project checkout, with `+dirty` when it has uncommitted changes."""
    repo = repo or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
