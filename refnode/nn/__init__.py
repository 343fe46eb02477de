"""Layers with hand-derived vector-Jacobian products (the contract is in :mod:`.base`)."""

from .base import NetworkDynamics, Sequential
from .activations import ELU, Cube, Elementwise, ReLU, Sigmoid, Softplus, Tanh, sigmoid
from .dense import ConcatLinear, ConcatSquashLinear, Linear
from .mlp import ACTIVATIONS, activation_layer, mlp, mlp_dynamics
from .conv import ConcatConv2d, Conv2d, col2im, im2col
from .norm import GroupNorm
from .pool import Flatten, GlobalAvgPool2d
from .losses import accuracy, log_softmax, mean_squared_error, one_hot, softmax_cross_entropy
