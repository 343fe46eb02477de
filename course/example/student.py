"""Exercise: the VJP of ConcatLinear (topic: vjp).

ConcatLinear appends the time t to the input as one more column,

    y = [x, t] Wᵀ + b,     x : (B, n_in),  W : (n_out, n_in + 1),  b : (n_out,),

so that a neural ODE's dynamics can depend on t. ``forward`` is given. Write ``vjp``:
given g = ∂L/∂y of shape (B, n_out), return

    g_x     = ∂L/∂x                              shape (B, n_in)
    g_theta = {"W": ∂L/∂W, "b": ∂L/∂b}           shapes (n_out, n_in + 1), (n_out,)
    g_t     = ∂L/∂t                              a scalar

summed over the batch where the parameter (or t) is shared by every sample.
Grade it:  python -m pytest course/example
"""

import numpy as np


def forward(theta, t, x):
    """y = x W[:, :-1]ᵀ + t W[:, -1] + b; cache = (x, t)."""
    W = theta["W"]
    return x @ W[:, :-1].T + t * W[:, -1] + theta["b"], (x, t)


def vjp(self, theta, cache, g):
    """Your code here: return (g_x, {"W": g_W, "b": g_b}, g_t).

    ``self`` is the layer (``self.n_in``, ``self.n_out``); ``cache`` is what
    ``forward`` returned, (x, t). Do not write into arrays in place.
    """
    raise NotImplementedError("implement the VJP of ConcatLinear")
