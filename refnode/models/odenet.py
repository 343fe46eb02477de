"""The "Replacing ResNet" models of the paper's Table 1 (§3), with hand-derived VJPs.

Four image classifiers, as in torchdiffeq's ``examples/odenet_mnist.py``. Three of them share
a downsampling stem and a classification head around a different feature block:

    stem:  Conv(1→C, 3×3) → GN → ReLU → Conv(C→C, 4×4, s2, p1) → GN → ReLU → Conv(C→C, 4×4, s2, p1)
    block: ODE-Net  z(1) = z(0) + ∫₀¹ f(z(t), t, θ) dt       (dopri5, tol 1e-3, continuous adjoint)
           RK-Net   the same f, fixed-step RK4, backprop through the steps (discrete adjoint)
           ResNet   six residual blocks z ← z + g(z)          (the Euler picture of the ODE)
    head:  GN → ReLU → global average pool → Linear(C → 10)

with f = GN → ReLU → ConcatConv(3×3) → GN → ReLU → ConcatConv(3×3) → GN and every
GroupNorm with min(32, C) groups. The fourth, the 1-layer MLP baseline the paper quotes
from LeCun et al. (1998), is Flatten → Linear(784→300) → ReLU → Linear(300→10).

Every model is a layer of the contract in :mod:`refnode.nn.base` (``init``, ``forward``,
``vjp``), so the gradient of the whole network is the layers' VJPs chained by
:class:`~refnode.nn.Sequential`; the ODE block's VJP is :func:`refnode.odeint_vjp`.

torchdiffeq's ``--downsampling-method res`` stem (two stride-2 residual blocks) is offered
as ``downsampling="res"``: its parameter counts are the ones closest to the paper's table
(see :func:`paper_parameter_counts` and docs/table1.md).
"""

import numpy as np

from ..backend import array_module
from ..errors import InputError
from ..gradients import odeint_vjp
from ..odeint import odeint
from ..nn import (Conv2d, ConcatConv2d, Flatten, GlobalAvgPool2d, GroupNorm, Linear,
                  NetworkDynamics, ReLU, Sequential)
from ..params import tree_leaves, tree_map

#: Channels of the feature maps (torchdiffeq examples/odenet_mnist.py).
CHANNELS = 64
#: Residual blocks of the ResNet (the paper: "a ResNet with 6 residual blocks").
RESNET_BLOCKS = 6
#: ODE-Net solver and tolerance (odenet_mnist.py: ``--tol 1e-3``, rtol = atol = tol).
ODENET_METHOD, ODENET_TOL = "dopri5", 1e-3
#: RK-Net: RK4 steps on [0, 1]. The paper does not give L̃; 4 steps is 16 f-evaluations,
#: close to what dopri5 needs at tol 1e-3 early in training (our choice, not the paper's).
RKNET_STEPS = 4
#: Hidden units of the MLP baseline (784·300 + 300 + 300·10 + 10 ≈ 0.24M parameters).
MLP_HIDDEN = 300
NUM_CLASSES = 10
#: Parameter counts as printed in Table 1 of the paper (two significant digits).
PAPER_PARAMS = {"mlp": 0.24e6, "resnet": 0.60e6, "rknet": 0.22e6, "odenet": 0.22e6}


def group_norm(channels):
    """GroupNorm(min(32, C), C), the normalisation used throughout the reference code."""
    return GroupNorm(min(32, channels), channels)


class ResBlock:
    """torchdiffeq's pre-activation residual block: y = shortcut + conv(relu(gn(conv(a)))).

    a = relu(gn(x)); the residual branch is Conv3×3(stride) → GN → ReLU → Conv3×3 (no
    biases); the shortcut is x itself, or Conv1×1(stride)(a) when the block downsamples.
    ``theta = {"pre": ..., "residual": ..., "shortcut": ...}`` (shortcut {} for identity).
    """

    def __init__(self, channels, stride=1):
        self.stride = stride
        self.pre = Sequential(group_norm(channels), ReLU())
        self.residual = Sequential(Conv2d(channels, channels, 3, stride, 1, bias=False),
                                   group_norm(channels), ReLU(),
                                   Conv2d(channels, channels, 3, 1, 1, bias=False))
        self.shortcut = (Conv2d(channels, channels, 1, stride, 0, bias=False)
                         if stride != 1 else None)

    def init(self, rng, dtype=np.float64):
        return {"pre": self.pre.init(rng, dtype), "residual": self.residual.init(rng, dtype),
                "shortcut": self.shortcut.init(rng, dtype) if self.shortcut else {}}

    def forward(self, theta, t, x):
        """x: (N, C, H, W) -> y: (N, C, H/stride, W/stride)."""
        a, cache_pre = self.pre.forward(theta["pre"], t, x)
        r, cache_res = self.residual.forward(theta["residual"], t, a)
        if self.shortcut is None:
            return x + r, (cache_pre, cache_res, None)
        s, cache_short = self.shortcut.forward(theta["shortcut"], t, a)
        return s + r, (cache_pre, cache_res, cache_short)

    def vjp(self, theta, cache, g):
        """g flows into both branches; their input gradients add up (the skip's is g itself)."""
        cache_pre, cache_res, cache_short = cache
        g_a, g_residual, _ = self.residual.vjp(theta["residual"], cache_res, g)
        if self.shortcut is None:
            g_x, g_pre, _ = self.pre.vjp(theta["pre"], cache_pre, g_a)
            return g + g_x, {"pre": g_pre, "residual": g_residual, "shortcut": {}}, 0.0
        g_a_short, g_short, _ = self.shortcut.vjp(theta["shortcut"], cache_short, g)
        g_x, g_pre, _ = self.pre.vjp(theta["pre"], cache_pre, g_a + g_a_short)
        return g_x, {"pre": g_pre, "residual": g_residual, "shortcut": g_short}, 0.0

    def __repr__(self):
        return f"ResBlock(stride={self.stride})"


class ODEFunction(NetworkDynamics):
    """Network dynamics that evaluate the network at t in the state's precision.

    The solvers pass t as a float64 scalar; under NumPy's promotion rules (NEP 50) the
    time channel ``t·1`` of a ConcatConv2d would then turn a float32 state into float64.
    """

    def __call__(self, t, z, theta):
        return super().__call__(_like(t, z), z, theta)

    def linearize(self, t, z, theta):            # value_and_vjp goes through it too
        return super().linearize(_like(t, z), z, theta)


def _like(t, z):
    """t cast to z's dtype when it is an array scalar of another precision."""
    dtype = getattr(t, "dtype", None)
    return t if dtype is None or dtype == z.dtype else t.astype(z.dtype)


def ode_function(channels):
    """f(t, z, θ) = GN → ReLU → ConcatConv3×3 → GN → ReLU → ConcatConv3×3 → GN, as dynamics."""
    return ODEFunction(Sequential(
        group_norm(channels), ReLU(), ConcatConv2d(channels, channels, 3, 1, 1),
        group_norm(channels), ReLU(), ConcatConv2d(channels, channels, 3, 1, 1),
        group_norm(channels)))


class ODEBlock:
    """z(0) = x  ->  z(t1) = x + ∫₀^{t1} f(t, z, θ) dt, a layer whose VJP is odeint_vjp.

    The cache holds the pullback; ``cache["pullback"].forward_stats`` (and, after the VJP,
    ``.backward_stats``) hold the function-evaluation counts reported in Table 1.

    Parameters
    ----------
    dynamics : NetworkDynamics
    method : str
        Any of ``refnode.METHODS``.
    rtol, atol : float, optional
        Adaptive methods' tolerances; None: :data:`ODENET_TOL` for an adaptive method, and
        none for a fixed grid (which has no error control: ``odeint_vjp`` refuses them).
    gradient : {"adjoint", "discrete", "autograd"}
        How ∂L/∂z(0) and ∂L/∂θ are computed (see :func:`refnode.odeint_vjp`).
    n_steps : int, optional
        Fixed-step methods: steps on [0, t1].
    t1 : float
    """

    def __init__(self, dynamics, method=ODENET_METHOD, rtol=None, atol=None,
                 gradient="adjoint", n_steps=None, t1=1.0):
        if n_steps is None:
            rtol = ODENET_TOL if rtol is None else rtol
            atol = ODENET_TOL if atol is None else atol
        self.dynamics, self.method, self.gradient = dynamics, method, gradient
        self.rtol, self.atol, self.n_steps, self.t1 = rtol, atol, n_steps, t1

    def init(self, rng, dtype=np.float64):
        return self.dynamics.init(rng, dtype)

    def forward(self, theta, t, x):
        """x: (N, C, H, W) -> z(t1), same shape. ``t`` (the outer layer time) is unused."""
        xp = array_module(x)
        times = xp.asarray([0.0, self.t1], dtype=x.dtype)
        z, pullback = odeint_vjp(self.dynamics, x, times, theta, method=self.method,
                                 rtol=self.rtol, atol=self.atol, gradient=self.gradient,
                                 n_steps=self.n_steps)
        # Fixed-step solves currently promote float32 states to float64 (their step h is a
        # float64 scalar); cast back so the block keeps its input's precision.
        return z[-1].astype(x.dtype, copy=False), {"pullback": pullback, "dtype": x.dtype}

    def predict(self, theta, x):
        """z(t1) alone, for evaluation: no pullback is set up (nor replay recorded)."""
        xp = array_module(x)
        times = xp.asarray([0.0, self.t1], dtype=x.dtype)
        z = odeint(self.dynamics, x, times, theta, method=self.method, rtol=self.rtol,
                   atol=self.atol, n_steps=self.n_steps)
        return z[-1].astype(x.dtype, copy=False)

    def vjp(self, theta, cache, g):
        """(∂L/∂z(0), ∂L/∂θ, 0.0): the loss sees only z(t1), so dL/dz(0) in the cotangent is 0."""
        xp = array_module(g)
        dz0, dtheta, _ = cache["pullback"](xp.stack([xp.zeros_like(g), g]))
        dtype = cache["dtype"]
        dtheta = tree_map(lambda leaf: leaf.astype(dtype, copy=False), dtheta)
        return dz0.astype(dtype, copy=False), dtheta, 0.0

    def __repr__(self):
        return f"ODEBlock({self.method}, gradient={self.gradient})"


def stem(channels=CHANNELS, downsampling="conv"):
    """The downsampling layers, 28×28 -> 6×6 ("conv") or 7×7 ("res")."""
    if downsampling == "conv":
        return [Conv2d(1, channels, 3, 1, 0), group_norm(channels), ReLU(),
                Conv2d(channels, channels, 4, 2, 1), group_norm(channels), ReLU(),
                Conv2d(channels, channels, 4, 2, 1)]
    if downsampling == "res":
        return [Conv2d(1, channels, 3, 1, 0), ResBlock(channels, 2), ResBlock(channels, 2)]
    raise InputError(f"downsampling must be 'conv' or 'res'; got {downsampling!r}")


def head(channels=CHANNELS):
    """GN → ReLU → global average pool → Linear(C → 10)."""
    return [group_norm(channels), ReLU(), GlobalAvgPool2d(), Linear(channels, NUM_CLASSES)]


def odenet(channels=CHANNELS, downsampling="conv", rtol=ODENET_TOL, atol=ODENET_TOL,
           gradient="adjoint"):
    """ODE-Net: stem → ODEBlock(dopri5, continuous adjoint) → head."""
    block = ODEBlock(ode_function(channels), ODENET_METHOD, rtol, atol, gradient)
    return Sequential(*stem(channels, downsampling), block, *head(channels))


def rknet(channels=CHANNELS, downsampling="conv", n_steps=RKNET_STEPS):
    """RK-Net: the same block, integrated by RK4 with ``n_steps`` steps, backprop through them."""
    block = ODEBlock(ode_function(channels), "rk4", gradient="discrete", n_steps=n_steps)
    return Sequential(*stem(channels, downsampling), block, *head(channels))


def resnet(channels=CHANNELS, downsampling="conv", n_blocks=RESNET_BLOCKS):
    """ResNet: stem → ``n_blocks`` residual blocks → head."""
    blocks = [ResBlock(channels) for _ in range(n_blocks)]
    return Sequential(*stem(channels, downsampling), *blocks, *head(channels))


def mlp(n_in=28 * 28, hidden=MLP_HIDDEN):
    """The 1-layer MLP baseline: Flatten → Linear(784→300) → ReLU → Linear(300→10)."""
    return Sequential(Flatten(), Linear(n_in, hidden), ReLU(), Linear(hidden, NUM_CLASSES))


#: The Table 1 models by name, in the paper's row order.
MODELS = {"mlp": mlp, "resnet": resnet, "rknet": rknet, "odenet": odenet}


def build_model(name, **options):
    """One of :data:`MODELS` by name; ``options`` go to its builder."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name](**options)


def count_parameters(theta):
    """Number of scalars in a parameter tree."""
    return int(sum(np.size(leaf) for leaf in tree_leaves(theta)))


def ode_blocks(model):
    """The ODEBlock layers of a Sequential model, as (index, layer) pairs."""
    return [(i, layer) for i, layer in enumerate(model.layers) if isinstance(layer, ODEBlock)]
