"""Analysis of benchmark results: load a results tree, compute statistics, write tables and figures.

Reads records only (run.json, curve.csv) and imports nothing from the training stack, so results can be
analysed on a machine without torch, gymnasium or SB3. Submodules: :mod:`.stats` (pure array statistics),
:mod:`.load` (results tree -> tidy DataFrame), :mod:`.tables` (result tables), :mod:`.plots` (figures),
:mod:`.report` (writes everything), :mod:`.callback` (Hydra multirun hook). Names below are imported lazily so
that importing the Hydra callback does not load matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["NoRunsError", "Report", "analyze", "load_runs", "runs_table", "write_report"]

_HOME = {
    "NoRunsError": "load",
    "load_runs": "load",
    "runs_table": "load",
    "Report": "report",
    "analyze": "report",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
