"""Policy networks as flat parameter vectors, with a batched forward pass over many individuals at once.

A network is described by a :class:`Network` (layer shapes, activation, how outputs become actions). The GA
never builds `torch.nn.Module`s: an individual is a flat float32 vector, and an evaluation keeps one weight
buffer per slot so that one `torch.baddbmm` per layer computes the actions of every slot in one op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from neuroevo_bench.config import NETWORK_KINDS, ConfigError
from neuroevo_bench.envs import env_info

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}
# Storage formats of the Nature CNN's first fc weight (algo.network.fc_dtype); see NatureCNN.
FC_DTYPES = {"float32": torch.float32, "float16": torch.float16}
NUMPY_ACTIVATIONS = {"relu": lambda h, out: np.maximum(h, 0, out=out), "tanh": np.tanh}


class PolicyError(ConfigError):
    """A network that cannot be built for this env (bad input: exit status 2)."""


@dataclass(frozen=True)
class Network:
    """A fully connected network `sizes[0] -> ... -> sizes[-1]` and the rule that turns outputs into actions.

    Discrete actions: argmax of the outputs (greedy). Box actions: tanh of the outputs scaled to the bounds.
    Flat layout: for each layer, the weight (in, out) row-major, then the bias (out,). With `obs_norm` (ES)
    the layout starts with the observation normaliser's mean (in,) and std (in,): the network sees
    `clip((obs - mean) / std, -5, 5)`, as in Salimans et al.'s code; these entries are set by the algorithm
    from the observations it has seen, never searched (see :func:`searched_mask`).
    """

    sizes: tuple[int, ...]
    activation: str
    discrete: bool
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    obs_norm: bool = False

    @property
    def norm_size(self) -> int:
        """Leading entries of the flat layout that hold the normaliser's mean and std (0 without one)."""
        return 2 * self.sizes[0] if self.obs_norm else 0

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        return list(zip(self.sizes[:-1], self.sizes[1:], strict=True))

    @property
    def n_params(self) -> int:
        return self.norm_size + sum(i * o + o for i, o in self.layer_shapes)

    @property
    def action_shape(self) -> tuple[int, ...]:
        return () if self.discrete else (self.sizes[-1],)

    @property
    def action_dtype(self) -> type:
        return np.int64 if self.discrete else np.float32

    def describe(self) -> str:
        head = "argmax" if self.discrete else "tanh-scaled"
        norm = "observations normalised by running mean/std, clipped to +-5; " if self.obs_norm else ""
        return f"MLP {'-'.join(map(str, self.sizes))} {self.activation}, {norm}{head} actions"

    def init_scale(self) -> torch.Tensor:
        """Per-parameter std of the initial weights (Xavier normal; biases start at zero), shape (P,)."""
        parts = [torch.zeros(self.norm_size)]
        for i, o in self.layer_shapes:
            parts.append(torch.full((i * o,), math.sqrt(2.0 / (i + o))))
            parts.append(torch.zeros(o))
        return torch.cat(parts)

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """(n, P) flat rows -> per layer [W (n, in, out), b (n, 1, out), ...], each contiguous; with obs_norm
        preceded by the normaliser's mean (n, 1, in) and std (n, 1, in)."""
        out, pos = [], 0
        n = flat.shape[0]
        if self.obs_norm:
            d = self.sizes[0]
            out += [flat[:, :d].reshape(n, 1, d), flat[:, d : 2 * d].reshape(n, 1, d)]
            pos = 2 * d
        for i, o in self.layer_shapes:
            out.append(flat[:, pos : pos + i * o].reshape(n, i, o))
            pos += i * o
            out.append(flat[:, pos : pos + o].reshape(n, 1, o))
            pos += o
        return out

    def to_actions(self, out: torch.Tensor | np.ndarray) -> np.ndarray:
        out = out.numpy() if isinstance(out, torch.Tensor) else out
        if self.discrete:
            return out.argmax(-1)
        low, high = np.asarray(self.low, out.dtype), np.asarray(self.high, out.dtype)
        return low + (np.tanh(out) + 1) * 0.5 * (high - low)

    def forward_rows(self, layers: list[Any], x: Any) -> Any:
        """Outputs of R different networks, each on its own E observations.

        layers: from :meth:`split` (first dim R); x: (R, E, in) -> (R, E, out). The E lanes of a row share
        the row's weights, so one batched matmul per layer serves R x E env steps. NumPy arrays take a
        NumPy path: its stacked `matmul` runs these many small products 2-4x faster than `torch.baddbmm`
        on a CPU (measured in `python -m neuroevo_bench.bench`); torch tensors (e.g. on CUDA) take torch's.
        """
        if self.obs_norm:
            mean, std, layers = layers[0], layers[1], layers[2:]
            x = ((x - mean) / std).clip(-5.0, 5.0)
        if isinstance(x, np.ndarray):
            h = x
            n_layers = len(layers) // 2
            for k in range(n_layers):
                h = np.matmul(h, layers[2 * k])
                h += layers[2 * k + 1]
                if k < n_layers - 1:
                    NUMPY_ACTIVATIONS[self.activation](h, out=h)
            return h
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
        if self.obs_norm:
            mean, std, layers = layers[0][0], layers[1][0], layers[2:]
            h = ((h - mean) / std).clamp(-5.0, 5.0)
        n_layers = len(layers) // 2
        for k in range(n_layers):
            h = torch.addmm(layers[2 * k + 1][0], h, layers[2 * k][0])
            if k < n_layers - 1:
                h = act(h)
        return h


class ConvNet:
    """Convolutions, one hidden fully connected layer and a linear head, with the same flat-vector interface as
    :class:`Network`; :class:`NatureCNN` and :class:`MinAtarCNN` are its two architectures.

    Each subclass (a frozen dataclass of `in_shape` (C, H, W), as the convolutions see the input, and
    `n_actions`) sets `convs` ((out_channels, kernel, stride) per layer: valid padding, ReLU), `hidden` (units
    of the fc layer) and how observations become the float (C, H, W) input (:meth:`images`).

    Flat layout, layer by layer, in PyTorch's (and so SB3's) parameter layout: conv weight (out, in, k, k)
    then bias (out,); fc weight (out, in) then bias (out,); the conv output is flattened channel-major, as
    `torch.flatten` does it in SB3 and in MinAtar's examples. Initialisation follows Such et al.'s code:
    weights N(0, 1/fan_in), the output layer scaled by 0.1, biases zero.

    `fc_dtype` (`algo.network.fc_dtype`): "float32" (default, exact), or "float16": the first fc weight is
    kept in IEEE half precision wherever the network runs (weight rows, the single-network path) and
    multiplies the conv features rounded to float16, accumulating in float32. That layer's weight is read
    from memory at every agent step (6.4 MB per Nature CNN in float32, half in float16), which bounds the
    GA's speed on a CPU; genomes, mutation and every other layer stay float32. It changes the arithmetic
    (relative error ~4e-4 on the layer's outputs), so it is an explicit option, recorded with the network
    (README "The networks" gives the action agreement measured). bfloat16 was measured too: no faster here
    (torch's CPU batched product does not read it at the memory's speed) and 7x less precise.
    """

    in_shape: tuple[int, int, int]
    n_actions: int
    fc_dtype: str
    convs: ClassVar[tuple[tuple[int, int, int], ...]]
    hidden: ClassVar[int]
    kind: ClassVar[str]  # the network's name in a saved spec (:func:`network_spec`)

    @property
    def conv_shapes(self) -> list[tuple[int, int, int, int]]:
        """(out, in, kernel, stride) of each convolution."""
        shapes, c = [], self.in_shape[0]
        for out, k, stride in self.convs:
            shapes.append((out, c, k, stride))
            c = out
        return shapes

    @property
    def feature_hw(self) -> tuple[int, int]:
        """Height and width of the last convolution's output."""
        h, w = self.in_shape[1:]
        for _, k, stride in self.convs:
            h, w = (h - k) // stride + 1, (w - k) // stride + 1
        return h, w

    @property
    def n_features(self) -> int:
        """Inputs of the fc layer: the last convolution's output, flattened."""
        h, w = self.feature_hw
        return self.convs[-1][0] * h * w

    @property
    def layer_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the flat layout's tensors, in order (weight, bias, weight, bias, ...)."""
        shapes: list[tuple[int, ...]] = []
        for out, c, k, _ in self.conv_shapes:
            shapes += [(out, c, k, k), (out,)]
        shapes += [
            (self.hidden, self.n_features),
            (self.hidden,),
            (self.n_actions, self.hidden),
            (self.n_actions,),
        ]
        return shapes

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.layer_shapes)

    @property
    def action_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def action_dtype(self) -> type:
        return np.int64

    def init_scale(self) -> torch.Tensor:
        """Per-parameter std of the initial weights, shape (P,): 1/sqrt(fan_in), output layer x 0.1, biases 0."""
        shapes = self.layer_shapes
        parts = []
        for i in range(0, len(shapes), 2):
            weight, bias = shapes[i], shapes[i + 1]
            fan_in = math.prod(weight[1:])
            gain = 0.1 if i == len(shapes) - 2 else 1.0
            parts += [
                torch.full((math.prod(weight),), gain / math.sqrt(fan_in)),
                torch.zeros(math.prod(bias)),
            ]
        return torch.cat(parts)

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """(n, P) flat rows -> per-layer tensors with a leading n, each contiguous (a copy unless n == 1).

        Contiguous, so that the grouped convolutions of :meth:`forward_rows` view R networks' kernels as one
        (R * out, in, k, k) kernel without copying them at every env step.
        """
        out, pos = [], 0
        n = flat.shape[0]
        for shape in self.layer_shapes:
            size = math.prod(shape)
            out.append(flat[:, pos : pos + size].reshape(n, *shape).contiguous())
            pos += size
        out[-4] = out[-4].to(FC_DTYPES[self.fc_dtype])
        return out

    def to_actions(self, out: torch.Tensor) -> np.ndarray:
        return out.argmax(-1).numpy()

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Observations (B, *observation shape) -> the float network input (B, C, H, W)."""
        raise NotImplementedError

    def row_images(self, x: torch.Tensor) -> torch.Tensor:
        """Observations of R networks' E lanes (R, E, *observation shape) -> the float (E, R * C, H, W) input of
        a grouped convolution whose group r is network r."""
        raise NotImplementedError

    def forward_rows(self, layers: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Outputs of R different networks, each on its own E observations: x (R, E, *obs) -> (R, E, A).

        The R networks run as one grouped convolution per layer (group r holds network r's kernels, the E
        lanes are the batch), then one `baddbmm` per fully connected layer. Per env step this reads each
        row's weights once, whatever E; the fc layers dominate (memory-bound), so with E = 1 (the paper's one
        fitness episode per individual) they run as matrix-vector products, (out, in) @ (in, 1). Each row's
        outputs do not depend on R or on the row it sits in (tests/test_minatar.py checks it): the layout of
        a population evaluation never changes its results.
        """
        r, e = x.shape[:2]
        h = self.row_images(x)
        for i, (out, c, k, stride) in enumerate(self.conv_shapes):
            weight, bias = layers[2 * i], layers[2 * i + 1]
            h = F.conv2d(h, weight.reshape(r * out, c, k, k), bias.reshape(r * out), stride=stride, groups=r)
            h = torch.relu_(h).contiguous()
        h = h.reshape(e, r, -1).transpose(0, 1)  # (R, E, features), channel-major per network as SB3 flattens
        h = torch.relu_(linear_rows(h, layers[-4], layers[-3]))
        return linear_rows(h, layers[-2], layers[-1])

    def forward_one(self, flat: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Outputs of one network (flat (P,)) on a batch of observations (B, *obs) -> (B, A)."""
        layers = self.split(flat.unsqueeze(0))
        h = self.images(obs)
        for i, (_, _, _, stride) in enumerate(self.conv_shapes):
            h = torch.relu_(F.conv2d(h, layers[2 * i][0], layers[2 * i + 1][0], stride=stride))
        h = h.flatten(1)
        if self.fc_dtype == "float32":
            h = torch.relu_(F.linear(h, layers[-4][0], layers[-3][0]))
        else:  # read the weight as the rows do
            h = torch.relu_(linear_rows(h.unsqueeze(0), layers[-4], layers[-3])[0])
        return F.linear(h, layers[-2][0], layers[-1][0])


# (out_channels, kernel, stride) of the Nature-DQN convolutions (Mnih et al. 2015), valid padding, ReLU.
NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
NATURE_HIDDEN = 512


@dataclass(frozen=True)
class NatureCNN(ConvNet):
    """The Nature-DQN network for image stacks (Atari).

    Layers: conv 32x8x8/4, conv 64x4x4/2, conv 64x3x3/1, fc 512, fc n_actions; ReLU between layers, valid
    padding; observations are uint8 (C, H, W) and scaled by 1/255. This is exactly SB3's `NatureCNN` features
    extractor with a linear head (its `CnnPolicy` actor), 1,687,206 parameters for 4x84x84 inputs and 6
    actions. (Such et al.'s own code used "same" padding, which gives ~4M parameters; the issue asks for SB3's
    layout.) The fc weight is stored (out, in) because with one lane per row the fc product is then a batched
    matrix-vector product over contiguous rows, which reads the 6.4 MB fc weight of a network ~1.8x faster on
    a CPU than the (in, out) vector-matrix form.
    """

    in_shape: tuple[int, int, int]  # (channels = stacked frames, height, width)
    n_actions: int
    discrete: bool = True
    fc_dtype: str = "float32"  # storage of the fc weight in weight rows (FC_DTYPES)
    convs: ClassVar[tuple[tuple[int, int, int], ...]] = NATURE_CONVS
    hidden: ClassVar[int] = NATURE_HIDDEN
    kind: ClassVar[str] = "nature_cnn"

    def describe(self) -> str:
        c, h, w = self.in_shape
        fh, fw = self.feature_hw
        fc = "" if self.fc_dtype == "float32" else f" ({self.fc_dtype} weight, float32 accumulation)"
        return (
            f"Nature-DQN CNN (= SB3 NatureCNN + linear head): {c}x{h}x{w} uint8/255 -> conv 32x8x8/4 -> "
            f"conv 64x4x4/2 -> conv 64x3x3/1 ({64 * fh * fw} features) -> fc {NATURE_HIDDEN}{fc} -> "
            f"{self.n_actions}, relu, valid padding, {self.n_params:,} params, argmax actions"
        )

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return x / 255.0

    def row_images(self, x: torch.Tensor) -> torch.Tensor:
        r, e = x.shape[:2]
        h = x.transpose(0, 1).reshape(e, r * self.in_shape[0], *self.in_shape[1:]) / 255.0
        # The first convolution reads its input channels-last: ~3x faster on a CPU for these few input channels
        # per group, with bit-identical outputs (tests/test_atari.py); the others are faster as they are.
        return h.contiguous(memory_format=torch.channels_last)


# MinAtar's reference network (its examples/dqn.py QNetwork): one conv of 16 3x3 filters, stride 1, no padding.
MINATAR_CONVS = ((16, 3, 1),)
MINATAR_HIDDEN = 128


@dataclass(frozen=True)
class MinAtarCNN(ConvNet):
    """MinAtar's reference network (Young & Tian 2019, `examples/dqn.py`), for (10, 10, n) boolean grids.

    Layers: conv 16x3x3/1 with no padding (10x10 -> 8x8x16 = 1,024 features), fc 128, fc n_actions, ReLU
    between layers (as MinAtar's DQN; its AC(lambda) example uses SiLU units in the same layout). Observations
    arrive channels-last (H, W, C) as MinAtar gives them and are read as 0/1 floats, transposed to (C, H, W)
    inside the forward pass; for grouped convolutions they are laid out in PyTorch's channels-last memory
    format, where the grouped 3x3 convolution runs ~2x faster on a CPU than in the contiguous one. 132k
    parameters for Breakout's 4 channels and 3 actions, 98% of them in the fc layer.
    """

    in_shape: tuple[
        int, int, int
    ]  # (channels, height, width) of the network's input; observations are (H, W, C)
    n_actions: int
    fc_dtype: str = "float32"  # storage of the fc weight in weight rows (FC_DTYPES)
    convs: ClassVar[tuple[tuple[int, int, int], ...]] = MINATAR_CONVS
    hidden: ClassVar[int] = MINATAR_HIDDEN
    kind: ClassVar[str] = "minatar_cnn"

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        return h, w, c

    def describe(self) -> str:
        c, h, w = self.in_shape
        fh, fw = self.feature_hw
        return (
            f"MinAtar CNN (MinAtar's reference network): {h}x{w}x{c} bool -> conv 16x3x3/1 ({16 * fh * fw} "
            f"features) -> fc {MINATAR_HIDDEN} -> {self.n_actions}, relu, no padding, {self.n_params:,} params, "
            "argmax actions"
        )

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().permute(0, 3, 1, 2)

    def row_images(self, x: torch.Tensor) -> torch.Tensor:
        r, e, h, w, c = x.shape
        # (R, E, H, W, C) -> (E, H, W, R * C): the (E, R * C, H, W) input in channels-last memory format
        nhwc = x.permute(1, 2, 3, 0, 4).reshape(e, h, w, r * c)
        return nhwc.permute(0, 3, 1, 2).float()


def linear_rows(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """R different linear layers on their own E inputs: h (R, E, in), weight (R, out, in), bias (R, out).

    A float16 `weight` is read as stored: `h` is rounded to float16, the product accumulates in float32
    (torch's CPU kernels), and its float16 result is added to the float32 bias."""
    if weight.dtype != h.dtype:
        h = h.to(weight.dtype)
        if h.shape[1] == 1:
            out = torch.bmm(weight, h.transpose(1, 2)).transpose(1, 2)
        else:
            out = torch.bmm(h, weight.transpose(1, 2))
        return out.float() + bias.unsqueeze(1)
    if h.shape[1] == 1:
        return torch.baddbmm(bias.unsqueeze(-1), weight, h.transpose(1, 2)).transpose(1, 2)
    return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))


AnyNetwork = Network | NatureCNN | MinAtarCNN
CONV_NETS: dict[str, type[NatureCNN] | type[MinAtarCNN]] = {
    "nature_cnn": NatureCNN,
    "minatar_cnn": MinAtarCNN,
}
AUTO_HINT = "algo.network.kind=auto (the default) picks the network for the env's observations"


def network_spec(net: AnyNetwork) -> dict[str, Any]:
    """A JSON-able description from which :func:`network_from_spec` rebuilds `net` (saved with a champion)."""
    if isinstance(net, ConvNet):
        spec = {"kind": net.kind, "in_shape": list(net.in_shape), "n_actions": net.n_actions}
        return spec | {"fc_dtype": net.fc_dtype}
    return {
        "kind": "mlp",
        "sizes": list(net.sizes),
        "activation": net.activation,
        "discrete": net.discrete,
        "low": list(net.low),
        "high": list(net.high),
        "obs_norm": net.obs_norm,
    }


def network_from_spec(spec: dict[str, Any]) -> AnyNetwork:
    kind = spec.get("kind", "mlp")
    if kind in CONV_NETS:
        fc_dtype = str(spec.get("fc_dtype", "float32"))
        return CONV_NETS[kind](tuple(spec["in_shape"]), int(spec["n_actions"]), fc_dtype=fc_dtype)
    if kind != "mlp":
        raise PolicyError(f"saved network kind={kind!r}; valid: mlp, {', '.join(CONV_NETS)}")
    return Network(
        tuple(spec["sizes"]),
        spec["activation"],
        spec["discrete"],
        tuple(spec["low"]),
        tuple(spec["high"]),
        bool(spec.get("obs_norm", False)),
    )


def _conv_net_checks(name: str, net_cfg: Any, action_space: gym.Space) -> None:
    """What both CNNs need besides their input: one of n discrete actions, ReLU."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise PolicyError(f"the {name} picks one of n discrete actions; action space {action_space} is not")
    if net_cfg.activation != "relu":
        raise PolicyError(
            f"algo.network.activation={net_cfg.activation!r} is invalid for the {name}; valid: relu "
            f"(algo.network.hidden and algo.network.activation describe MLPs; the {name}'s layers are fixed)"
        )


def make_nature_cnn(net_cfg: Any, observation_space: gym.spaces.Box, action_space: gym.Space) -> NatureCNN:
    """The GA/RS network for stacked image observations (Atari), (C, H, W) uint8."""
    shape = tuple(int(d) for d in observation_space.shape)
    if observation_space.dtype != np.uint8 or len(shape) != 3:
        raise PolicyError(
            f"algo.network.kind=nature_cnn cannot take observations {observation_space}: the Nature CNN needs "
            f"uint8 image stacks (C, H, W) of at least 36x36 (Atari); {AUTO_HINT}"
        )
    _conv_net_checks("Nature CNN", net_cfg, action_space)
    net = NatureCNN((shape[0], shape[1], shape[2]), int(action_space.n), fc_dtype=fc_dtype_of(net_cfg))
    if min(net.feature_hw) < 1:
        raise PolicyError(f"image observations {shape} are too small for the Nature CNN (need >= 36x36)")
    return net


def make_minatar_cnn(net_cfg: Any, observation_space: gym.spaces.Box, action_space: gym.Space) -> MinAtarCNN:
    """The GA/RS network for MinAtar's (H, W, C) boolean grids."""
    shape = tuple(int(d) for d in observation_space.shape)
    if observation_space.dtype != np.bool_ or len(shape) != 3 or min(shape[:2]) < 3:
        raise PolicyError(
            f"algo.network.kind=minatar_cnn cannot take observations {observation_space}: MinAtar's network "
            f"needs boolean grids (H, W, C) of at least 3x3, channels last (MinAtar: 10x10xn); {AUTO_HINT}"
        )
    _conv_net_checks("MinAtar CNN", net_cfg, action_space)
    return MinAtarCNN((shape[2], shape[0], shape[1]), int(action_space.n), fc_dtype=fc_dtype_of(net_cfg))


def build_network(env_cfg: Any, net_cfg: Any) -> AnyNetwork:
    """The GA/RS network for the configured env (`env.*`, `algo.network`), its spaces read from a built env:
    the one way the driver, the Ray workers and the benchmarks get the same network."""
    info = env_info(env_cfg)
    return make_network(net_cfg, info.observation_space, info.action_space)


def network_kind(net_cfg: Any, observation_space: gym.Space) -> str:
    """`algo.network.kind`, with `auto` resolved from the observations: an MLP for vectors, MinAtar's network
    for boolean (H, W, C) grids, the Nature CNN for other images (uint8 (C, H, W) stacks)."""
    kind = str(getattr(net_cfg, "kind", None) or "auto")  # no key (e.g. an older run's config): auto
    if kind not in NETWORK_KINDS:
        raise PolicyError(f"algo.network.kind={kind!r} is invalid; valid: {', '.join(NETWORK_KINDS)}")
    if kind != "auto":
        return kind
    if isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 3:
        return "minatar_cnn" if observation_space.dtype == np.bool_ else "nature_cnn"
    return "mlp"


def fc_dtype_of(net_cfg: Any) -> str:
    """`algo.network.fc_dtype`, checked (float32 where the key is absent, e.g. an older run's config)."""
    fc_dtype = str(getattr(net_cfg, "fc_dtype", None) or "float32")
    if fc_dtype not in FC_DTYPES:
        raise PolicyError(f"algo.network.fc_dtype={fc_dtype!r} is invalid; valid: {', '.join(FC_DTYPES)}")
    return fc_dtype


def make_network(
    net_cfg: Any, observation_space: gym.Space, action_space: gym.Space, obs_norm: bool = False
) -> AnyNetwork:
    """The GA/RS/ES network for an env: `algo.network.kind` (:func:`network_kind`). `obs_norm` (ES) puts an
    observation normaliser in front of an MLP; image networks have none."""
    kind = network_kind(net_cfg, observation_space)
    box = isinstance(observation_space, gym.spaces.Box)
    if kind != "mlp" and not box:
        raise PolicyError(f"algo.network.kind={kind} cannot take observations {observation_space}: not a Box")
    if kind == "nature_cnn":
        return make_nature_cnn(net_cfg, observation_space, action_space)
    if kind == "minatar_cnn":
        return make_minatar_cnn(net_cfg, observation_space, action_space)
    vector = box and len(observation_space.shape) == 1
    if not vector and network_kind(None, observation_space) != "mlp":  # images, but algo.network.kind=mlp
        raise PolicyError(
            f"algo.network.kind=mlp cannot take observations {observation_space}: the MLP needs a 1-D Box "
            f"(vector observations); {AUTO_HINT}"
        )
    if fc_dtype_of(net_cfg) != "float32":
        raise PolicyError(
            f"algo.network.fc_dtype={net_cfg.fc_dtype} is for the convolutional networks (image observations) "
            "only; valid for an MLP: float32"
        )
    if not vector:
        raise PolicyError(
            f"observation space {observation_space} is not supported by the GA/RS policies: they need a 1-D Box "
            "(vector observations, MLP), a (C, H, W) uint8 image stack (Nature CNN; env=Pong / env=atari) or a "
            "(H, W, C) boolean grid (MinAtar CNN; env=minatar)"
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
        raise PolicyError(
            f"algo.network.activation={net_cfg.activation!r} is invalid; valid: {', '.join(sorted(ACTIVATIONS))}"
        )
    sizes = (int(observation_space.shape[0]), *map(int, net_cfg.hidden), n_out)
    return Network(sizes, str(net_cfg.activation), discrete, low, high, obs_norm)


def searched_mask(net: AnyNetwork) -> torch.Tensor:
    """(P,) 1.0 on the parameters a search perturbs, 0.0 on the observation normaliser's statistics."""
    mask = torch.ones(net.n_params)
    mask[: getattr(net, "norm_size", 0)] = 0.0
    return mask


LOAD_CHUNK_BYTES = 4 * 2**20


class RowWeights:
    """One network per row, in contiguous per-layer buffers (the per-step forward never gathers weights).

    `device` holds the buffers (`resources.device`: cpu, or cuda for the batched forward on a GPU). On a CPU the
    MLP runs on NumPy views of the same buffers (see Network.forward_rows) unless `numpy_forward=False`.
    """

    def __init__(
        self, net: Network | NatureCNN, rows: int, device: str = "cpu", numpy_forward: bool | None = None
    ) -> None:
        self.net = net
        self.rows = int(rows)
        self.device = torch.device(device)
        self.layers = net.split(torch.zeros(self.rows, net.n_params, device=self.device))
        if numpy_forward is None:
            numpy_forward = isinstance(net, Network) and self.device.type == "cpu"
        self.numpy_layers = [b.numpy() for b in self.layers] if numpy_forward else None
        # networks built and loaded at once (evaluation.LocalEvaluator): about LOAD_CHUNK_BYTES of parameters,
        # so that building them allocates no fresh memory (page faults) and stays in cache. MinAtar's 132k-
        # parameter network: 7 at a time, 5x faster than a whole population's worth at once (fresh networks
        # on MinAtar often last only ~10 frames, so this cost shows)
        self.load_chunk = max(1, LOAD_CHUNK_BYTES // (4 * net.n_params))

    def load(self, rows: np.ndarray, flat: torch.Tensor) -> None:
        """Copy the flat parameters (k, P), built on the CPU, into rows (k,): each layer straight from its
        slice of the flat layout (the layers in order), converted to the buffer's dtype on the way."""
        idx = torch.as_tensor(rows, device=self.device)
        flat = flat.to(self.device)
        pos = 0
        for buf in self.layers:
            size = math.prod(buf.shape[1:])
            buf[idx] = flat[:, pos : pos + size].reshape(len(idx), *buf.shape[1:]).to(buf.dtype)
            pos += size
        assert pos == flat.shape[1], "the weight rows do not cover the flat layout"

    @torch.no_grad()
    def act(self, x: np.ndarray, hi: int, row: np.ndarray, lane: np.ndarray) -> np.ndarray:
        """Actions of slots in (row, lane) of rows [0, hi) given x (hi, E, *obs_shape)."""
        if self.numpy_layers is not None:
            layers = [buf[:hi] for buf in self.numpy_layers]
            return self.net.to_actions(
                self.net.forward_rows(layers, x.astype(np.float32, copy=False))[row, lane]
            )
        layers = [buf[:hi] for buf in self.layers]
        out = self.net.forward_rows(layers, torch.as_tensor(x, dtype=torch.float32, device=self.device))
        picked = out[torch.as_tensor(row, device=self.device), torch.as_tensor(lane, device=self.device)]
        return self.net.to_actions(picked.cpu())


def flat_policy(net: Network, flat: torch.Tensor):
    """A greedy act function `obs (B, ...) -> actions (B,)` for one flat parameter vector."""

    @torch.no_grad()
    def act(obs: np.ndarray) -> np.ndarray:
        return net.to_actions(net.forward_one(flat, torch.as_tensor(obs, dtype=torch.float32)))

    return act
