"""Hydra callback: a multirun ends by writing its comparison into ``<sweep dir>/analysis``, then fails the
process if any of its jobs failed.

Registered in conf/config.yaml as
``hydra.callbacks.analyze._target_: neuroevo_bench.analysis.callback.AnalyzeOnMultirunEnd``, so
``python -m neuroevo_bench -m algo=ga,ppo env=CartPole seed=0,1,2`` alone yields the table and figures.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

__all__ = ["AnalyzeOnMultirunEnd"]

logger = logging.getLogger(__name__)

# A job belongs to this sweep when Hydra (.hydra/) or the run (run.json, error.txt, ...) wrote to its directory
# after the sweep started. Both times come from the file system's clock; the slack absorbs timestamp rounding.
CLOCK_SLACK_S = 1.0


class AnalyzeOnMultirunEnd(Callback):
    """Runs the report on the sweep directory after all jobs returned, then exits with status 1 if a job failed.

    The report never raises: the runs are already recorded, and an analysis problem (no finished run, a plotting
    error) is logged instead (the report can be rerun with the CLI). Keyword arguments (``seed``,
    ``n_resamples``, ``reference``, ``curve_interp``, ``formats``, ...) are passed to
    :func:`neuroevo_bench.analysis.report.write_report`, so they can be set from the Hydra config.

    After the report, the run records of the sweep's jobs are read (:func:`.status.read_status`): a job whose
    ``run.json`` says ``failed`` (the app records a failing job so and carries on with the others) is printed
    as ``failed: <run dir>: <error line>`` on stderr, and the process exits with status 1 (``SystemExit``,
    which Hydra lets through; callbacks listed before this one in ``hydra.callbacks`` then get no
    ``on_multirun_end``, as Hydra calls them in reverse order). Only this sweep's jobs count: a run directory
    under the same sweep directory that no job of this sweep wrote to (an earlier sweep's failure) is
    mentioned, not counted. ``fail_on_failed_jobs=false`` keeps the exit status 0.
    """

    def __init__(
        self, out_subdir: str = "analysis", fail_on_failed_jobs: bool = True, **options: Any
    ) -> None:
        self.out_subdir = out_subdir
        self.fail_on_failed_jobs = fail_on_failed_jobs
        self.options = options
        self.started_at: float | None = None  # file-system time when the sweep started

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self.started_at = _file_system_now(_sweep_dir(config))
        except Exception:
            logger.debug("cannot read the file system's clock; using this machine's", exc_info=True)
            self.started_at = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = None
        try:
            sweep_dir = _sweep_dir(config)
            from .load import NoRunsError
            from .report import analyze  # matplotlib and friends only when a sweep actually ends

            options = OmegaConf.to_container(OmegaConf.create(self.options)) if self.options else {}
            try:
                report = analyze([sweep_dir], sweep_dir / self.out_subdir, **options)
            except NoRunsError as error:  # e.g. every run interrupted: nothing finished to compare yet
                logger.warning("no analysis of sweep %s yet: %s", sweep_dir, error)
            else:
                print(report.markdown, end="", flush=True)
                logger.info("analysis written to %s", report.out_dir)
        except Exception:
            logger.exception("analysis of sweep %s failed (the sweep itself is unaffected)", sweep_dir)
        if self.fail_on_failed_jobs and sweep_dir is not None:
            self._exit_if_jobs_failed(sweep_dir)

    def _exit_if_jobs_failed(self, sweep_dir: Path) -> None:
        from .status import NoRunsFound, read_status

        try:
            sweep = read_status(sweep_dir)
        except NoRunsFound:
            return  # no job wrote anything (e.g. every job refused before Hydra made its directory)
        except Exception:
            logger.exception("cannot read the run records of sweep %s to check for failed jobs", sweep_dir)
            return
        if self.started_at is None:
            ours = sweep.runs
        else:
            since = self.started_at - CLOCK_SLACK_S
            ours = [run for run in sweep.runs if run.last_write is not None and run.last_write >= since]
        failed = [run for run in ours if run.status == "failed"]
        ours_dirs = {run.run_dir for run in ours}
        earlier = [run for run in sweep.failed if run.run_dir not in ours_dirs]
        sys.stdout.flush()
        if earlier:
            print(
                f"note: {len(earlier)} failed run(s) under {sweep_dir} are from an earlier sweep, not this one "
                f"(python -m neuroevo_bench.analyze status {sweep_dir})",
                file=sys.stderr,
            )
        if not failed:
            return
        for run in failed:
            print(f"failed: {run.run_dir}: {run.error or 'no error recorded'}", file=sys.stderr)
        print(f"{len(failed)} of {len(ours)} jobs failed; exit status 1", file=sys.stderr, flush=True)
        raise SystemExit(1)


def _sweep_dir(config: DictConfig) -> Path:
    return Path(str(OmegaConf.select(config, "hydra.sweep.dir", throw_on_missing=True)))


def _file_system_now(directory: Path) -> float:
    """The current time on the clock that stamps files in ``directory`` (on a network file system, the server's),
    read from a temporary file's mtime; creates ``directory`` as the launcher would."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=directory, prefix=".multirun_start.")
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        os.unlink(path)
