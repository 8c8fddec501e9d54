"""`python -m neuroevo_bench algo=ga env=CartPole` (add `-m` and comma lists for a sweep).

Bad input exits with status 2 and one line on stderr. A single run's config is checked before Hydra creates
the run directory (:class:`neuroevo_bench.config.CheckBeforeRun`); what only shows once the algorithm is built
(e.g. a network that cannot handle the env) is refused here, before any record is written.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from neuroevo_bench.config import ConfigError, exit_bad_input, register_configs

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

register_configs()


def record_failure(cfg: DictConfig, run_dir: Path, exc: BaseException) -> None:
    """A sweep job that failed before the runner could write its records still leaves a failed record."""
    from neuroevo_bench import records

    if (run_dir / records.RUN_JSON).exists():
        return  # the runner recorded it, or it is an existing run that must not be overwritten
    error = "".join(traceback.format_exception(exc))
    records.atomic_write_text(run_dir / "error.txt", error)
    records.write_json(
        run_dir / records.RUN_JSON,
        {
            "algo": OmegaConf.select(cfg, "algo.name"),
            "env": OmegaConf.select(cfg, "env.name"),
            "env_id": OmegaConf.select(cfg, "env.id"),
            "seed": OmegaConf.select(cfg, "seed"),
            "status": "failed",
            "error": error,
            "finished_at": records.now_iso(),
        },
    )


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    from neuroevo_bench.runner import run

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    single = hc.mode.name == "RUN"
    try:
        info = run(cfg, run_dir)
    except ConfigError as exc:  # bad input (EnvError and PolicyError are ConfigErrors too)
        if single:
            exit_bad_input(exc)
        print(f"error: {exc}", file=sys.stderr)
        record_failure(cfg, run_dir, exc)
        return None
    except Exception as exc:
        if single:
            raise
        # In a sweep, one failing job must not stop the others: record it and carry on.
        print(f"job failed ({run_dir}): {exc!r}; traceback in {run_dir / 'error.txt'}", file=sys.stderr)
        record_failure(cfg, run_dir, exc)
        return None
    if info.get("status") == "interrupted" and single:
        sys.exit(130)
    return info.get("final_score")


if __name__ == "__main__":
    main()
