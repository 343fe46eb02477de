"""Memory of one training step, measured with tracemalloc, and the Table 1 memory figure.

NumPy reports its array buffers to Python's tracemalloc, so the traced peak of a training
step is the largest amount of array memory alive at once: the cached activations the
backward pass needs, plus its temporaries.

* ODE-Net (continuous adjoint) keeps only z(t0) and z(t1) between the passes and rebuilds
  z(t) backwards: its memory stays flat as the solver takes more steps (tighter tolerance
  or a longer integration time) — the paper's O(1).
* RK-Net keeps what its backward pass needs from every step: O(L̃). refnode's discrete
  adjoint stores one state per step and recomputes the stages (a small slope); autograd's
  tape through the same steps keeps every stage's activations (a large one).
* ResNet keeps every block's activations: O(L) in its depth.
"""

import tracemalloc

import numpy as np

from ..models.odenet import build_model, ode_blocks
from ..nn import softmax_cross_entropy
from .common import save_figure

#: Bytes per megabyte in the reports (decimal MB).
MB = 1e6
#: Sweeps of the memory figure: tolerances and end times of ODE-Net, RK4 steps, ResNet depths.
ODENET_TOLERANCES = (1e-1, 1e-2, 1e-3, 1e-4)
ODENET_END_TIMES = (1.0, 2.0, 4.0, 8.0)
RKNET_STEP_COUNTS = (1, 2, 4, 8)
RESNET_DEPTHS = (1, 2, 4, 8)


def peak_step_memory(model, theta, x, labels):
    """Peak MB of one training step (forward, loss, VJP), and the forward caches.

    The caches let the caller read the ODE blocks' step counts afterwards.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    logits, caches = model.forward(theta, 0.0, x)
    _, g_logits = softmax_cross_entropy(logits, labels)
    model.vjp(theta, caches, g_logits)
    _, peak = tracemalloc.get_traced_memory()
    if not was_tracing:
        tracemalloc.stop()
    return (peak - base) / MB, caches


def _odenet_steps(model, theta, x, labels):
    """(peak MB, steps of the forward solve, accepted and rejected)."""
    peak, caches = peak_step_memory(model, theta, x, labels)
    (i, _), = ode_blocks(model)
    return peak, caches[i]["pullback"].forward_stats["n_steps"]


def memory_sweeps(x, labels, channels=64, seed=0):
    """Peak step memory against the number of solver steps or blocks, for each model.

    Returns
    -------
    dict
        ``{label: (steps list, MB list)}`` for "ODE-Net, tighter tol", "ODE-Net, longer t1",
        "RK-Net, discrete adjoint", "RK-Net, autograd tape" and "ResNet (blocks)".
    """
    rng = np.random.default_rng(seed)
    theta_ode = build_model("odenet", channels=channels).init(rng, x.dtype)
    sweeps = {"ODE-Net, tighter tol": ([], []), "ODE-Net, longer $t_1$": ([], [])}
    for tol in ODENET_TOLERANCES:
        model = build_model("odenet", channels=channels, rtol=tol, atol=tol)
        peak, steps = _odenet_steps(model, theta_ode, x, labels)
        sweeps["ODE-Net, tighter tol"][0].append(steps)
        sweeps["ODE-Net, tighter tol"][1].append(peak)
    for t1 in ODENET_END_TIMES:
        model = build_model("odenet", channels=channels)
        i, block = ode_blocks(model)[0]
        block.t1 = t1
        peak, steps = _odenet_steps(model, theta_ode, x, labels)
        sweeps["ODE-Net, longer $t_1$"][0].append(steps)
        sweeps["ODE-Net, longer $t_1$"][1].append(peak)
    sweeps["RK-Net, discrete adjoint"] = (list(RKNET_STEP_COUNTS), [
        peak_step_memory(build_model("rknet", channels=channels, n_steps=n), theta_ode, x, labels)[0]
        for n in RKNET_STEP_COUNTS])
    sweeps["RK-Net, autograd tape"] = (list(RKNET_STEP_COUNTS), [])
    for n in RKNET_STEP_COUNTS:
        model = build_model("rknet", channels=channels, n_steps=n)
        ode_blocks(model)[0][1].gradient = "autograd"       # backprop keeping every stage
        sweeps["RK-Net, autograd tape"][1].append(peak_step_memory(model, theta_ode, x, labels)[0])
    sweeps["ResNet (blocks)"] = (list(RESNET_DEPTHS), [])
    for depth in RESNET_DEPTHS:
        model = build_model("resnet", channels=channels, n_blocks=depth)
        theta = model.init(np.random.default_rng(seed), x.dtype)
        sweeps["ResNet (blocks)"][1].append(peak_step_memory(model, theta, x, labels)[0])
    return sweeps


def plot_memory(sweeps, path, batch_size):
    """Write the memory figure (peak MB against steps/blocks) to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (label, (steps, mb)), marker in zip(sweeps.items(), "osDv^"):
        ax.plot(steps, mb, marker=marker, label=label)
    ax.set_xlabel("solver steps $\\tilde L$ (ODE-Net, RK-Net) or residual blocks $L$ (ResNet)")
    ax.set_ylabel("peak memory of one training step (MB)")
    ax.set_title(f"Table 1 memory: O(1) adjoint vs O(L) backprop (batch {batch_size})")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path, dpi=120)
