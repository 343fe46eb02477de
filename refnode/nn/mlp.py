"""Multilayer perceptrons as ODE dynamics: ``mlp_dynamics((2, 50, 2), "tanh")``.

The dynamics of the paper's spiral demo (torchdiffeq examples/ode_demo.py) is
``f(t, z) = MLP(z³)`` with widths 2 → 50 → 2 and tanh::

    f = mlp_dynamics((2, 50, 2), "tanh", input_layer=Cube())
    theta = f.init(np.random.default_rng(0))
    dz_dt = f(0.0, z, theta)
    a_z, a_theta, a_t = f.vjp(0.0, z, theta, a)
"""

from ..errors import InputError
from .activations import ELU, ReLU, Sigmoid, Softplus, Tanh
from .base import NetworkDynamics, Sequential
from .dense import ConcatLinear, Linear

ACTIVATIONS = {"tanh": Tanh, "softplus": Softplus, "sigmoid": Sigmoid, "relu": ReLU, "elu": ELU}


def activation_layer(activation):
    """A layer from a name in :data:`ACTIVATIONS`, or ``activation`` itself if it is a layer."""
    if isinstance(activation, str):
        if activation.lower() not in ACTIVATIONS:
            raise InputError(f"unknown activation {activation!r}; use one of "
                             f"{sorted(ACTIVATIONS)} or pass a layer object.")
        return ACTIVATIONS[activation.lower()]()
    if not all(hasattr(activation, m) for m in ("init", "forward", "vjp")):
        raise InputError(f"activation must be a name or a layer with init/forward/vjp; "
                         f"got {activation!r}.")
    return activation


def mlp(widths, activation="tanh", time_dependent=False):
    """Linear layers of ``widths`` with ``activation`` between them (none after the last).

    Parameters
    ----------
    widths : sequence of int
        ``(n_0, n_1, ..., n_L)``: layer i maps n_{i-1} → n_i; at least two entries.
    activation : str or layer
        One of ``tanh, softplus, sigmoid, relu, elu``, or a layer object (stateless ones
        can be shared between positions).
    time_dependent : bool
        Use :class:`ConcatLinear` (t as an extra input column) instead of :class:`Linear`.

    Returns
    -------
    Sequential
    """
    widths = tuple(widths)
    if len(widths) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                                  for n in widths):
        raise InputError(f"widths must be at least two positive integers, e.g. (2, 50, 2); "
                         f"got {widths!r}.")
    dense = ConcatLinear if time_dependent else Linear
    layers = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        if layers:
            layers.append(activation_layer(activation))
        layers.append(dense(n_in, n_out))
    return Sequential(*layers)


def mlp_dynamics(widths, activation="tanh", time_dependent=False, input_layer=None):
    """ODE dynamics ``f(t, z, theta) = MLP(z)`` with the layers' hand-derived ``f.vjp``.

    Parameters are those of :func:`mlp`, and

    input_layer : layer, optional
        Applied to z before the first linear layer, e.g. ``Cube()`` for the spiral demo.

    Returns
    -------
    NetworkDynamics
        ``theta = f.init(rng)`` gives a list with one parameter dict per layer.
    """
    net = mlp(widths, activation, time_dependent)
    if input_layer is not None:
        net = Sequential(activation_layer(input_layer), *net.layers)
    return NetworkDynamics(net)
