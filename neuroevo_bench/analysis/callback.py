"""Hydra callback: a multirun ends by writing its comparison into ``<sweep dir>/analysis``.

Registered in conf/config.yaml as
``hydra.callbacks.analyze._target_: neuroevo_bench.analysis.callback.AnalyzeOnMultirunEnd``, so
``python -m neuroevo_bench -m algo=ga,ppo env=CartPole seed=0,1,2`` alone yields the table and figures.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

__all__ = ["AnalyzeOnMultirunEnd"]

logger = logging.getLogger(__name__)


class AnalyzeOnMultirunEnd(Callback):
    """Runs the report on the sweep directory after all jobs returned.

    It never raises: the runs are already recorded, and an analysis problem (no finished run, a plotting
    error) must not mark the sweep as failed; the exception is logged instead and the report can be rerun with
    the CLI. Keyword arguments (``seed``, ``n_resamples``, ``reference``, ``curve_interp``, ``formats``, ...)
    are passed to :func:`neuroevo_bench.analysis.report.write_report`, so they can be set from the Hydra
    config.
    """

    def __init__(self, out_subdir: str = "analysis", **options: Any) -> None:
        self.out_subdir = out_subdir
        self.options = options

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = None
        try:
            sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir", throw_on_missing=True)))
            from .report import analyze  # matplotlib and friends only when a sweep actually ends

            options = OmegaConf.to_container(OmegaConf.create(self.options)) if self.options else {}
            report = analyze([sweep_dir], sweep_dir / self.out_subdir, **options)
            print(report.markdown, end="", flush=True)
            logger.info("analysis written to %s", report.out_dir)
        except Exception:
            logger.exception("analysis of sweep %s failed (the sweep itself is unaffected)", sweep_dir)
