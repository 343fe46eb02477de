"""The figures of the CNF experiment (paper Figures 4 and 5), from what
:mod:`refnode.experiments.cnf` returns; each function writes one PNG atomically and
returns its path."""

import numpy as np

from ..data import toy2d
from .common import save_figure

#: Figures show [-4, 4]², the window of Rezende & Mohamed's Figure 3.
PLOT_LIMIT = 4.0
#: The fractions of the learned end time T at which Figure 5 shows the samples
#: (refnode.experiments.cnf samples its trajectories at these).
TIME_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _histogram(ax, z, bins=100):
    edges = np.linspace(-PLOT_LIMIT, PLOT_LIMIT, bins + 1)
    counts, _, _ = np.histogram2d(z[:, 0], z[:, 1], bins=(edges, edges))
    ax.imshow(counts.T, origin="lower", extent=[-PLOT_LIMIT, PLOT_LIMIT] * 2, cmap="viridis")


def _target_image(ax, target, n=200):
    grid = np.linspace(-PLOT_LIMIT, PLOT_LIMIT, n)
    z = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    density = np.exp(toy2d.target_log_density(target)(z)).reshape(n, n)
    ax.imshow(density, origin="lower", extent=[-PLOT_LIMIT, PLOT_LIMIT] * 2, cmap="viridis")


def plot_density_matching(cfg, samples, path):
    """Rows: targets; columns: the target, NF K = sizes, CNF M = sizes (as Figure 4)."""
    plt = _pyplot()
    columns = [("target", None)] + [("planar_nf", k) for k in cfg["sizes"]] \
        + [("planar_cnf", m) for m in cfg["sizes"]]
    fig, axes = plt.subplots(len(cfg["targets"]), len(columns), squeeze=False,
                             figsize=(1.6 * len(columns), 1.6 * len(cfg["targets"])))
    for row, target in enumerate(cfg["targets"]):
        for col, (model, size) in enumerate(columns):
            ax = axes[row, col]
            if model == "target":
                _target_image(ax, target)
            else:
                _histogram(ax, samples[(model, size, target)])
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title("target" if size is None else
                             f"{'NF K' if model == 'planar_nf' else 'CNF M'}={size}", fontsize=9)
        axes[row, 0].set_ylabel(target.upper())
    return save_figure(fig, path)


def plot_transformation(trajectories, path):
    """Rows: data sets; columns: samples at t = fraction·T, then the data (as Figure 5)."""
    plt = _pyplot()
    fractions = TIME_FRACTIONS
    fig, axes = plt.subplots(len(trajectories), len(fractions) + 1, squeeze=False,
                             figsize=(2.0 * (len(fractions) + 1), 2.0 * len(trajectories)))
    for row, (name, (states, T, data)) in enumerate(trajectories.items()):
        for col, fraction in enumerate(fractions):
            _histogram(axes[row, col], states[col], bins=80)
            axes[row, col].set_title(f"t = {fraction * T:.2f}", fontsize=9)
        _histogram(axes[row, -1], data, bins=80)
        axes[row, -1].set_title("data", fontsize=9)
        axes[row, 0].set_ylabel(name.replace("_", " "))
        for ax in axes[row]:
            ax.set_xticks([]), ax.set_yticks([])
    return save_figure(fig, path)


def plot_nll_curves(records, path, window=1.0):
    """Held-out NLL against iterations (left) and training seconds (right), one row per
    data set, one colour per model, one line per seed; logarithmic x from the first
    evaluation, y from the lowest NLL of the row to ``window`` nats above it (the settled
    part: an untrained NF starts some 20 nats higher)."""
    plt = _pyplot()
    data_sets = list(dict.fromkeys(r["data"] for r in records))
    models = list(dict.fromkeys(r["model"] for r in records))
    colours = dict(zip(models, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    fig, axes = plt.subplots(len(data_sets), 2, figsize=(10, 3.6 * len(data_sets)),
                             squeeze=False)
    for row, name in enumerate(data_sets):
        rows = [r for r in records if r["data"] == name]
        low = min(r["best_nll"] for r in rows)
        for r in rows:
            curve = np.asarray(r["curve"])[1:]          # iteration 0 has no place on a log axis
            first = r["seed"] == min(q["seed"] for q in records if q["model"] == r["model"])
            for col in (0, 1):
                axes[row, col].plot(curve[:, col], curve[:, 2], color=colours[r["model"]],
                                    lw=1.2, label=r["model"] if first else None)
        for col, xlabel in enumerate(("iteration", "training time (s)")):
            ax = axes[row, col]
            ax.set_xscale("log")
            ax.set_ylim(low - 0.1 * window, low + window)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("held-out NLL (nats)")
            ax.set_title(name)
            ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
