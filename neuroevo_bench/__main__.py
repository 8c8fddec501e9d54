"""`python -m neuroevo_bench algo=ga env=CartPole` (add `-m` and comma lists for a sweep)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from neuroevo_bench.config import ConfigError, register_configs
from neuroevo_bench.envs import EnvError
from neuroevo_bench.policies import PolicyError

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")

register_configs()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    from neuroevo_bench.runner import run

    try:
        info = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except (ConfigError, EnvError, PolicyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if HydraConfig.get().mode.name == "RUN":
            sys.exit(2)
        raise
    return info.get("final_score")


if __name__ == "__main__":
    main()
