"""A recurrent network with a hand-derived VJP, backpropagation through time, and the RNN
baseline of the paper's Table 2.

The cell (an Elman RNN, as in the latent-ODE reference code's recognition network)::

    h_k = tanh(x_k W_xᵀ + h_{k-1} W_hᵀ + b)          x_k : (B, n_in),  h_k : (B, H)

Backpropagation through time is the chain rule run backwards over the steps: the
gradient reaching ``h_k`` is what the loss says about ``h_k`` directly plus what flows
back from ``h_{k+1}``; each step's VJP turns it into gradients for ``x_k``, ``h_{k-1}``
and the shared parameters, which are summed over the steps.

The baseline (:class:`RNNBaseline`) reads ``(x_j, t_{j+1} - t_j)``: the observation and
the time gap to the next one, and predicts ``x_{j+1}`` from its hidden state with a
linear read-out. To extrapolate it is rolled forward, feeding back its own predictions,
each step with the gap to the next time it is asked for.

Trained by teacher forcing alone it only ever reads true observations, yet extrapolation
feeds it its own predictions. *Scheduled sampling* (Bengio et al. 2015) closes that gap:
during training each input x_j (j >= 1) is replaced, with some probability, by the
model's own prediction of it, x̂_j = readout(h_{j-1}). The fed-back prediction is treated
as a constant (no gradient flows through the choice or the value), so backpropagation
through time is unchanged: it runs over the inputs the forward pass actually used.
"""

import numpy as np

from ..backend import array_module, to_float
from ..errors import InputError
from ..nn import Linear
from ..nn.dense import uniform_init
from ..params import tree_add, tree_zeros_like


class RNNCell:
    """h_new = tanh(x W_xᵀ + h W_hᵀ + b); parameters W_x (H, n_in), W_h (H, H), b (H,).

    Initialised like PyTorch's ``nn.RNN``: every entry uniform on ±1/sqrt(H).
    """

    def __init__(self, n_in, n_hidden):
        if not all(isinstance(n, int) and n > 0 for n in (n_in, n_hidden)):
            raise InputError(f"RNNCell needs positive integer sizes, got {n_in!r}, {n_hidden!r}.")
        self.n_in, self.n_hidden = n_in, n_hidden

    def init(self, rng, dtype=np.float64):
        H = self.n_hidden
        return {"W_x": uniform_init(rng, H, (H, self.n_in), dtype),
                "W_h": uniform_init(rng, H, (H, H), dtype),
                "b": uniform_init(rng, H, (H,), dtype)}

    def forward(self, theta, x, h):
        """x : (B, n_in), h : (B, H) -> h_new : (B, H); cache = (x, h, h_new)."""
        xp = array_module(x, h, theta["W_x"])
        pre = xp.matmul(x, xp.transpose(theta["W_x"])) + xp.matmul(h, xp.transpose(theta["W_h"]))
        h_new = xp.tanh(pre + theta["b"])
        return h_new, (x, h, h_new)

    def vjp(self, theta, cache, g):
        """g : (B, H) = ∂L/∂h_new.  With g_pre = g ⊙ (1 − h_new²):

        g_x = g_pre W_x,   g_h = g_pre W_h,
        g_W_x = g_preᵀ x,  g_W_h = g_preᵀ h,  g_b = Σ_batch g_pre.
        """
        x, h, h_new = cache
        xp = array_module(g, x, theta["W_x"])
        g_pre = g * (1.0 - h_new * h_new)
        g_theta = {"W_x": xp.matmul(xp.transpose(g_pre), x),
                   "W_h": xp.matmul(xp.transpose(g_pre), h),
                   "b": xp.sum(g_pre, axis=0)}
        return xp.matmul(g_pre, theta["W_x"]), xp.matmul(g_pre, theta["W_h"]), g_theta


def rnn_forward(cell, theta, inputs, h0=None):
    """Run ``cell`` over ``inputs`` : (T, B, n_in) from ``h0`` (zeros by default).

    Returns
    -------
    hs : (T, B, H)
        The hidden state after every step.
    caches : list of T caches, for :func:`rnn_vjp`.
    """
    xp = array_module(inputs, theta, h0)
    h = xp.zeros((inputs.shape[1], cell.n_hidden)) if h0 is None else h0
    hs, caches = [], []
    for x in inputs:
        h, cache = cell.forward(theta, x, h)
        hs.append(h)
        caches.append(cache)
    return xp.stack(hs), caches


def rnn_vjp(cell, theta, caches, g_hs):
    """Backpropagation through time.

    Parameters
    ----------
    g_hs : (T, B, H)
        ∂L/∂h_k for every step k (as the loss sees each hidden state directly).

    Returns
    -------
    g_inputs : (T, B, n_in)
    g_h0 : (B, H)
    g_theta : dict like theta, summed over steps and batch
    """
    xp = array_module(g_hs)
    g_h = xp.zeros_like(g_hs[0])
    g_theta = tree_zeros_like(theta)
    g_inputs = [None] * len(caches)
    for k in reversed(range(len(caches))):
        g_h = g_h + g_hs[k]  # direct gradient + what flowed back from step k + 1
        g_inputs[k], g_h, g_theta_k = cell.vjp(theta, caches[k], g_h)
        g_theta = tree_add(g_theta, g_theta_k)
    return xp.stack(g_inputs), g_h, g_theta


def gap_inputs(x, t):
    """Baseline inputs ``(x_j, t_{j+1} − t_j)`` for j < n − 1 : (n − 1, B, d + 1), sequence first.

    x : (B, n, d) observations at times t : (B, n).
    """
    xp = array_module(x)
    gaps = xp.diff(t, axis=1)[:, :, None]
    return xp.transpose(xp.concatenate([x[:, :-1], gaps], axis=2), (1, 0, 2))


class RNNBaseline:
    """Next-observation RNN: ``x̂_{j+1} = readout(h_j)``, ``h_j = cell((x_j, Δt_j), h_{j−1})``.

    Trained by the mean squared error of the one-step predictions (Gaussian likelihood
    with a fixed noise, up to constants). ``theta = {"cell": ..., "readout": ...}``.
    """

    def __init__(self, obs_dim=2, n_hidden=25):
        self.obs_dim = obs_dim
        self.cell = RNNCell(obs_dim + 1, n_hidden)
        self.readout = Linear(n_hidden, obs_dim)

    def init(self, rng, dtype=np.float64):
        return {"cell": self.cell.init(rng, dtype), "readout": self.readout.init(rng, dtype)}

    def loss(self, theta, x, t):
        """Mean squared one-step error over x[:, 1:] (traceable by autograd)."""
        hs, _ = rnn_forward(self.cell, theta["cell"], gap_inputs(x, t))
        pred = self.readout.forward(theta["readout"], 0.0, hs)[0]
        xp = array_module(pred)
        return xp.mean((pred - xp.transpose(x[:, 1:], (1, 0, 2))) ** 2)

    def loss_and_grad(self, theta, x, t, feed_back=None):
        """The loss and its hand-derived gradient (read-out VJP, then BPTT).

        feed_back : (n − 1, B) bool NumPy array (host), optional
            Scheduled sampling: where ``feed_back[j, b]`` (j >= 1) is True, step j reads
            the model's own prediction of ``x_j`` instead of ``x_j`` (a constant for the
            gradient). None or all False is teacher forcing, the plain :meth:`loss`.
        """
        xp = array_module(x)
        hs, caches = self.run_inputs(theta, gap_inputs(x, t), feed_back)
        pred, readout_cache = self.readout.forward(theta["readout"], 0.0, hs)
        residual = pred - xp.transpose(x[:, 1:], (1, 0, 2))
        loss = xp.mean(residual ** 2)
        g_hs, g_readout, _ = self.readout.vjp(theta["readout"], readout_cache,
                                              2.0 * residual / residual.size)
        _, _, g_cell = rnn_vjp(self.cell, theta["cell"], caches, g_hs)
        return loss, {"cell": g_cell, "readout": g_readout}

    def run_inputs(self, theta, inputs, feed_back=None):
        """The cell over inputs (T, B, d + 1), optionally feeding back predictions.

        Returns the hidden states (T, B, H) and the caches of :func:`rnn_forward`; each
        cache holds the input the step really read.
        """
        if feed_back is None:
            return rnn_forward(self.cell, theta["cell"], inputs)
        if feed_back.shape != inputs.shape[:2]:
            raise InputError(f"feed_back must have shape {inputs.shape[:2]}, got {feed_back.shape}.")
        xp = array_module(inputs)
        h = xp.zeros((inputs.shape[1], self.cell.n_hidden))
        hs, caches, d = [], [], self.obs_dim
        for j, u in enumerate(inputs):
            if j > 0 and feed_back[j].any():
                own = self.readout.forward(theta["readout"], 0.0, h)[0]  # x̂_j from h_{j-1}
                rows = xp.asarray(feed_back[j])           # host coins -> the inputs' device
                u = u.copy()
                u[rows, :d] = own[rows]
            h, cache = self.cell.forward(theta["cell"], u, h)
            hs.append(h)
            caches.append(cache)
        return xp.stack(hs), caches

    def extrapolate(self, theta, x, t, t_future):
        """Read the observations, then roll forward feeding back predictions.

        x : (B, n, d) at times t : (B, n); t_future : (M,) later times shared by the batch.
        Returns the predictions (B, M, d) at ``t_future``.
        """
        xp = array_module(x)
        if np.asarray(t_future)[0] <= to_float(xp.max(t)):
            raise InputError("t_future must lie after every observation time.")
        hs, _ = rnn_forward(self.cell, theta["cell"], gap_inputs(x, t))
        h = hs[-1] if len(hs) else xp.zeros((x.shape[0], self.cell.n_hidden))
        x_last, t_last = x[:, -1], t[:, -1]
        preds = []
        for t_next in t_future:
            gap = (t_next - t_last)[:, None]
            h, _ = self.cell.forward(theta["cell"], xp.concatenate([x_last, gap], axis=1), h)
            x_last = self.readout.forward(theta["readout"], 0.0, h)[0]
            t_last = xp.full_like(t_last, t_next)
            preds.append(x_last)
        return xp.stack(preds, axis=1)
