"""Policy networks as flat parameter vectors, with a batched forward pass over many individuals at once.

A network is described by a :class:`Network` (layer shapes, activation, how outputs become actions). The GA
never builds `torch.nn.Module`s: an individual is a flat float32 vector, and an evaluation keeps one weight
buffer per slot so that one `torch.baddbmm` per layer computes the actions of every slot in one op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


class PolicyError(ValueError):
    """A network that cannot be built for this env."""


@dataclass(frozen=True)
class Network:
    """A fully connected network `sizes[0] -> ... -> sizes[-1]` and the rule that turns outputs into actions.

    Discrete actions: argmax of the outputs (greedy). Box actions: tanh of the outputs scaled to the bounds.
    Flat layout: for each layer, the weight (in, out) row-major, then the bias (out,).
    """

    sizes: tuple[int, ...]
    activation: str
    discrete: bool
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        return list(zip(self.sizes[:-1], self.sizes[1:], strict=True))

    @property
    def n_params(self) -> int:
        return sum(i * o + o for i, o in self.layer_shapes)

    @property
    def action_shape(self) -> tuple[int, ...]:
        return () if self.discrete else (self.sizes[-1],)

    @property
    def action_dtype(self) -> type:
        return np.int64 if self.discrete else np.float32

    def describe(self) -> str:
        head = "argmax" if self.discrete else "tanh-scaled"
        return f"MLP {'-'.join(map(str, self.sizes))} {self.activation}, {head} actions"

    def init_scale(self) -> torch.Tensor:
        """Per-parameter std of the initial weights (Xavier normal; biases start at zero), shape (P,)."""
        parts = []
        for i, o in self.layer_shapes:
            parts.append(torch.full((i * o,), math.sqrt(2.0 / (i + o))))
            parts.append(torch.zeros(o))
        return torch.cat(parts)

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """(n, P) flat rows -> per layer [W (n, in, out), b (n, 1, out), ...], each contiguous."""
        out, pos = [], 0
        n = flat.shape[0]
        for i, o in self.layer_shapes:
            out.append(flat[:, pos : pos + i * o].reshape(n, i, o))
            pos += i * o
            out.append(flat[:, pos : pos + o].reshape(n, 1, o))
            pos += o
        return out

    def to_actions(self, out: torch.Tensor) -> np.ndarray:
        if self.discrete:
            return out.argmax(-1).numpy()
        low = torch.tensor(self.low, dtype=out.dtype)
        high = torch.tensor(self.high, dtype=out.dtype)
        return (low + (torch.tanh(out) + 1) * 0.5 * (high - low)).numpy()

    def forward_rows(self, layers: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Outputs of R different networks, each on its own E observations.

        layers: from :meth:`split` (first dim R); x: (R, E, in) -> (R, E, out). The E lanes of a row share
        the row's weights, so one `baddbmm` per layer serves R x E env steps.
        """
        act = ACTIVATIONS[self.activation]
        h = x
        n_layers = len(layers) // 2
        for k in range(n_layers):
            h = torch.baddbmm(layers[2 * k + 1], h, layers[2 * k])
            if k < n_layers - 1:
                h = act(h)
        return h

    def forward_one(self, flat: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Outputs of one network (flat (P,)) on a batch of observations (B, in) -> (B, out)."""
        act = ACTIVATIONS[self.activation]
        layers = self.split(flat.unsqueeze(0))
        h = obs
        n_layers = len(layers) // 2
        for k in range(n_layers):
            h = torch.addmm(layers[2 * k + 1][0], h, layers[2 * k][0])
            if k < n_layers - 1:
                h = act(h)
        return h


def make_network(net_cfg: Any, observation_space: gym.Space, action_space: gym.Space) -> Network:
    """The GA/RS network for an env: an MLP for vector observations."""
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise PolicyError(
            f"observation space {observation_space} is not supported by the GA/RS MLP policy: it needs a 1-D Box "
            "(vector observations); Atari envs use env=Pong / env=atari with the Nature CNN"
        )
    if isinstance(action_space, gym.spaces.Discrete):
        discrete, n_out, low, high = True, int(action_space.n), (), ()
    elif isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise PolicyError(
                f"action space {action_space} must have finite bounds for the tanh-scaled policy"
            )
        discrete, n_out = False, int(action_space.shape[0])
        low, high = tuple(map(float, action_space.low)), tuple(map(float, action_space.high))
    else:
        raise PolicyError(f"action space {action_space} is not supported: use Discrete or a 1-D Box")
    if net_cfg.activation not in ACTIVATIONS:
        raise PolicyError(f"network.activation={net_cfg.activation!r}; valid: {sorted(ACTIVATIONS)}")
    sizes = (int(observation_space.shape[0]), *map(int, net_cfg.hidden), n_out)
    return Network(sizes=sizes, activation=str(net_cfg.activation), discrete=discrete, low=low, high=high)


class RowWeights:
    """One network per row, in contiguous per-layer buffers (the per-step forward never gathers weights)."""

    def __init__(self, net: Network, rows: int) -> None:
        self.net = net
        self.rows = int(rows)
        self.layers = net.split(torch.zeros(self.rows, net.n_params))

    def load(self, rows: np.ndarray, flat: torch.Tensor) -> None:
        """Copy the flat parameters (k, P) into rows (k,)."""
        idx = torch.as_tensor(rows)
        for buf, part in zip(self.layers, self.net.split(flat), strict=True):
            buf[idx] = part

    @torch.no_grad()
    def outputs(self, x: np.ndarray, hi: int) -> torch.Tensor:
        """Network outputs of rows [0, hi) on x (hi, E, *obs_shape) -> (hi, E, n_out)."""
        layers = [buf[:hi] for buf in self.layers]
        return self.net.forward_rows(layers, torch.as_tensor(x, dtype=torch.float32))


def flat_policy(net: Network, flat: torch.Tensor):
    """A greedy act function `obs (B, ...) -> actions (B,)` for one flat parameter vector."""

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        return net.to_actions(net.forward_one(flat, torch.as_tensor(obs, dtype=torch.float32)))

    return act
