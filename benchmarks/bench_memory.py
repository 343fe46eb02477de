"""Memory of one gradient: the adjoint is O(1) in the number of steps, the others O(L).

    python benchmarks/bench_memory.py [--out DIR] [--horizons 2 20 200]

The problem: a batch of 256 points on a rotation, dz/dt = z Aᵀ with A = 2π [[0, 1],
[−1, 0]] (refnode.reference.LinearDynamics), dopri5 at rtol = 1e-6, atol = 1e-8, t = [0,
T]. The rotation never settles, so the number of steps grows in proportion to T: the
horizons 2, 20, 200 take ~100x more steps from first to last.

Measured: the tracemalloc peak of one gradient computation (forward solve plus VJP of
L = ⟨g, z⟩) above what was allocated before it — the *extra* memory the gradient needs.
NumPy reports its array buffers to tracemalloc, so this counts the stored states and
stages. Target: the adjoint's peak at the longest horizon <= 1.2x its peak at the
shortest, while "discrete" (every step's state) and "autograd" (the whole tape) grow
linearly. Plot: ``memory.png`` (steps on x, peak MB on y, one line per method) in ``--out``,
by default the run directory runs/bench_memory; ``--out figures`` replaces the committed
figure.
"""

import argparse
import gc
import os
import sys
import tempfile
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import refnode as rn  # noqa: E402
from common import markdown_table  # noqa: E402
from refnode.reference import LinearDynamics  # noqa: E402

BATCH, RTOL, ATOL = 256, 1e-6, 1e-8
A = 2 * np.pi * np.array([[0.0, 1.0], [-1.0, 0.0]])
FLAT_TARGET = 1.2


def peak_of_one_gradient(gradient, horizon):
    """(extra peak bytes, forward steps) of odeint_vjp + vjp for one horizon."""
    rng = np.random.default_rng(0)
    z0, t = rng.standard_normal((BATCH, 2)), np.array([0.0, horizon])
    g = rng.standard_normal((2, BATCH, 2))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    z, vjp = rn.odeint_vjp(LinearDynamics(), z0, t, A, rtol=RTOL, atol=ATOL, gradient=gradient)
    vjp(g)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return peak, vjp.forward_stats["n_accepted"]


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for gradient, rows in results.items():
        steps, peaks = zip(*[(s, p / 2**20) for s, p in rows])
        ax.plot(steps, peaks, "o-", label=gradient)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("forward steps")
    ax.set_ylabel("peak extra memory of one gradient (MB)")
    ax.set_title(f"dopri5, rotation, batch {BATCH}")
    ax.legend()
    fig.tight_layout()
    directory = os.path.dirname(path) or "."
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".png", delete=False) as tmp:
        fig.savefig(tmp.name, dpi=120)
    os.replace(tmp.name, path)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--horizons", type=float, nargs="+", default=[2.0, 20.0, 200.0])
    parser.add_argument("--out", default=os.path.join("runs", "bench_memory"),
                        help="directory of memory.png (figures: the committed figure)")
    args = parser.parse_args(argv)
    results = {}
    for gradient in rn.GRADIENTS:
        results[gradient] = [peak_of_one_gradient(gradient, T)[::-1] for T in args.horizons]
    headers = ["T", "forward steps"] + [f"{g} peak" for g in rn.GRADIENTS]
    rows = [[f"{T:g}", results["adjoint"][i][0]]
            + [f"{results[g][i][1] / 2**20:.3f} MB" for g in rn.GRADIENTS]
            for i, T in enumerate(args.horizons)]
    print(markdown_table(headers, rows))
    for gradient, rows in results.items():
        growth = rows[-1][1] / rows[0][1]
        print(f"{gradient}: peak x{growth:.2f} for steps x{rows[-1][0] / rows[0][0]:.0f}")
    growth = results["adjoint"][-1][1] / results["adjoint"][0][1]
    print(f"target adjoint growth <= {FLAT_TARGET}x: {growth:.2f}x, "
          f"{'met' if growth <= FLAT_TARGET else 'MISSED'}")
    os.makedirs(args.out, exist_ok=True)
    plot(results, os.path.join(args.out, "memory.png"))
    print(f"wrote {os.path.join(args.out, 'memory.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
