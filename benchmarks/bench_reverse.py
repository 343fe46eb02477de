"""Where the adjoint's backward NFE go with many output times, with the carried step.

    OMP_NUM_THREADS=1 python benchmarks/bench_reverse.py

Algorithm 2 runs one reverse solve per output interval. Each used to start from Hairer's
starting-step estimate (2 extra evaluations of the augmented dynamics, and a cautious
first step that takes several steps to grow); now each interval starts with the step the
previous one ended on (``Solution.next_step``, :func:`refnode.adjoint.solve_back`).
Printed for an MLP field at three tolerances: backward NFE, rejected steps, the
gradient's largest relative error against a tight adjoint (rtol = atol = 1e-12), and the
time of the backward pass (benchmarks/README.md has the NFE before the carry).
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import refnode as rn  # noqa: E402
from refnode.nn import mlp_dynamics  # noqa: E402
from refnode.params import tree_leaves  # noqa: E402


def main():
    rng = np.random.default_rng(0)
    print("| D | B | outputs | tol | backward NFE | rejected | gradient error | backward time |")
    print("|---|---|---|---|---|---|---|---|")
    for D, H, B, N in [(2, 50, 1, 100), (4, 20, 16, 100), (2, 50, 1, 10)]:
        f = mlp_dynamics((D, H, D), "tanh")
        theta = f.init(rng)
        z0, t = rng.normal(size=(B, D)), np.linspace(0, 5, N)
        g = rng.normal(size=(N, B, D))
        z, vjp = rn.odeint_vjp(f, z0, t, theta, rtol=1e-12, atol=1e-12)
        reference = tree_leaves(vjp(g))
        for tol in (1e-4, 1e-6, 1e-8):
            z, vjp = rn.odeint_vjp(f, z0, t, theta, rtol=tol, atol=tol)
            start = time.perf_counter()
            out = tree_leaves(vjp(g))
            elapsed = time.perf_counter() - start
            error = max(np.max(np.abs(a - b)) / np.max(np.abs(b)) for a, b in zip(out, reference))
            stats = vjp.backward_stats
            print(f"| {D} | {B} | {N} | {tol:g} | {stats['nfe']} | "
                  f"{stats['n_rejected']} | {error:.2e} | {elapsed * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
