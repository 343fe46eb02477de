"""Shared vs independent steps on a batch with one fast sample (CPU, NumPy).

The batch problem of bench_solvers.py — f(z) = tanh(z W1ᵀ + b1) W2ᵀ + b2, D = 32, H = 64,
batch 512, dopri5 at rtol = atol = 1e-6 on [0, 1] — with one sample's dynamics scaled by
10 (that sample is 10x faster; the speed is a 33rd, constant state column). Shared mode takes the whole batch's steps at the pace the
batch RMS norm allows; independent mode lets every sample take its own.

Targets: independent NFE per sample (mean) <= 0.5x shared, wall time <= 1.0x shared.
A third row runs shared steps under the norm that holds *every* sample to the tolerance
(the largest per-sample RMS ratio), which is what independent mode guarantees; the
default shared norm is one RMS over the batch, in which the fast sample's error is
diluted by the 511 easy ones.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_independent.py

``--outputs N`` asks for N equally spaced output times on [0, 1] instead of the two ends:
the cost of the dense output of many times in both modes.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refnode as rn  # noqa: E402
from refnode.backend import array_module, to_float  # noqa: E402
from refnode.step_size import error_ratio  # noqa: E402
from common import best_time, fmt_ratio, fmt_seconds, markdown_table  # noqa: E402

#: Speed-up of the one fast sample.
FAST_FACTOR = 10.0


class SpeedScaled:
    """dx/dt = ω · MLP(x), dω/dt = 0: the last state column ω is each sample's speed.

    The speed rides in the state (not in a closure over a (B, 1) array) because
    independent mode drops finished samples from the working batch: f must treat rows
    independently. The extra column has no error, like a constant input.
    """

    def __init__(self, net):
        self.net = net

    def __call__(self, t, z, theta):
        y = self.net(t, z[..., :-1], theta)
        return np.concatenate([z[..., -1:] * y, 0.0 * z[..., -1:]], axis=-1)


def problem(dim=32, hidden=64, batch=512, seed=0):
    """(f, theta, z0): the MLP batch with sample 0 running FAST_FACTOR times faster."""
    rng = np.random.default_rng(seed)
    net = rn.nn.mlp_dynamics((dim, hidden, dim), "tanh")
    theta = net.init(rng)
    speed = np.ones((batch, 1))
    speed[0] = FAST_FACTOR
    return SpeedScaled(net), theta, np.concatenate([rng.normal(size=(batch, dim)), speed], axis=1)


def worst_sample_norm(rtol, atol):
    """Shared steps that hold every sample to the tolerance: the largest per-sample RMS."""
    return lambda e, y0, y1: to_float(array_module(e).max(
        error_ratio(e, y0, y1, rtol, atol, per_sample=True)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--outputs", type=int, default=2, help="output times on [0, 1]")
    args = parser.parse_args(argv)
    f, theta, z0 = problem(batch=args.batch)
    t = np.linspace(0.0, 1.0, max(2, args.outputs))
    results = {}
    for batch in ("shared", "independent"):
        results[batch] = best_time(lambda: rn.solve(f, z0, t, theta, rtol=1e-6, atol=1e-6,
                                                    batch=batch), repeats=args.repeats)
    results["shared-max"] = best_time(lambda: rn.solve(f, z0, t, theta, rtol=1e-6, atol=1e-6,
                                                       control=rn.StepControl(
                                                           norm=worst_sample_norm(1e-6, 1e-6))),
                                      repeats=args.repeats)
    (t_sh, sol_sh), (t_in, sol_in) = results["shared"], results["independent"]
    t_mx, sol_mx = results["shared-max"]
    gap = np.abs(sol_in.z[-1] - sol_sh.z[-1]).max(axis=1)   # per sample, at t = 1
    nfe_sh = sol_sh.stats["nfe"]
    nfe_in = sol_in.stats["nfe"]
    rows = [
        ["shared", nfe_sh, nfe_sh, nfe_sh, fmt_seconds(t_sh), "1.00x", "1.00x"],
        ["independent", f"{nfe_in.mean():.1f}", int(nfe_in[1:].max()), int(nfe_in[0]),
         fmt_seconds(t_in), fmt_ratio(nfe_in.mean() / nfe_sh), fmt_ratio(t_in / t_sh)],
        ["shared, every sample to tol", sol_mx.stats["nfe"], "", "", fmt_seconds(t_mx),
         fmt_ratio(sol_mx.stats["nfe"] / nfe_sh), fmt_ratio(t_mx / t_sh)],
    ]
    print(f"MLP D=32 H=64, batch {args.batch}, sample 0 x{FAST_FACTOR:g}, dopri5 rtol=atol=1e-6, "
          f"{len(t)} output times, best of {args.repeats}; independent batched f calls: "
          f"{sol_in.stats['batch_nfe']}")
    print(markdown_table(["mode", "NFE/sample (mean)", "NFE easy (max)", "NFE fast",
                          "wall", "NFE ratio", "wall ratio"], rows))
    print(f"|z_independent - z_shared| at t=1: fast sample {gap[0]:.1e}, easy samples <= "
          f"{gap[1:].max():.1e} (the batch RMS norm dilutes the fast sample's error 1/sqrt(B))")
    print(f"targets: NFE ratio <= 0.50x: {'met' if nfe_in.mean() <= 0.5 * nfe_sh else 'MISSED'}; "
          f"wall ratio <= 1.00x: {'met' if t_in <= t_sh else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
