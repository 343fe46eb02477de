"""Figures of ``refnode reproduce latent``: per-seed RMSE, test windows, a latent path.

Every figure is written atomically (a temporary file in the same directory, then
``os.replace``), so an interrupted run never leaves a half-written PNG.
"""

import os

import numpy as np

from ..models.latent_ode import make_batch

DPI = 110
LABELS = {"rnn": "RNN (teacher forcing)", "rnn_ss": "RNN (scheduled sampling)",
          "latent_ode": "latent ODE"}
COLORS = {"rnn": "C3", "rnn_ss": "C1", "latent_ode": "C0"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_seeds(records, paper, path):
    """Per-seed RMSE (dots), the mean (bar) and the paper's number (star) per model and count."""
    plt = _pyplot()
    models = [m for m in LABELS if any(r["model"] == m for r in records)]
    counts = sorted({r["n_obs"] for r in records})
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    width = 0.8 / len(models)
    for k, name in enumerate(models):
        for c, n_obs in enumerate(counts):
            x = c + (k - (len(models) - 1) / 2) * width
            values = [r["rmse"] for r in records if r["model"] == name and r["n_obs"] == n_obs]
            ax.bar(x, np.mean(values), width * 0.9, color=COLORS[name], alpha=0.35,
                   label=LABELS[name] + " (mean)" if c == 0 else None)
            ax.plot(np.full(len(values), x), values, "o", color=COLORS[name], ms=4,
                    label="per seed" if c == 0 and k == 0 else None)
            reported = paper.get(name, {}).get(n_obs)
            if reported is not None:
                ax.plot(x, reported, "*", color="k", ms=9,
                        label="paper, Table 2" if c == 0 and k == len(models) - 1 else None)
    ax.set_xticks(range(len(counts)), [f"{n} observations" for n in counts])
    ax.set_ylabel("predictive RMSE (next 100 points)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title(f"{len({r['seed'] for r in records})} seeds")
    save(fig, path)


def plot_spirals(fig_data, path):
    """Test windows: truth, observations, latent ODE fit + extrapolation, RNN extrapolations."""
    plt = _pyplot()
    data, test = fig_data["data"], fig_data["test"]
    counts = sorted({n for _, n in fig_data["trained"]})
    examples = [test.start, test.start + 1]
    fig, axes = plt.subplots(len(examples), len(counts), figsize=(4 * len(counts), 8),
                             squeeze=False)
    t_all = np.concatenate([data.t, data.t_future])
    for col, n_obs in enumerate(counts):
        sub = fig_data["subsamples"][n_obs]
        for row, i in enumerate(examples):
            ax = axes[row, col]
            ax.plot(*np.concatenate([data.z_true[i], data.z_future[i]]).T, color="0.7", lw=3,
                    label="true")
            ax.plot(*sub.z[i].T, "k.", ms=4, label="observed")
            for name in LABELS:
                if (name, n_obs) not in fig_data["trained"]:
                    continue
                model, theta, pred = fig_data["trained"][name, n_obs]
                if name == "latent_ode":
                    batch = make_batch(sub.z[i:i + 1], sub.t[i:i + 1], 0.0)
                    fit = model.predict(theta, batch.encoder_inputs, t_all)[:len(data.t), 0]
                    ax.plot(*fit.T, COLORS[name], lw=1, label="latent ODE (fit)")
                ax.plot(*pred[i - test.start].T, "--", color=COLORS[name], label=LABELS[name])
            ax.set_title(f"test window {i - test.start}, {n_obs} observations")
            ax.set_aspect("equal")
    axes[0, 0].legend(fontsize=6, loc="best")
    save(fig, path)


def plot_interpolation(fig_data, path):
    """A latent trajectory on a fine time grid, between sparse observations and beyond."""
    plt = _pyplot()
    data, test = fig_data["data"], fig_data["test"]
    n_obs = min(n for m, n in fig_data["trained"] if m == "latent_ode")
    model, theta, _ = fig_data["trained"]["latent_ode", n_obs]
    sub = fig_data["subsamples"][n_obs]
    i = test.start
    batch = make_batch(sub.z[i:i + 1], sub.t[i:i + 1], 0.0)
    mu, _, _ = model.encode(theta, batch.encoder_inputs)
    t_fine = np.linspace(0.0, data.t_future[-1], 400)
    z = model.latent_trajectory(theta, mu, t_fine)[:, 0]
    x = model.decode_latent(theta, z)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for k in range(z.shape[1]):
        left.plot(t_fine, z[:, k], label=f"$z_{k + 1}(t)$")
    for t_j in sub.t[i]:
        left.axvline(t_j, color="0.85", lw=0.6, zorder=0)
    left.axvline(data.t_future[0], color="k", ls=":", label="extrapolation starts")
    left.set_xlabel("t (window-relative)")
    left.set_title(f"latent z(t); grey: the {n_obs} observation times")
    left.legend(fontsize=7)
    right.plot(*np.concatenate([data.z_true[i], data.z_future[i]]).T, color="0.7", lw=3,
               label="true")
    right.plot(*sub.z[i].T, "k.", label="observed")
    right.plot(*x.T, "C0", label="decoded z(t), fine grid")
    right.set_aspect("equal")
    right.legend(fontsize=7)
    right.set_title("decoded z(t) on a fine time grid")
    save(fig, path)


def save(fig, path):
    """Save atomically: a temporary file in the same directory, then os.replace."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, ".tmp-" + os.path.basename(path))
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    os.replace(tmp, path)
    _pyplot().close(fig)
