"""The one env factory and the one place where frames are counted.

Every algorithm (GA, random search, SB3) and the shared test evaluator builds its environments with
:func:`make_vector_env`, and every env step goes through :class:`CountedVecEnv`, which charges frames to a
:class:`Ledger`. Algorithms never count frames themselves.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from omegaconf import DictConfig, OmegaConf

from neuroevo_bench.config import ENV_ID_EXAMPLES, EVAL_SEED_MIN, TRAIN_SEED_LIMIT, ConfigError

SAME_STEP = AutoresetMode.SAME_STEP
NEXT_STEP = AutoresetMode.NEXT_STEP


class EnvError(ConfigError):
    """An env that the harness cannot build or that an algorithm cannot handle (bad input: exit status 2)."""


# --- checking an env config before anything is built -------------------------------------------------------


def check_env_config(env_cfg: Any) -> None:
    """Everything about `env.*` that can be known from gymnasium's registry, without building an env.

    The id is given, registered, and of the config's kind (an Atari game goes through `env=atari`, where the
    harness applies the protocol and counts every frame; `env=gym` would run ale_py's own env, whose built-in
    frame skip nothing counts); and `env.frame_skip` is the number of emulator frames one step really takes.
    """
    kind = str(env_cfg.kind)
    if isinstance(env_cfg, DictConfig) and OmegaConf.is_missing(env_cfg, "id"):
        what = {"atari": "an ALE/<Game>-v5 id", "minatar": "a MinAtar/<Game>-v1 id"}.get(
            kind, "the id of a registered gymnasium environment"
        )
        raise EnvError(f"env.id is missing: env={kind} needs {what}, e.g. env.id={ENV_ID_EXAMPLES[kind]}")
    env_id = str(env_cfg.id)
    ensure_registered(env_id, kind)
    if kind == "atari":
        atari_game(env_id)
        atari_episode_cap(env_cfg)
        return
    if kind == "minatar":
        check_minatar_config(env_cfg)
    elif _is_minatar(env_id):
        raise EnvError(
            f"env.id={env_id!r} is a MinAtar game: use env=minatar env.id={env_id}, which passes MinAtar's "
            "settings (env.minatar.*) explicitly, starts every episode from its seed alone and records them"
        )
    if _is_atari(env_id):
        raise EnvError(
            f"env.id={env_id!r} is an Atari game: use env=atari env.id={_ale_v5_id(env_id)}, which plays it under "
            "the protocol and counts its emulator frames (env=gym would run ale_py's own env with its own settings, "
            "e.g. v5's built-in frame skip of 4, counting one frame a step)"
        )
    frames = gym_frames_per_step(env_id)
    if env_cfg.frame_skip != frames:
        one_step = "one emulator frame" if frames == 1 else f"{frames} emulator frames"
        raise EnvError(
            f"env.frame_skip={env_cfg.frame_skip} is invalid for env.id={env_id!r}; valid: "
            f"env.frame_skip={frames}. One step of it is {one_step}, and the harness skips frames itself only for "
            "Atari (env=atari, env=Pong): any other value would only multiply every frame count"
        )


def gym_frames_per_step(env_id: str) -> int:
    """Emulator frames in one step of a (non-Atari) gymnasium env: 1 - one step is one frame - unless the env
    skips frames itself and says so in `metadata["frames_per_step"]` (the tests' toy env with a frame skip)."""
    spec = gym.spec(env_id)
    creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(spec.entry_point)
    return int((getattr(creator, "metadata", None) or {}).get("frames_per_step", 1))


def ensure_registered(env_id: str, kind: str = "gym") -> None:
    """Fail early if `env_id` is not a registered gymnasium id, naming the ids the user may have meant.

    Atari ids (`ALE/...`, or any id with `kind=atari`) are looked up among ale_py's games, so `Pong` or
    `ALE/Pongg-v5` suggest `ALE/Pong-v5`; other ids among the other registered envs.
    """
    if kind == "minatar" or env_id.startswith("MinAtar/"):
        ensure_minatar_registered(env_id)
        return
    atari = kind == "atari" or env_id.startswith("ALE/")
    if atari and not _register_ale():
        raise EnvError(f"env.id={env_id!r} needs the Atari extra: pip install -e '.[atari]' (ale_py)")
    if env_id in gym.registry or (not atari and _register_ale() and env_id in gym.registry):
        return
    if atari:
        games = sorted(_ale_v5_ids().values())
        close = _close_ids(env_id, games)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise EnvError(
            f"env.id={env_id!r} is not an Atari game in ale_py's registry{hint}; valid: ALE/<Game>-v5 for any "
            f"of its {len(games)} games, e.g. ALE/Pong-v5, ALE/Breakout-v5, ALE/MsPacman-v5"
        )
    close = _close_ids(env_id, [k for k in gym.registry if not _is_atari(k) and not _is_minatar(k)])
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise EnvError(
        f"env.id={env_id!r} is not a registered gymnasium environment{hint}; valid: any id in "
        "gymnasium.registry, e.g. CartPole-v1, Acrobot-v1, Pendulum-v1 (Atari games: env=atari env.id=ALE/...)"
    )


def _register_ale() -> bool:
    """Add ale_py's games to gymnasium's registry; False if the Atari extra is not installed."""
    try:
        import ale_py
    except ImportError:
        return False
    gym.register_envs(ale_py)
    return True


def _is_atari(env_id: str) -> bool:
    spec = gym.registry.get(env_id)
    return env_id.startswith("ALE/") or (spec is not None and str(spec.entry_point).startswith("ale_py"))


def _ale_v5_ids() -> dict[str, str]:
    """ROM name -> its `ALE/<Game>-v5` id, for every game in the registry (the ids env=atari is shown with)."""
    return {
        spec.kwargs["game"]: env_id
        for env_id, spec in gym.registry.items()
        if re.fullmatch(r"ALE/[^-]+-v5", env_id) and isinstance(spec.kwargs.get("game"), str)
    }


def _ale_v5_id(env_id: str) -> str:
    """The `ALE/<Game>-v5` id of a registered Atari id such as `PongNoFrameskip-v4` (itself if it is one)."""
    return _ale_v5_ids().get(gym.registry[env_id].kwargs.get("game"), env_id)


def _id_key(env_id: str) -> str:
    """An id reduced to what a person means by it: `ALE/Pong-v5`, `PongNoFrameskip-v4`, `pong` -> `pong`."""
    name = re.sub(r"-v\d+$", "", env_id.split("/")[-1].lower())
    return re.sub(r"noframeskip|deterministic|-ram", "", name)


def _close_ids(env_id: str, candidates: list[str], n: int = 5) -> list[str]:
    """Up to `n` of `candidates` whose names are the same as `env_id`'s or close to it (difflib)."""
    by_key: dict[str, list[str]] = {}
    for candidate in candidates:
        by_key.setdefault(_id_key(candidate), []).append(candidate)
    names = difflib.get_close_matches(_id_key(env_id), list(by_key), n=n, cutoff=0.75)
    return [candidate for name in names for candidate in sorted(by_key[name])][:n]


# --- MinAtar (Young & Tian 2019; the `minatar` extra) -----------------------------------------------------------
MINATAR_INSTALL = "pip install -e '.[minatar]'"
MINATAR_GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
MINATAR_KWARGS = ("sticky_action_prob", "difficulty_ramping")  # set by env.minatar.*, never by env.kwargs


def _register_minatar() -> bool:
    """Add MinAtar's games to gymnasium's registry (`minatar.gym.register_envs`; gymnasium 1.x loads no plugins
    by itself); False if the MinAtar extra is not installed."""
    if "MinAtar/Breakout-v1" in gym.registry:
        return True
    try:
        from minatar.gym import register_envs
    except ImportError:
        return False
    register_envs()
    return True


def _is_minatar(env_id: str) -> bool:
    spec = gym.registry.get(env_id)
    return env_id.startswith("MinAtar/") or (spec is not None and str(spec.entry_point).startswith("minatar"))


def ensure_minatar_registered(env_id: str) -> None:
    """Fail early if `env_id` is not one of MinAtar's games, naming close matches, or if MinAtar is missing."""
    if not _register_minatar():
        raise EnvError(
            f"env.id={env_id!r} (env=minatar) needs the MinAtar extra, which is not installed: {MINATAR_INSTALL}"
        )
    if env_id in gym.registry and _is_minatar(env_id):
        return
    close = _close_ids(env_id, [k for k in gym.registry if _is_minatar(k)])
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise EnvError(
        f"env.id={env_id!r} is not a MinAtar game{hint}; valid: MinAtar/<Game>-v1 (the game's minimal action "
        f"set; -v0: all 6 actions) for <Game> in {', '.join(MINATAR_GAMES)}"
    )


def check_minatar_config(env_cfg: Any) -> None:
    """env.minatar.* and the keys MinAtar cannot take: its settings have one source, and one step is one frame."""
    m = env_cfg.minatar
    p = m.sticky_action_prob
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise EnvError(
            f"env.minatar.sticky_action_prob={p!r} is invalid; valid: a probability in [0, 1] (MinAtar: 0.1)"
        )
    for key in MINATAR_KWARGS:
        if key in (env_cfg.kwargs or {}):
            raise EnvError(f"env.kwargs.{key} is invalid for env=minatar; valid: env.minatar.{key}")
    if env_cfg.frame_skip != 1:
        raise EnvError(
            f"env.frame_skip={env_cfg.frame_skip} is invalid for env.id={env_cfg.id!r}; valid: env.frame_skip=1 "
            "(one MinAtar step is one frame)"
        )
    if env_cfg.max_episode_frames is not None:
        raise EnvError(
            f"env.max_episode_frames={env_cfg.max_episode_frames} is invalid for env=minatar; valid: null (MinAtar's "
            "episode cap is env.kwargs.max_episode_steps, one step a frame; for GA/RS fitness episodes only: "
            "algo.fitness_max_frames)"
        )
    if env_cfg.vectorization not in ("auto", "sync", "async"):
        raise EnvError(
            f"env.vectorization={env_cfg.vectorization!r} is invalid for env=minatar; valid: auto, sync, async "
            "(MinAtar has no batched vector env)"
        )


class MinAtarEpisodeStart(gym.Wrapper):
    """Every MinAtar episode starts from its reset seed alone, whichever sub-env plays it and whatever it
    played before.

    MinAtar's own reset with seed s gives the game and its sticky actions one fresh `RandomState(s)`, but
    its `Environment` keeps the last action across resets, and a sticky action at the first step of the next
    episode repeats it. Here every reset sets it to 0 (no-op), as in a freshly built env: that is what makes
    population evaluations on MinAtar independent of the slot layout. The seed is set in place,
    `RandomState.seed(s)`, which gives exactly the state `RandomState(s)` has (tests/test_minatar.py checks
    it) at 1/50 of the cost: a population evaluation seeds every episode, and fresh networks on MinAtar
    often play episodes of only ~10 steps.
    """

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        game = self.env.unwrapped.game
        game.last_action = 0
        if seed is not None:
            game.random.seed(seed)
            game.env.random = game.random  # one generator for the game and its sticky actions, as MinAtar's
        return self.env.reset(options=options)


def minatar_kwargs(env_cfg: Any) -> dict[str, Any]:
    """The keywords of `minatar.Environment`, set explicitly from `env.minatar.*` (MinAtar's defaults)."""
    m = env_cfg.minatar
    return {
        "sticky_action_prob": float(m.sticky_action_prob),
        "difficulty_ramping": bool(m.difficulty_ramping),
    }


def minatar_settings(env_cfg: Any, env: gym.vector.VectorEnv) -> dict[str, Any]:
    """What a MinAtar env does, read back from the built env's `minatar.Environment`, for the records."""
    from importlib.metadata import version

    game = env.get_attr("game")[0]
    action_set = [int(a) for a in env.get_attr("action_set")[0]]
    space = env.single_observation_space
    return {
        "minatar": version("minatar"),
        "game": game.game_name(),
        "sticky_action_prob": float(game.sticky_action_prob),
        "difficulty_ramping": getattr(game.env, "ramping", "n/a: this game has no difficulty ramp"),
        "actions": [game.env.action_map[a] for a in action_set],
        "channels": sorted(game.env.channels, key=game.env.channels.get),
        "observation_shape": list(space.shape),
        "observation_dtype": str(space.dtype),
        "max_episode_steps": env.get_attr("spec")[0].max_episode_steps,  # None: by the game's own rules only
        "frames_per_step": 1,
        "episode_start": "every reset seeds the game and its sticky actions and sets the last action to 0 "
        "(no-op), as in a fresh env (envs.MinAtarEpisodeStart)",
    }


@dataclass
class Ledger:
    """Frames charged to one purpose (training or test evaluation), with an optional hard cap."""

    cap: int | None = None
    frames: int = 0
    agent_steps: int = 0

    def remaining(self) -> int | None:
        return None if self.cap is None else self.cap - self.frames

    def exhausted(self) -> bool:
        return self.cap is not None and self.frames >= self.cap


@dataclass
class EnvSpecInfo:
    """What the harness needs to know about an env, read back from a built env."""

    env_id: str
    frame_skip: int
    observation_space: gym.spaces.Space
    action_space: gym.spaces.Space
    settings: dict[str, Any] = field(default_factory=dict)


def atari_game(env_id: str) -> str:
    """The ALE ROM name of a registered Atari id, e.g. `ALE/MsPacman-v5` -> `ms_pacman`.

    Only the ROM is taken from gymnasium's registry entry: the entry's own settings (v5's sticky actions and
    frame skip) are never used, so the protocol is applied once, by :func:`atari_kwargs`.
    """
    ensure_registered(env_id, "atari")
    game = gym.registry[env_id].kwargs.get("game")
    if not _is_atari(env_id) or not isinstance(game, str):
        raise EnvError(
            f"env.id={env_id!r} is not an Atari game, but env.kind=atari (env=atari, env=Pong) needs one; valid: "
            f"ALE/<Game>-v5, e.g. ALE/Breakout-v5 (for {env_id}: env=gym env.id={env_id})"
        )
    return game


def atari_episode_cap(env_cfg: Any, max_episode_frames: int | None = None) -> int:
    """Episode cap in emulator frames: the env's (108,000), or a shorter one such as the GA's fitness cap.

    Rounded down to whole agent steps, because ALE stops an episode in the middle of a frame-skip block when
    its frame cap falls there; at a multiple of `frame_skip` the last step is a full one and the ledger's
    `frames = frame_skip x agent steps` is exact for every capped episode.
    """
    skip = int(env_cfg.frame_skip)
    caps = [int(c) for c in (env_cfg.max_episode_frames, max_episode_frames) if c is not None]
    if not caps:
        raise EnvError(
            "env.max_episode_frames=None is invalid for Atari; valid: a positive integer (the protocol's episode "
            "cap is 108000 frames)"
        )
    cap = min(caps)
    if cap < skip:
        raise EnvError(
            f"an Atari episode cap of {cap} frames (env.max_episode_frames, or algo.fitness_max_frames for "
            f"fitness episodes) is shorter than one agent step (env.frame_skip={skip}); valid: a cap >= {skip}"
        )
    return cap - cap % skip


def atari_kwargs(
    env_cfg: Any, max_episode_frames: int | None = None, same_step: bool = False
) -> dict[str, Any]:
    """Every keyword of `ale_py.vector_env.AtariVectorEnv`, set explicitly (its defaults differ from the protocol).

    The Machado et al. (2018) protocol lives in `env.atari.*` and `env.frame_skip`; this maps it one to one.
    Frame skip, max-pooling, resizing, grayscale, frame stacking, sticky actions and the episode cap are all
    applied here, in ALE's C++ loop, and nowhere else. Rewards are never clipped: fitness and every reported
    score are raw game scores (an SB3 config that wants clipping applies it to its own training signal).
    """
    a = env_cfg.atari
    return dict(
        repeat_action_probability=float(a.sticky_actions),
        frameskip=int(env_cfg.frame_skip),
        maxpool=bool(a.maxpool),
        img_height=int(a.screen_size),
        img_width=int(a.screen_size),
        grayscale=bool(a.grayscale),
        stack_num=int(a.frame_stack),
        noop_max=int(a.noop_max),
        episodic_life=bool(a.terminal_on_life_loss),
        life_loss_info=False,
        reward_clipping=False,
        use_fire_reset=bool(a.fire_reset),
        full_action_space=bool(a.full_action_space),
        continuous=False,
        max_num_frames_per_episode=atari_episode_cap(env_cfg, max_episode_frames),
        autoreset_mode=SAME_STEP if same_step else NEXT_STEP,
        batch_size=0,  # synchronous: every step returns all sub-envs, in order
    )


ALE_SEED_HALF = 2**30  # ALE takes reset seeds in [0, 2**31); a negative seed means "unseeded"


def ale_seeds(seeds: np.ndarray) -> np.ndarray:
    """Harness seeds -> ALE seeds, keeping training and test episodes apart by construction.

    Harness seeds are uint32: training sub-env seeds below EVAL_SEED_MIN = 2**31, test seeds from it up to
    EVAL_SEED_END = 2**32 (neuroevo_bench.config), but ALE only accepts seeds in [0, 2**31). Training seeds go
    to the lower half of that range, test seeds to the upper half, so no test episode ever replays a training
    episode's sticky-action stream.
    """
    seeds = np.asarray(seeds, dtype=np.int64)
    if (seeds < 0).any():
        raise EnvError(f"env reset seeds must be >= 0, got {seeds[seeds < 0][:3].tolist()}")
    test = seeds >= EVAL_SEED_MIN
    return np.where(test, ALE_SEED_HALF + (seeds - EVAL_SEED_MIN) % ALE_SEED_HALF, seeds % ALE_SEED_HALF)


@functools.cache
def _protocol_atari_class() -> type:
    """`AtariVectorEnv` with the harness's seeds (see :func:`ale_seeds`); defined on first use, as ale_py is an
    optional dependency."""
    from ale_py.vector_env import AtariVectorEnv

    class ProtocolAtariVectorEnv(AtariVectorEnv):
        def reset(self, *, seed: int | np.ndarray | None = None, options: dict[str, Any] | None = None):
            if seed is not None:
                mask = (options or {}).get("reset_mask")
                n = self.num_envs if mask is None else int(np.count_nonzero(mask))
                base = seed + np.arange(n) if isinstance(seed, (int, np.integer)) else np.asarray(seed)
                seed = ale_seeds(base)
            return super().reset(seed=seed, options=options)

    return ProtocolAtariVectorEnv


def _make_atari(
    env_cfg: Any, num_envs: int, same_step: bool, max_episode_frames: int | None, num_threads: int
) -> gym.vector.VectorEnv:
    return _protocol_atari_class()(
        game=atari_game(env_cfg.id),
        num_envs=num_envs,
        num_threads=num_threads,
        **atari_kwargs(env_cfg, max_episode_frames, same_step),
    )


def make_vector_env(
    env_cfg: Any,
    num_envs: int,
    *,
    same_step_autoreset: bool = False,
    max_episode_frames: int | None = None,
    render_mode: str | None = None,
    num_threads: int = 0,
) -> gym.vector.VectorEnv:
    """Build `num_envs` copies of the configured env as one vector env.

    `same_step_autoreset` is for SB3, whose VecEnv API needs the reset observation in the step that ends an
    episode. Envs whose own batched implementation only auto-resets on the next step (gymnasium's
    `CartPoleVectorEnv`) are then built as a `SyncVectorEnv` of the same registered env: same dynamics, same
    episode cap, same reward. `max_episode_frames` shortens episodes (the GA's fitness-episode cap).
    """
    ensure_registered(env_cfg.id, env_cfg.kind)
    if env_cfg.kind == "atari":
        if render_mode is not None:
            raise EnvError(
                f"render_mode={render_mode!r}: Atari envs are ale_py AtariVectorEnvs, which do not render; "
                "their observations are the protocol's 84x84 grayscale frame stacks"
            )
        return _make_atari(env_cfg, num_envs, same_step_autoreset, max_episode_frames, num_threads)

    kwargs: dict[str, Any] = dict(env_cfg.kwargs or {})
    wrappers = None
    if env_cfg.kind == "minatar":
        kwargs.update(minatar_kwargs(env_cfg))
        wrappers = [MinAtarEpisodeStart]
    spec = gym.registry[env_cfg.id]
    if max_episode_frames is not None:  # a cap only ever shortens the env's own episodes
        cap = max(1, int(max_episode_frames) // int(env_cfg.frame_skip))
        own = kwargs.get("max_episode_steps", spec.max_episode_steps)
        kwargs["max_episode_steps"] = cap if own is None else min(cap, int(own))
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    mode = env_cfg.vectorization
    if mode == "auto":
        mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    if mode == "vector_entry_point" and (same_step_autoreset or render_mode is not None):
        mode = "sync"
    if mode == "vector_entry_point":
        env = gym.make_vec(env_cfg.id, num_envs=num_envs, vectorization_mode=mode, **kwargs)
        if isinstance(env, CartPoleVectorEnv):
            return env
        env.close()  # only CartPole's batched env can start episodes from chosen seeds (CountedVecEnv.reset_slots)
        if env_cfg.vectorization != "auto":
            raise EnvError(
                f"env.vectorization=vector_entry_point is not supported for env.id={env_cfg.id!r}: its batched "
                "env cannot reset chosen sub-envs with chosen seeds; valid: auto, sync, async"
            )
        mode = "sync"
    return gym.make_vec(  # sync or async (config.validate checks env.vectorization)
        env_cfg.id,
        num_envs=num_envs,
        vectorization_mode=mode,
        vector_kwargs={"autoreset_mode": SAME_STEP if same_step_autoreset else NEXT_STEP},
        wrappers=wrappers,
        **kwargs,
    )


def env_info(env_cfg: Any) -> EnvSpecInfo:
    """Spaces and settings of the configured env, read back from a one-env instance."""
    env = make_vector_env(env_cfg, 1)
    try:
        settings: dict[str, Any] = {"vector_env": type(env).__name__}
        if env_cfg.kind == "atari":
            settings.update(atari_settings(env_cfg, env))
        elif env_cfg.kind == "minatar":
            settings.update(minatar_settings(env_cfg, env))
        return EnvSpecInfo(
            env_id=env_cfg.id,
            frame_skip=int(env_cfg.frame_skip),
            observation_space=env.single_observation_space,
            action_space=env.single_action_space,
            settings=settings,
        )
    finally:
        env.close()


def atari_settings(env_cfg: Any, env: gym.vector.VectorEnv) -> dict[str, Any]:
    """What an Atari env was built with and what it was seen to do, for the records.

    AtariVectorEnv cannot report its settings, so the ones that can be observed in one step are read back
    from the env itself: observation shape and type (frame size, grayscale, stack), emulator frames per agent
    step (frame skip) and frames used by a reset (0: no no-op starts, no FIRE on reset). A frame skip that
    differs from `env.frame_skip` would make every frame count wrong, so it fails here, before any run.
    Sticky actions, max-pooling, life-loss and reward clipping need whole episodes to observe; the tests
    (tests/test_atari.py) check them on the built env.
    """
    import ale_py

    kwargs = atari_kwargs(env_cfg)
    kwargs["autoreset_mode"] = str(AutoresetMode(kwargs["autoreset_mode"]).value)
    _, info = env.reset(seed=0)
    frames_at_reset = int(info["episode_frame_number"][0])
    _, _, _, _, info = env.step(np.zeros(env.num_envs, dtype=np.int64))
    frames_per_step = int(info["episode_frame_number"][0]) - frames_at_reset
    if frames_per_step != int(env_cfg.frame_skip):
        raise EnvError(
            f"the Atari env advanced {frames_per_step} emulator frames in one agent step, but "
            f"env.frame_skip={env_cfg.frame_skip}; frame counts would be wrong"
        )
    space = env.single_observation_space
    return {
        "ale_py": ale_py.__version__,
        "rom": atari_game(env_cfg.id),
        "atari_vector_env_kwargs": kwargs,
        "observed": {
            "observation_shape": list(space.shape),
            "observation_dtype": str(space.dtype),
            "n_actions": int(env.single_action_space.n),
            "frames_per_step": frames_per_step,
            "frames_at_reset": frames_at_reset,
        },
    }


class CountedVecEnv:
    """A vector env whose every charged step is added to a ledger: the one place frames are counted.

    A sub-env step is charged unless it is a next-step auto-reset (that step ignores the action and only
    resets) or the caller marks the sub-env inactive (an evaluation slot with no task: its emulator output is
    ignored, so nothing is learnt from it). One charged agent step is `frame_skip` frames.
    """

    def __init__(self, env: gym.vector.VectorEnv, frame_skip: int, ledger: Ledger) -> None:
        self.env = env
        self.frame_skip = int(frame_skip)
        self.ledger = ledger
        self.num_envs = int(env.num_envs)
        mode = env.metadata.get("autoreset_mode", NEXT_STEP)
        self.next_step_autoreset = AutoresetMode(mode) == NEXT_STEP
        self._resetting = np.zeros(self.num_envs, dtype=bool)
        # ale_py's AtariVectorEnv: send() queues the step for its C++ threads, recv() waits for it
        self._threaded = callable(getattr(env, "send", None)) and callable(getattr(env, "recv", None))
        self._sent: np.ndarray | None = None  # charge mask of the step in flight
        self._actions: np.ndarray | None = None

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Sub-env i is seeded `seed + i`: all of them training seeds (below EVAL_SEED_MIN) or all test seeds."""
        if seed is not None and seed < EVAL_SEED_MIN < seed + self.num_envs:
            raise ValueError(
                f"reset seed {seed} would seed {self.num_envs} sub-envs with {seed}..{seed + self.num_envs - 1}, "
                f"some of them test seeds (>= {EVAL_SEED_MIN}); training seeds are drawn below "
                f"config.TRAIN_SEED_LIMIT = {TRAIN_SEED_LIMIT}"
            )
        obs, _ = self.env.reset(seed=seed)
        self._resetting[:] = False
        if seed is not None and isinstance(self.env, CartPoleVectorEnv):  # one generator for all: seed each
            obs = self.reset_slots(np.ones(self.num_envs, dtype=bool), seed + np.arange(self.num_envs))
        return obs

    def reset_slots(self, mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Start a new episode in each sub-env of `mask` (bool (num_envs,)), sub-env i seeded `seeds[i]`
        ((num_envs,) ints; read where `mask` is set), and return every sub-env's observation.

        This is what makes a population evaluation independent of its layout: an episode's start (and, on
        Atari, its sticky-action stream) depends on its own seed only, not on which sub-env plays it or what
        that sub-env played before. A reset sub-env's pending next-step auto-reset is cancelled, so its next
        step is an ordinary, charged one. Gymnasium's Sync/Async vector envs and ale_py's AtariVectorEnv reset
        chosen sub-envs with chosen seeds (`options["reset_mask"]`); gymnasium's batched CartPoleVectorEnv
        draws every start from one shared generator, so its sub-envs are set here, each exactly as
        `CartPole-v1` reset with that seed starts.
        """
        mask = np.asarray(mask, dtype=bool)
        seeds = np.asarray(seeds, dtype=np.int64)
        self._resetting[mask] = False
        env = self.env
        if isinstance(env, CartPoleVectorEnv):
            for i in np.flatnonzero(mask):
                rng, _ = seeding.np_random(int(seeds[i]))
                env.state[:, i] = rng.uniform(low=env.low, high=env.high, size=(4,))
            env.steps[mask] = 0
            env.prev_done[mask] = False
            return env.state.T.astype(np.float32)
        if isinstance(env, (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv)):  # a seed per sub-env
            per_env = [int(s) if m else None for s, m in zip(seeds, mask, strict=True)]
            obs, _ = env.reset(seed=per_env, options={"reset_mask": mask})
        else:  # AtariVectorEnv: the seeds of the masked sub-envs only (mapped by ProtocolAtariVectorEnv)
            obs, _ = env.reset(seed=seeds[mask], options={"reset_mask": mask})
        return obs

    def step(
        self, actions: np.ndarray, active: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:
        """Step all sub-envs; returns gymnasium's 5-tuple plus the boolean mask of charged sub-env steps."""
        self.send(actions, active)
        return self.recv()

    def send(self, actions: np.ndarray, active: np.ndarray | None = None) -> None:
        """Start a step of all sub-envs (`active`: the ones to charge, None = all) and return: ale_py's
        AtariVectorEnv steps in its C++ threads until :meth:`recv`, so the caller can compute meanwhile; any
        other vector env steps in :meth:`recv`. Nothing is charged before the step is received."""
        if self._sent is not None:
            raise RuntimeError("CountedVecEnv.send: the previous step was not received")
        self._sent = np.ones(self.num_envs, dtype=bool) if active is None else np.asarray(active, dtype=bool)
        if self._threaded:
            self.env.send(actions)
        else:
            self._actions = actions

    def recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:
        """The step started by :meth:`send`, charged: gymnasium's 5-tuple plus the mask of charged steps."""
        if self._sent is None:
            raise RuntimeError("CountedVecEnv.recv without a step sent")
        if self._threaded:
            obs, reward, terminated, truncated, info = self.env.recv()
        else:
            obs, reward, terminated, truncated, info = self.env.step(self._actions)
            self._actions = None
        charged = ~self._resetting & self._sent
        self._sent = None
        n = int(charged.sum())
        self.ledger.frames += n * self.frame_skip
        self.ledger.agent_steps += n
        if self.next_step_autoreset:
            self._resetting = np.logical_or(terminated, truncated)
        return obs, reward, terminated, truncated, info, charged

    def close(self) -> None:
        self.env.close()
