"""Stable-Baselines3 A2C, PPO and DQN, trained on the harness's own envs and charged like every other algorithm.

The only module that imports `stable_baselines3`. Reading order:

1. :class:`SB3VecEnv` — SB3's `VecEnv` interface over the harness's :class:`~neuroevo_bench.envs.CountedVecEnv`
   (same factory, same env instances the GA plays, frames charged to the run's ledger). SB3 needs the reset
   observation in the step that ends an episode, so the factory builds the env with same-step auto-reset.
2. :class:`BudgetCallback` — SB3's `total_timesteps` is only a lower bound (whole rollouts; SB3 issue #366), so a
   callback stops the rollout before a vector step could take the ledger past the budget cap.
3. :class:`SB3Baseline` (:class:`A2CBaseline`, :class:`PPOBaseline`, :class:`DQNBaseline`) — the runner's
   Algorithm protocol, built from the hyperparameters :mod:`neuroevo_bench.zoo` resolves (config > the
   rl-baselines3-zoo's tuned values for the env > SB3's defaults).
4. :func:`load_policy` — the saved final model as a greedy act function; :func:`benchmark` — harness overhead.

Schedules (`learning_rate`, `clip_range`) and DQN's exploration decay over the run's budget in agent steps
(budget.frames / frame_skip), which is what the zoo's `lin_<x>` and `exploration_fraction` mean for its
`n_timesteps`, no matter how many `learn()` calls the eval schedule splits training into. A "rollout" is what
one `learn()` iteration collects before it updates: `n_steps` vector steps (A2C/PPO) or `train_freq` (DQN).
"""

from __future__ import annotations

import importlib.util
import io
import math
import pickle
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from neuroevo_bench.algorithms import ActFn, RunContext
from neuroevo_bench.config import TRAIN_SEED_LIMIT, ConfigError, validate_sb3
from neuroevo_bench.envs import CountedVecEnv, make_vector_env
from neuroevo_bench.policies import MINATAR_CONVS, MINATAR_HIDDEN
from neuroevo_bench.records import RUN_JSON, read_json
from neuroevo_bench.zoo import POLICY_KWARGS_CLASSES, SB3_DEFAULTS, SCHEDULE_KEYS, Resolved

MODEL_ZIP = "model.zip"
VECNORMALIZE_PKL = "vecnormalize.pkl"  # VecNormalize's statistics, beside model.zip when algo.normalize is on
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


# --- 1. the env: SB3's VecEnv over the harness's counted vector env ----------------------------------------------
class SB3VecEnv(VecEnv):
    """SB3's `VecEnv` API over a same-step auto-resetting :class:`CountedVecEnv`.

    Every step goes through `CountedVecEnv.step`, so frames are charged where they are for the GA. An episode
    end yields SB3's per-env info: `terminal_observation` (gymnasium's `final_obs`: an object array masked by
    `_final_obs` for `SyncVectorEnv`, a dense array for ale_py's `AtariVectorEnv`; either way indexed by the
    done mask), `TimeLimit.truncated` (so SB3 bootstraps on time limits) and `episode` with the *unclipped*
    return and length (SB3's `ep_info_buffer`, the progress line). With `clip_reward` the reward handed to SB3
    is its sign (the zoo's AtariWrapper), a training signal only: scores come from the shared test evaluator.
    """

    def __init__(self, counted: CountedVecEnv, clip_reward: bool = False) -> None:
        if counted.next_step_autoreset:
            raise ValueError(  # a programming error, not bad input
                "SB3 needs a same-step auto-resetting vector env; build it with "
                "make_vector_env(..., same_step_autoreset=True)"
            )
        self.counted = counted
        self.clip_reward = bool(clip_reward)
        env = counted.env
        super().__init__(counted.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._ep_return = np.zeros(self.num_envs)
        self._steps = 0  # vector steps since reset; an episode's length = _steps - its start
        self._ep_start = np.zeros(self.num_envs, dtype=np.int64)
        self._t0 = time.perf_counter()
        self.episodes = 0

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]  # SB3's seed(s) sets [s, s+1, ...]; gymnasium/ale_py seed sub-env i with s+i
        obs = self.counted.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        self._ep_return[:] = 0.0
        self._steps = 0
        self._ep_start[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Per step only a few array ops: this runs once per vector step (see `benchmark`)."""
        assert self._actions is not None, "step_async must come before step_wait"
        obs, reward, terminated, truncated, info, _ = self.counted.step(self._actions)
        self._actions = None
        self._ep_return += reward
        self._steps += 1
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if "final_obs" in info:  # present only in a step where some sub-env's episode ended
            final_obs = info["final_obs"]
            elapsed = round(time.perf_counter() - self._t0, 6)
            for i in np.flatnonzero(dones):
                infos[i] = {
                    "terminal_observation": final_obs[i],
                    "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                    "episode": {
                        "r": float(self._ep_return[i]),
                        "l": int(self._steps - self._ep_start[i]),
                        "t": elapsed,
                    },
                }
            self.episodes += int(dones.sum())
            self._ep_return[dones] = 0.0
            self._ep_start[dones] = self._steps
        signal = np.sign(reward) if self.clip_reward else reward
        return obs, signal.astype(np.float32), dones, infos

    def close(self) -> None:
        self.counted.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The vector env's attribute for every selected sub-env (SB3 asks for `render_mode` only)."""
        return [getattr(self.counted.env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise NotImplementedError("SB3VecEnv does not set sub-env attributes (A2C/PPO/DQN never need it)")

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        raise NotImplementedError("SB3VecEnv does not call sub-env methods (A2C/PPO/DQN never need it)")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)


# --- 2. the budget: schedules over the run's budget, a callback that enforces the cap ---------------------------
class _BudgetProgress:
    """Progress for schedules = agent steps used / the run's budget in agent steps (not this `learn()` call's).

    SB3 computes `1 - num_timesteps / total_timesteps` with the total of the current `learn()` call; the runner
    splits training into one call per eval interval, so that would restart the decay at every eval point.
    """

    budget_steps: int = 0

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        self._current_progress_remaining = max(0.0, 1.0 - num_timesteps / self.budget_steps)


class BudgetA2C(_BudgetProgress, A2C):
    """SB3 A2C whose schedules decay over the run's frame budget."""


class BudgetPPO(_BudgetProgress, PPO):
    """SB3 PPO whose schedules decay over the run's frame budget."""


class BudgetDQN(_BudgetProgress, DQN):
    """SB3 DQN whose learning rate and exploration decay over the run's frame budget."""


def make_schedule(value: Any) -> Any:
    """A config schedule as SB3 takes it: a number, or `{schedule: linear, initial, final=0}` -> LinearSchedule.

    SB3's `LinearSchedule(start, end, 1.0)` at progress remaining p is `end + p * (start - end)`: with end 0 this
    is the zoo's `lin_<start>` (`p * start`).
    """
    if value is None or isinstance(value, (int, float)):
        return value
    d = OmegaConf.to_container(value) if isinstance(value, DictConfig) else dict(value)
    return LinearSchedule(start=float(d["initial"]), end=float(d.get("final", 0.0)), end_fraction=1.0)


class BudgetCallback(BaseCallback):
    """Stops SB3 before the budget cap is crossed, or when the runner asks to stop; reports progress.

    SB3 calls `on_step` *after* a vector step and, when it returns False, drops that transition (A2C/PPO: from
    the rollout; DQN: from the replay buffer) and leaves the rollout unfinished. So the callback stops only mid-rollout, when the next step would not fit under the cap
    (the last step of a rollout always completes it: `train_until` never lets `learn()` start a rollout whose
    first step would not fit). Stopping re-syncs SB3's last observation with the env, so a later `learn()` call
    continues from where the env really is instead of training on a transition that never happened.
    """

    def __init__(self, algo: SB3Baseline) -> None:
        super().__init__()
        self.algo = algo
        self.ctx = algo.ctx
        self.step_frames = algo.n_envs * algo.frame_skip
        self.rollout_step = 0
        self.rollout_frames0 = 0
        self.t_progress = time.perf_counter()
        self.frames_progress = self.ctx.ledger.frames

    def _on_rollout_start(self) -> None:
        self.rollout_step = 0
        self.rollout_frames0 = self.ctx.ledger.frames
        # the model has learnt from every finished rollout: a consistent point for a time-based checkpoint
        self.ctx.checkpoint_if_due()

    def _on_step(self) -> bool:
        self.rollout_step += 1
        ledger = self.ctx.ledger
        out_of_budget = ledger.cap is not None and ledger.frames + self.step_frames > ledger.cap
        if self.rollout_step < self.algo.rollout_steps and out_of_budget:
            self.algo.exhausted = True
            self.algo.unused_frames = ledger.frames - self.rollout_frames0
            return self._stop()
        if self.ctx.stop.is_set():
            return self._stop()
        return True

    def _stop(self) -> bool:
        self.model._last_obs = self.locals["new_obs"]
        self.model._last_episode_starts = self.locals["dones"]
        if self.algo.vecnorm is not None:  # DQN's replay buffer stores unnormalised observations
            self.model._last_original_obs = self.algo.vecnorm.get_original_obs()
        return False

    def _on_rollout_end(self) -> None:
        self.algo.rollouts += 1
        self.ctx.log(self.ctx.ledger.frames, {"rollout/train_return_mean": self.algo.train_return()})
        now = time.perf_counter()
        if now - self.t_progress < 1.0:
            return
        frames = self.ctx.ledger.frames
        self.ctx.progress(
            frames=frames,
            rollouts=self.algo.rollouts,
            fps=(frames - self.frames_progress) / (now - self.t_progress),
            train_return=self.algo.train_return(),
        )
        self.t_progress, self.frames_progress = now, frames


# --- 3. the Algorithm ----------------------------------------------------------------------------------------------
class MinAtarCNNExtractor(BaseFeaturesExtractor):
    """MinAtar's reference network up to its 128 features (conv 16x3x3/1, no padding, fc 128, ReLU): the layers
    of the GA's `policies.MinAtarCNN` before its head, for (H, W, C) boolean grids (SB3's NatureCNN needs images
    of at least 36x36). SB3Baseline picks it for CnnPolicy on env=minatar, with linear heads (`net_arch: []`), so
    SB3's network is the GA's plus a value head (DQN: the GA's network as its Q-network).

    SB3 hands observations as floats (its preprocessing casts a non-image Box, such as MinAtar's booleans,
    to float), channels last as MinAtar gives them; they are transposed here.
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = MINATAR_HIDDEN) -> None:
        super().__init__(observation_space, features_dim)
        h, w, c = observation_space.shape
        layers: list[torch.nn.Module] = []
        for out, k, stride in MINATAR_CONVS:
            layers += [torch.nn.Conv2d(c, out, kernel_size=k, stride=stride), torch.nn.ReLU()]
            c, h, w = out, (h - k) // stride + 1, (w - k) // stride + 1
        self.cnn = torch.nn.Sequential(*layers, torch.nn.Flatten())
        self.linear = torch.nn.Sequential(torch.nn.Linear(c * h * w, features_dim), torch.nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations.float().permute(0, 3, 1, 2)))


FEATURE_EXTRACTORS = {NatureCNN: "Nature CNN", MinAtarCNNExtractor: "MinAtar CNN (conv 16x3x3/1, fc 128)"}


def check_policy_input(policy: str, policy_kwargs: dict[str, Any], observation_space: gym.Space) -> None:
    """CnnPolicy's default features extractor, SB3's NatureCNN, takes only uint8 images of at least 36x36."""
    if policy != "CnnPolicy" or "features_extractor_class" in policy_kwargs:
        return
    if not is_image_space(observation_space, check_channels=False) or min(observation_space.shape[-2:]) < 36:
        raise ConfigError(
            f"algo.policy=CnnPolicy (SB3's NatureCNN) cannot take observations {observation_space}: it needs "
            "uint8 images of at least 36x36; valid: algo.policy_kwargs.features_extractor_class for these "
            "observations (on env=minatar the harness sets MinAtar's network), or MlpPolicy"
        )


def describe_policy(model: BaseAlgorithm, policy_name: str) -> str:
    """The network as the records state it, e.g. `SB3 MlpPolicy: pi 4-64-64-2, vf 4-64-64-1 (separate), tanh`."""
    p = model.policy
    space = model.action_space
    n_out = int(space.n) if isinstance(space, gym.spaces.Discrete) else int(np.prod(space.shape))
    obs = "x".join(map(str, model.observation_space.shape))
    if isinstance(model, DQN):
        q = p.q_net
        heads = f"q {'-'.join(map(str, [q.features_dim, *q.net_arch, n_out]))} (+ a target copy)"
        extractor = FEATURE_EXTRACTORS.get(type(q.features_extractor))
        if extractor is not None:
            return f"SB3 DQN {policy_name}: {extractor} {obs} -> {q.features_dim} (ReLU), {heads}"
        return f"SB3 DQN {policy_name}: {heads}, {q.activation_fn.__name__.lower()}"
    arch = p.net_arch if isinstance(p.net_arch, dict) else {"pi": list(p.net_arch), "vf": list(p.net_arch)}
    act = p.activation_fn.__name__.lower()
    pi = "-".join(map(str, [p.features_dim, *arch["pi"], n_out]))
    vf = "-".join(map(str, [p.features_dim, *arch["vf"], 1]))
    heads = f"pi {pi}, vf {vf} (separate)"
    extractor = FEATURE_EXTRACTORS.get(type(p.features_extractor))
    if extractor is None:
        return f"SB3 {policy_name}: {heads}, {act}"
    shared = "shared by pi and vf" if p.share_features_extractor else "one per head"
    return f"SB3 {policy_name}: {extractor} {obs} -> {p.features_dim} (ReLU, {shared}), {heads}"


def policy_kwargs_objects(kwargs: dict[str, Any]) -> dict[str, Any]:
    """policy_kwargs as SB3 takes them: dotted class names from the allow-list (zoo.POLICY_KWARGS_CLASSES) become
    classes, e.g. `torch.nn.ReLU`; nothing else is imported."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if isinstance(value, str) and value in POLICY_KWARGS_CLASSES:
            value = get_class(value)
        elif isinstance(value, str) and "." in value and key.endswith(("_fn", "_class")):
            raise ConfigError(
                f"algo.policy_kwargs.{key}={value!r} is invalid; valid: {', '.join(sorted(POLICY_KWARGS_CLASSES))}"
            )
        out[key] = value
    return out


class SB3Baseline:
    """A2C, PPO or DQN from SB3 behind the runner's Algorithm protocol.

    The algo config's keys (null = not set) are resolved by :func:`neuroevo_bench.config.validate_sb3` into the
    values SB3 gets: the harness's own (`policy`, `n_envs`, `clip_reward`, `normalize`, `policy_kwargs`) shape
    the env and policy; the rest go to the SB3 constructor, schedules converted by :func:`make_schedule`.
    """

    sb3_class: ClassVar[type[BaseAlgorithm]]

    def __init__(self, ctx: RunContext, name: str, zoo: bool = True, **given: Any) -> None:
        self.ctx = ctx
        self.name = name
        self.frame_skip = int(ctx.env_cfg.frame_skip)
        cap = ctx.ledger.cap
        if cap is None:
            raise ConfigError("SB3 baselines need a budget cap on the training ledger (budget.frames)")
        cfg = OmegaConf.create(
            {"algo": {"name": name, "zoo": zoo, **given}, "env": ctx.env_cfg, "budget": {"frames": cap}}
        )
        self.resolved: Resolved = validate_sb3(cfg)
        v = self.resolved.values
        self.n_envs = int(v["n_envs"])
        self.policy_name = str(v["policy"])
        kwargs = {k: make_schedule(v[k]) if k in SCHEDULE_KEYS else v[k] for k in SB3_DEFAULTS[name]}
        if name == "dqn":
            self.rollout_steps = int(v["train_freq"])
            if v["optimize_memory_usage"]:  # SB3 cannot keep time-limit truncations apart in that layout
                kwargs["replay_buffer_kwargs"] = {"handle_timeout_termination": False}
        else:
            self.rollout_steps = int(v["n_steps"])
        self.sb3_kwargs = kwargs
        self.policy_kwargs = policy_kwargs_objects(v["policy_kwargs"])
        if (
            ctx.env_cfg.kind == "minatar" and self.policy_name == "CnnPolicy"
        ):  # SB3's NatureCNN cannot take 10x10
            self.policy_kwargs = {
                "features_extractor_class": MinAtarCNNExtractor,
                "net_arch": [],
            } | self.policy_kwargs

        env = make_vector_env(
            ctx.env_cfg, self.n_envs, same_step_autoreset=True, num_threads=int(ctx.resources.env_threads)
        )
        self.venv = SB3VecEnv(CountedVecEnv(env, self.frame_skip, ctx.ledger), bool(v["clip_reward"]))
        self.vecnorm: VecNormalize | None = None
        if v["normalize"]:  # the zoo's normalize: VecNormalize with the algorithm's gamma
            self.vecnorm = VecNormalize(self.venv, gamma=float(v["gamma"]), **v["normalize"])
        try:
            check_policy_input(self.policy_name, self.policy_kwargs, self.venv.observation_space)
        except ConfigError:
            self.venv.close()
            raise
        self.model = self.sb3_class(
            self.policy_name,
            self.vecnorm or self.venv,
            policy_kwargs=self.policy_kwargs,
            seed=int(ctx.seed),
            device=str(ctx.resources.device),
            verbose=0,
            **kwargs,
        )
        self.model.budget_steps = cap // self.frame_skip
        self.network = describe_policy(self.model, self.policy_name)
        self.callback = BudgetCallback(self)
        self.rollouts = 0
        self.exhausted = False
        self.unused_frames = 0  # frames of a final rollout cut short by the cap (charged, never learnt from)

    # --- Algorithm protocol ------------------------------------------------------------------------------------
    def train_until(self, frames: int) -> bool:
        """Whole rollouts until the ledger reaches `frames`; the last one may be cut short by the budget cap.

        `learn()` starts another rollout while `num_timesteps` is below its total, and `num_timesteps` moves in
        lockstep with the ledger's agent steps (every same-step auto-reset step is charged), so the total is
        the smaller of the steps still wanted and the steps after which one more vector step still fits.
        """
        ledger = self.ctx.ledger
        assert ledger.cap is not None
        if self.exhausted or ledger.frames + self.n_envs * self.frame_skip > ledger.cap:
            self.exhausted = True
            return False
        if ledger.frames >= frames or self.ctx.stop.is_set():
            return True
        wanted = math.ceil((frames - ledger.frames) / self.frame_skip)
        fits = (ledger.cap - ledger.frames) // self.frame_skip - self.n_envs + 1
        self.model.learn(
            total_timesteps=min(wanted, fits),
            callback=self.callback,
            reset_num_timesteps=False,
            log_interval=None,  # the harness prints its own progress line
            progress_bar=False,
        )
        if ledger.frames + self.n_envs * self.frame_skip > ledger.cap:
            self.exhausted = True
        return not self.exhausted

    def policy(self) -> ActFn:
        return greedy(self.model, self.vecnorm)

    def train_return(self) -> float:
        """Mean unclipped return of the last (up to 100) finished training episodes; NaN before the first."""
        buf = self.model.ep_info_buffer
        return float(np.mean([e["r"] for e in buf])) if buf else float("nan")

    def curve_stats(self) -> dict[str, Any]:
        return {
            "rollouts": self.rollouts,
            "train_episodes": self.venv.episodes,
            "train_return_mean": self.train_return(),
            "unused_frames": self.unused_frames,
        }

    def record_extra(self) -> dict[str, Any]:
        """Fields for run.json: every hyperparameter with its source (config / zoo / default), the zoo's file,
        entry and version, and the values SB3 was given."""
        given = {
            "policy": self.policy_name,
            "n_envs": self.n_envs,
            "clip_reward": self.venv.clip_reward,
            "normalize": self.resolved.values["normalize"],
            **self.sb3_kwargs,
            "policy_kwargs": self.policy_kwargs,
        }
        return {
            "hyperparams_source": self.resolved.label,
            "hyperparams": _plain(self.resolved.record()),
            "sb3_class": stock_sb3_class(type(self)).__name__,
            "sb3_hyperparams": _plain(given),
        }

    def save_policy(self, run_dir: Path) -> None:
        self.model.save(Path(run_dir) / MODEL_ZIP)
        if self.vecnorm is not None:
            self.vecnorm.save(Path(run_dir) / VECNORMALIZE_PKL)

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer, counters; VecNormalize's statistics; DQN's replay buffer (Atari: GBs, see README)."""
        buf = io.BytesIO()
        self.model.save(buf)
        state = {
            "model_zip": buf.getvalue(),
            "num_timesteps": self.model.num_timesteps,
            "n_updates": self.model._n_updates,
            "ep_info": list(self.model.ep_info_buffer or []),
            "rollouts": self.rollouts,
            "episodes": self.venv.episodes,
            "exhausted": self.exhausted,
            "unused_frames": self.unused_frames,
        }
        if self.vecnorm is not None:
            state["vecnormalize"] = {"obs_rms": self.vecnorm.obs_rms, "ret_rms": self.vecnorm.ret_rms}
        if isinstance(self.model, DQN):
            # the buffer object itself, not its bytes: the checkpoint's pickle is then its only copy in memory
            state["replay_buffer"] = self.model.replay_buffer
            state["n_calls"] = self.model._n_calls
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Weights and optimizer state, counters and schedule progress; the envs restart with fresh seeds."""
        self.model.set_parameters(io.BytesIO(state["model_zip"]), exact_match=True, device=self.model.device)
        self.model.num_timesteps = int(state["num_timesteps"])
        self.model._n_updates = int(state["n_updates"])
        window = self.model._stats_window_size
        self.model.ep_info_buffer = deque(state["ep_info"], maxlen=window)  # learn() then keeps both buffers
        self.model.ep_success_buffer = deque(maxlen=window)
        self.rollouts, self.venv.episodes = int(state["rollouts"]), int(state["episodes"])
        self.exhausted, self.unused_frames = bool(state["exhausted"]), int(state["unused_frames"])
        if self.vecnorm is not None:
            self.vecnorm.obs_rms = state["vecnormalize"]["obs_rms"]
            self.vecnorm.ret_rms = state["vecnormalize"]["ret_rms"]
        if isinstance(self.model, DQN):
            self.model.replay_buffer = state["replay_buffer"]
            self.model._n_calls = int(state["n_calls"])
        # not the episodes the run started with, and still below the test seeds
        self.venv.seed((int(self.ctx.seed) + self.model.num_timesteps) % TRAIN_SEED_LIMIT)

    def close(self) -> None:
        self.venv.close()


def stock_sb3_class(cls: type[SB3Baseline]) -> type[BaseAlgorithm]:
    """The unmodified SB3 class behind a baseline (A2C, PPO or DQN)."""
    return next(c for c in cls.sb3_class.__mro__ if c.__module__.startswith("stable_baselines3"))


def _plain(v: Any) -> Any:
    """JSON-friendly values: schedules and classes by their repr (classes by their dotted name)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, type):
        return f"{v.__module__}.{v.__qualname__}"
    return v if v is None or isinstance(v, (int, float, str, bool)) else repr(v)


class A2CBaseline(SB3Baseline):
    sb3_class = BudgetA2C


class PPOBaseline(SB3Baseline):
    sb3_class = BudgetPPO


class DQNBaseline(SB3Baseline):
    sb3_class = BudgetDQN


def greedy(model: BaseAlgorithm, vecnorm: VecNormalize | None = None) -> ActFn:
    """The model's deterministic action for a batch of observations (the shared test evaluator's act fn): A2C/PPO
    the most likely action (the mean for continuous actions), DQN the argmax Q-value (no epsilon). With
    VecNormalize, observations are normalised with the training statistics as they are now (not updated)."""
    policy = model.policy
    normalize = vecnorm.normalize_obs if vecnorm is not None and vecnorm.norm_obs else None

    def act(obs: np.ndarray) -> np.ndarray:
        return policy.predict(normalize(obs) if normalize else obs, deterministic=True)[0]

    return act


# --- 4. reload and benchmark ---------------------------------------------------------------------------------------
def load_policy(run_dir: Path) -> ActFn:
    """The saved final model of a run as a greedy act fn, its class taken from the run's config, with the run's
    VecNormalize statistics when it normalised observations.

    It runs on the device it was trained on when that device exists here (so a replay repeats the run's own
    arithmetic and hence its final score), else on the CPU.
    """
    run_dir = Path(run_dir)
    cfg = read_json(run_dir / RUN_JSON)["config"]
    cls: type[SB3Baseline] = get_class(cfg["algo"]["_target_"])
    device = str(cfg.get("resources", {}).get("device", "cpu"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        device = "cpu"
    vecnorm = None
    if (run_dir / VECNORMALIZE_PKL).exists():
        with open(run_dir / VECNORMALIZE_PKL, "rb") as f:
            vecnorm = pickle.load(f)  # VecNormalize.save pickles the wrapper without its env: stats only
    return greedy(cls.sb3_class.load(run_dir / MODEL_ZIP, device=device), vecnorm)


def benchmark(
    quick: bool = False,
    frames: int | None = None,
    chunks: int | None = None,
    algo: str = "a2c",
    env: str = "CartPole",
    seed: int = 0,
) -> dict[str, Any]:
    """Harness overhead: training frames/s of SB3 through the harness vs bare SB3 `learn()`, interleaved.

    Both train the same algorithm with the same resolved hyperparameters (the zoo set for `env`) on the same
    env id, seed and torch threads, for `frames` frames each (default: A2C 200k, DQN 51,200 = 200 of the zoo's
    CartPole `train_freq` blocks, about its 50k budget; `quick`: a tenth or a fifth). Harness: the baseline the
    runner builds, trained by `train_until` on the harness's env path with its budget callback (the span the
    runner's `train_wall_s` covers, so test evaluation is excluded). Bare: SB3's `make_vec_env` (DummyVecEnv +
    Monitor) on a gym env, or on an Atari env the zoo's `make_atari_env` + `VecFrameStack`
    (:func:`usual_atari_env`; default 96k frames, with different env implementations on the two sides, so
    their trained weights are not compared), and `learn()`, with the same class (the harness's only change to SB3 is the progress its schedules
    read, one subtraction per step: over the budget instead of over each `learn()` call, without which DQN's
    exploration would restart at every slice). On a shared machine the load swings frames/s by 2x within
    seconds, so the two are interleaved in `chunks` slices (alternating which goes first) and timed slice by
    slice; the ratio is total harness frames/s over total bare frames/s, in CPU time (`time.process_time`:
    the process's own work; torch runs one thread) as the headline and in wall-clock beside it. Slicing
    restarts `learn()` more often than a real run's eval schedule does, which only adds harness overhead.
    Returns `python -m neuroevo_bench.bench`'s row (name, project_fps, reference_fps, ratio, goal, detail).
    """
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from stable_baselines3.common.env_util import make_vec_env

    from neuroevo_bench.config import register_configs
    from neuroevo_bench.envs import Ledger

    register_configs()
    overrides = [f"algo={algo}", f"env={env}", f"seed={seed}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        kind = compose("config", overrides=overrides).env.kind
    if kind not in ("gym", "atari"):
        raise ConfigError(f"env={env}: the bare-SB3 reference builds SB3's own env: gym and Atari envs only")
    default_frames = {"dqn": (10_240, 51_200)}.get(algo, (20_000, 200_000))
    if kind == "atari":  # ~1.5k frames/s with the Nature CNN: 96k frames = 300 A2C rollouts of 16 x 5 steps
        default_frames, chunks = (12_800, 96_000), chunks or (4 if quick else 20)
    frames = frames or default_frames[0 if quick else 1]
    chunks = chunks or (10 if quick else 50)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"budget.frames={frames}"])
    torch.set_num_threads(int(cfg.resources.threads))
    skip = int(cfg.env.frame_skip)

    ledger = Ledger(cap=frames)
    ctx = RunContext(env_cfg=cfg.env, ledger=ledger, seed=seed, resources=cfg.resources)
    harness: SB3Baseline = instantiate(cfg.algo, _partial_=True)(ctx=ctx)
    if cfg.env.kind == "atari":
        venv = usual_atari_env(cfg.env, harness.n_envs, seed)
    else:
        venv = make_vec_env(cfg.env.id, n_envs=harness.n_envs, seed=seed)
    if harness.vecnorm is not None:
        venv = VecNormalize(venv, gamma=harness.vecnorm.gamma, **harness.resolved.values["normalize"])
    bare = harness.sb3_class(
        harness.policy_name,
        venv,
        policy_kwargs=harness.policy_kwargs,
        seed=seed,
        device=str(cfg.resources.device),
        **harness.sb3_kwargs,
    )
    bare.budget_steps = harness.model.budget_steps

    totals = {side: {"frames": 0, "cpu": 0.0, "wall": 0.0} for side in ("harness", "bare")}
    # SB3 samples actions from torch's global generator and shuffles rollouts / samples replay batches with
    # numpy's: each side keeps its own streams, so that (same seed, same initial weights, same env seeds) both
    # learn exactly the same and only the harness's cost differs.
    rng = {side: (torch.get_rng_state(), np.random.get_state()) for side in totals}

    def frames_done(side: str) -> int:
        return ledger.frames if side == "harness" else bare.num_timesteps * skip

    def run_slice(side: str, target: int) -> None:
        torch.set_rng_state(rng[side][0])
        np.random.set_state(rng[side][1])
        n0, w0, c0 = frames_done(side), time.perf_counter(), time.process_time()
        if side == "harness":
            harness.train_until(target)
        else:
            steps = max(1, target // skip - bare.num_timesteps)
            bare.learn(total_timesteps=steps, reset_num_timesteps=False)
        c1, w1 = time.process_time(), time.perf_counter()
        rng[side] = (torch.get_rng_state(), np.random.get_state())
        t = totals[side]
        t["frames"] += frames_done(side) - n0
        t["cpu"] += c1 - c0
        t["wall"] += w1 - w0

    try:
        for i in range(chunks):
            target = frames * (i + 1) // chunks
            for side in ("harness", "bare") if i % 2 == 0 else ("bare", "harness"):
                run_slice(side, target)
        same = all(
            torch.equal(p, q)
            for p, q in zip(harness.model.policy.parameters(), bare.policy.parameters(), strict=True)
        )
    finally:
        harness.close()
        venv.close()

    fps = {k: {side: t["frames"] / t[k] for side, t in totals.items()} for k in ("cpu", "wall")}
    ratio = {k: v["harness"] / v["bare"] for k, v in fps.items()}
    if cfg.env.kind == "atari":
        return {
            "name": f"sb3_atari_{algo}",
            "project_fps": fps["cpu"]["harness"],
            "reference_fps": fps["cpu"]["bare"],
            "ratio": ratio["cpu"],
            "goal": 1.0,
            "detail": (
                f"{algo} {cfg.env.id} ({harness.resolved.label}: {harness.n_envs} envs, {harness.policy_name}), "
                f"{totals['harness']['frames']:,} vs {totals['bare']['frames']:,} frames in {chunks} interleaved "
                f"slices, {cfg.resources.threads} torch thread(s). Harness: ale_py's AtariVectorEnv (C++, "
                f"{cfg.resources.env_threads} env thread(s), the protocol's settings) through the SB3 adapter; "
                f"SB3 the zoo's way: make_atari_env({zoo_atari_id(cfg.env.id)!r}) (DummyVecEnv of AtariWrapper "
                "envs, stepped in this thread) + VecFrameStack(4). CPU-time frames/s (all threads of the process): "
                f"harness {fps['cpu']['harness']:,.0f} vs {fps['cpu']['bare']:,.0f}. Wall-clock: "
                f"{fps['wall']['harness']:,.0f} vs {fps['wall']['bare']:,.0f} (ratio {ratio['wall']:.3f})"
            ),
            "wall_ratio": ratio["wall"],
            "totals": totals,
        }
    return {
        "name": f"{'sb3' if algo == 'a2c' else algo}_overhead",
        "project_fps": fps["cpu"]["harness"],
        "reference_fps": fps["cpu"]["bare"],
        "ratio": ratio["cpu"],
        "goal": 0.95,
        "detail": (
            f"{algo} {cfg.env.id} ({harness.resolved.label}), {totals['harness']['frames']:,} vs "
            f"{totals['bare']['frames']:,} frames in {chunks} interleaved slices, {cfg.resources.threads} torch "
            f"thread(s). CPU-time frames/s: harness {fps['cpu']['harness']:,.0f} vs bare SB3 learn() "
            f"{fps['cpu']['bare']:,.0f}. Wall-clock: {fps['wall']['harness']:,.0f} vs {fps['wall']['bare']:,.0f}"
            f" (ratio {ratio['wall']:.3f}). Same trained weights on both sides: {'yes' if same else 'NO'}"
        ),
        "identical_training": same,
        "wall_ratio": ratio["wall"],
        "totals": totals,
    }


def zoo_atari_id(env_id: str) -> str:
    """The id rl-baselines3-zoo trains an ALE game on, e.g. `ALE/Pong-v5` -> `PongNoFrameskip-v4`."""
    from neuroevo_bench.envs import atari_game

    game = atari_game(env_id)
    for key, spec in gym.registry.items():
        if key.endswith("NoFrameskip-v4") and "-ram" not in key and spec.kwargs.get("game") == game:
            return key
    raise ConfigError(f"env.id={env_id!r}: ale_py registers no NoFrameskip-v4 id for ROM {game!r}")


def usual_atari_env(env_cfg: Any, n_envs: int, seed: int) -> VecEnv:
    """SB3 on Atari the usual way (rl-baselines3-zoo's path): `make_atari_env` on the `NoFrameskip-v4` id (a
    DummyVecEnv of `AtariWrapper` envs: frame skip 4 with max-pooling, 84x84 grayscale, reward clipping,
    no-op starts, end of episode on life loss) and `VecFrameStack` (4)."""
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    venv = make_atari_env(zoo_atari_id(env_cfg.id), n_envs=n_envs, seed=seed)
    return VecFrameStack(venv, n_stack=int(env_cfg.atari.frame_stack))


def benchmark_atari(quick: bool = False) -> dict[str, Any]:
    """`python -m neuroevo_bench.bench`'s sb3_atari_a2c: :func:`benchmark` for A2C on Pong with the zoo's Atari
    set, the harness's C++ vector env against SB3's `make_atari_env` + `VecFrameStack`."""
    if importlib.util.find_spec("cv2") is None:  # before any work: SB3's AtariWrapper resizes with OpenCV
        raise RuntimeError("sb3_atari needs OpenCV for SB3's Atari wrappers: pip install -e '.[bench]'")
    return benchmark(quick, algo="a2c", env="Pong")


def benchmark_dqn(quick: bool = False) -> dict[str, Any]:
    """`python -m neuroevo_bench.bench`'s dqn_overhead: :func:`benchmark` for DQN with the zoo's CartPole set."""
    return benchmark(quick, algo="dqn")
