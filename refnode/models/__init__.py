"""Models of the paper's experiments, built from :mod:`refnode.nn` layers.

* :mod:`~refnode.models.odenet` — Table 1 (§3, "Replacing residual networks"):
  ODE-Net, RK-Net, ResNet and the MLP baseline.
"""

from .odenet import (MODELS, PAPER_PARAMS, ODEBlock, ResBlock, build_model, count_parameters,
                     mlp, ode_blocks, ode_function, odenet, resnet, rknet)

__all__ = [
    "MODELS", "PAPER_PARAMS", "ODEBlock", "ResBlock", "build_model", "count_parameters",
    "mlp", "ode_blocks", "ode_function", "odenet", "resnet", "rknet",
]

# The latent ODE (§5, Table 2) and its RNN baseline.
from .latent_ode import LatentBatch, LatentODE, make_batch
from .rnn import RNNBaseline, RNNCell, rnn_forward, rnn_vjp

__all__ += ["LatentBatch", "LatentODE", "make_batch",
            "RNNBaseline", "RNNCell", "rnn_forward", "rnn_vjp"]

# Continuous normalizing flows (§4) and the planar-flow baseline (Rezende & Mohamed 2015).
from .cnf import CNFDynamics, PlanarField, augment
from .ffjord import ConcatSquashField, draw_noise
from .planar_flow import flow_forward, flow_vjp, init_planar_flow

__all__ += ["CNFDynamics", "ConcatSquashField", "PlanarField", "augment", "draw_noise",
            "flow_forward", "flow_vjp", "init_planar_flow"]
