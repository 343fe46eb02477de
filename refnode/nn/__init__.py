"""Layers with hand-derived vector-Jacobian products (the contract is in :mod:`.base`)."""

from .base import NetworkDynamics, Sequential
from .activations import ELU, Cube, Elementwise, ReLU, Sigmoid, Softplus, Tanh, sigmoid
from .dense import ConcatLinear, ConcatSquashLinear, Linear
from .mlp import ACTIVATIONS, activation_layer, mlp, mlp_dynamics
