"""Work-precision figures from the records of :mod:`.forward` and :mod:`.gradients`."""

import os

from ..experiments.common import save_figure

#: Line styles: SciPy dashed, so that refnode's dopri5 drawn over SciPy's RK45 (the same
#: steps) still shows both.
STYLE = {"refnode": dict(linestyle="-", marker="o"), "scipy": dict(linestyle="--", marker="s")}


#: One colour per gradient, the same in every panel.
GRADIENT_COLORS = {"adjoint": "C0", "adjoint seminorm": "C1", "discrete": "C2", "autograd": "C3",
                   "torchdiffeq odeint_adjoint": "C4"}


def _curves(records, key):
    """{label: [(x, error), ...]} from successful records, grouped by ``key(record)``."""
    curves = {}
    for r in records:
        if "error" in r:
            curves.setdefault(key(r), []).append(r)
    return curves


def forward_figure(records, path):
    """One row per problem: error at t1 against NFE (left) and against seconds (right)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    problems = list(dict.fromkeys(r["problem"] for r in records))
    fig, axes = plt.subplots(len(problems), 2, figsize=(11, 3.6 * len(problems)), squeeze=False)
    for row, problem in zip(axes, problems):
        curves = _curves([r for r in records if r["problem"] == problem],
                         lambda r: (r["library"], r["method"]))
        for (library, method), rs in curves.items():
            label = method if library == "refnode" else f"SciPy {method}"
            for ax, x in zip(row, ("nfe", "seconds")):
                ax.loglog([r[x] for r in rs], [max(r["error"], 1e-17) for r in rs], label=label,
                          markersize=3, **STYLE[library])
        for ax, x in zip(row, ("function evaluations", "wall time (s)")):
            ax.set(xlabel=x, ylabel="max error at t1", title=problem)
            ax.grid(True, which="major", alpha=0.3)
        row[1].legend(fontsize=7, ncol=2)
    return save_figure(fig, path, dpi=110)


def gradient_figure(records, path):
    """One panel per problem: relative gradient error against seconds, one line per gradient."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    problems = list(dict.fromkeys(r["problem"] for r in records if "error" in r))
    fig, axes = plt.subplots(1, len(problems), figsize=(5.2 * len(problems), 3.8), squeeze=False)
    for ax, problem in zip(axes[0], problems):
        curves = _curves([r for r in records if r["problem"] == problem], lambda r: r["gradient"])
        for name, rs in curves.items():
            ax.loglog([r["seconds"] for r in rs], [max(r["error"], 1e-17) for r in rs],
                      marker="o", markersize=3, label=name, color=GRADIENT_COLORS.get(name))
        ax.set(xlabel="wall time (s)", ylabel="relative gradient error", title=problem)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=110)


def write_figures(result, out):
    """Both figures into directory ``out``; returns their paths."""
    os.makedirs(out, exist_ok=True)
    forward = [r for r in result["records"] if r["part"] == "forward"]
    gradient = [r for r in result["records"] if r["part"] == "gradient"]
    return [forward_figure(forward, os.path.join(out, "workprecision_forward.png")),
            gradient_figure(gradient, os.path.join(out, "workprecision_gradients.png"))]
