"""Forward solvers: refnode's dopri5 against SciPy's RK45 and (if installed) torchdiffeq.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_solvers.py [--repeats N] [--profile] [--breakdown]

Three problems, dopri5 at rtol = atol = 1e-6 in float64:

* spiral: dz/dt = (z**3) @ A, A = [[-0.1, 2], [-2, -0.1]], z0 = [2, 0], 1000 outputs on [0, 25];
* mlp-small: f(z) = tanh(z W1ᵀ + b1) W2ᵀ + b2, D = 2, H = 50, batch 1, 100 outputs on [0, 10];
* mlp-batch: the same with D = 32, H = 64, batch 512.

Printed: wall times (best of N, same process), the ratios refnode / SciPy and refnode /
torchdiffeq, NFE of each, and the "solver overhead efficiency" NFE · t(f) / t(solve): the
fraction of the solve spent inside f (1.0 = a free solver). ``--breakdown`` splits each
solve into its Runge–Kutta steps (refnode's ``rk_step`` calls, f included) and everything
else, beside SciPy's solve without its evaluations of f.
"""

import argparse
import cProfile
import os
import pstats
import sys

import numpy as np
from scipy.integrate import solve_ivp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import refnode as rn  # noqa: E402
from refnode.dynamics import CheckedDynamics  # noqa: E402
from refnode.methods import DOPRI5  # noqa: E402
from refnode.rk_step import rk_step  # noqa: E402
from common import best_time, fmt_ratio, fmt_seconds, markdown_table  # noqa: E402

try:
    import torch
    import torchdiffeq
    # Same thread budget as NumPy's BLAS (set OMP_NUM_THREADS=1 for stable numbers).
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
except ImportError:  # optional: the torchdiffeq columns read n/a
    torch = torchdiffeq = None

RTOL = ATOL = 1e-6
SPIRAL_A = np.array([[-0.1, 2.0], [-2.0, -0.1]])


def spiral_problem():
    return dict(name="spiral", f=lambda t, z, theta: (z ** 3) @ theta, theta=SPIRAL_A,
                z0=np.array([2.0, 0.0]), t=np.linspace(0.0, 25.0, 1000))


def mlp_problem(name, D, H, batch, seed=0):
    rng = np.random.default_rng(seed)
    theta = (rng.standard_normal((H, D)) / np.sqrt(D), 0.1 * rng.standard_normal(H),
             rng.standard_normal((D, H)) / np.sqrt(H), 0.1 * rng.standard_normal(D))

    def f(t, z, theta):
        W1, b1, W2, b2 = theta
        return np.tanh(z @ W1.T + b1) @ W2.T + b2

    return dict(name=name, f=f, theta=theta, z0=rng.standard_normal((batch, D)),
                t=np.linspace(0.0, 10.0, 100))


def run_refnode(p):
    sol = rn.solve(p["f"], p["z0"], p["t"], p["theta"], method="dopri5", rtol=RTOL, atol=ATOL)
    return sol.z, sol.stats["nfe"]


def run_scipy(p):
    shape, f, theta = p["z0"].shape, p["f"], p["theta"]
    fun = lambda t, y: f(t, y.reshape(shape), theta).ravel()  # noqa: E731
    res = solve_ivp(fun, (p["t"][0], p["t"][-1]), p["z0"].ravel(), method="RK45",
                    t_eval=p["t"], rtol=RTOL, atol=ATOL)
    return res.y.T.reshape((len(p["t"]),) + shape), res.nfev


def run_torchdiffeq(p):
    calls = [0]
    if isinstance(p["theta"], tuple):
        W1, b1, W2, b2 = (torch.as_tensor(a) for a in p["theta"])
        f = lambda t, z: torch.tanh(z @ W1.T + b1) @ W2.T + b2  # noqa: E731
    else:
        A = torch.as_tensor(p["theta"])
        f = lambda t, z: (z ** 3) @ A  # noqa: E731

    def counted(t, z):
        calls[0] += 1
        return f(t, z)

    with torch.no_grad():
        z = torchdiffeq.odeint(counted, torch.as_tensor(p["z0"]), torch.as_tensor(p["t"]),
                               method="dopri5", rtol=RTOL, atol=ATOL)
    return z.numpy(), calls[0]


def measure(p, repeats):
    """Times, NFEs and answers of every available solver on problem ``p``."""
    row = {}
    for label, runner in (("refnode", run_refnode), ("scipy", run_scipy), ("torchdiffeq", run_torchdiffeq)):
        if label == "torchdiffeq" and torchdiffeq is None:
            continue
        seconds, (z, nfe) = best_time(lambda: runner(p), repeats)
        row[label] = dict(seconds=seconds, nfe=nfe, z=z)
    t_f, _ = best_time(lambda: p["f"](0.0, p["z0"], p["theta"]), repeats, number=200)
    row["t_f"] = t_f
    return row


def efficiency(row):
    """NFE · t(one f) / t(solve) for refnode: the fraction of the solve spent in f."""
    return row["refnode"]["nfe"] * row["t_f"] / row["refnode"]["seconds"]


def report(results):
    headers = ["problem", "refnode", "SciPy RK45", "ratio vs SciPy", "torchdiffeq",
               "ratio vs torchdiffeq", "NFE refnode / SciPy / torchdiffeq", "max abs diff vs SciPy",
               "efficiency"]
    rows = []
    for name, row in results.items():
        ours, sp, td = row["refnode"], row["scipy"], row.get("torchdiffeq")
        rows.append([
            name, fmt_seconds(ours["seconds"]), fmt_seconds(sp["seconds"]),
            fmt_ratio(ours["seconds"] / sp["seconds"]),
            fmt_seconds(td["seconds"]) if td else "n/a",
            fmt_ratio(ours["seconds"] / td["seconds"] if td else None),
            f"{ours['nfe']} / {sp['nfe']} / {td['nfe'] if td else 'n/a'}",
            f"{np.max(np.abs(ours['z'] - sp['z'])):.1e}",
            f"{efficiency(row):.2f}",
        ])
    return markdown_table(headers, rows)


def breakdown(p, repeats):
    """refnode's solve as [its rk_step calls, the rest], beside SciPy's [f, the rest] (s).

    The rk_step calls are replayed from the solve's own trace (every attempted step, the
    same t and h, f wrapped as the solve wraps it); the rest — error norm, controller,
    dense output, checks — is the solve's time minus theirs.
    """
    sol = rn.solve(p["f"], p["z0"], p["t"], p["theta"], method="dopri5", rtol=RTOL,
                   atol=ATOL, control=rn.StepControl(trace=True))
    f, z0, theta = CheckedDynamics(p["f"]), p["z0"], p["theta"]
    k1 = f(float(p["t"][0]), z0, theta)

    def steps():
        for record in sol.trace:
            rk_step(f, DOPRI5, record.t, z0, record.h, theta, k1)

    t_solve, _ = best_time(lambda: run_refnode(p), repeats)
    t_steps, _ = best_time(steps, repeats)
    t_scipy, (_, nfev) = best_time(lambda: run_scipy(p), repeats)
    shape = z0.shape
    y = z0.ravel()
    t_f, _ = best_time(lambda: p["f"](0.0, y.reshape(shape), theta).ravel(), repeats, number=200)
    return dict(solve=t_solve, steps=t_steps, scipy=t_scipy, scipy_f=nfev * t_f)


def breakdown_table(rows):
    headers = ["problem", "refnode solve", "its rk_step calls", "the rest", "SciPy solve",
               "SciPy without f"]
    return markdown_table(headers, [
        [name, fmt_seconds(r["solve"]), fmt_seconds(r["steps"]),
         fmt_seconds(r["solve"] - r["steps"]), fmt_seconds(r["scipy"]),
         fmt_seconds(r["scipy"] - r["scipy_f"])] for name, r in rows.items()])


def profile(p, top=15):
    """cProfile of one refnode solve: where the time goes, by cumulative time."""
    profiler = cProfile.Profile()
    profiler.runcall(run_refnode, p)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile each refnode solve")
    parser.add_argument("--breakdown", action="store_true",
                        help="each solve's Runge-Kutta steps against the rest of its loop")
    args = parser.parse_args(argv)
    problems = [spiral_problem(), mlp_problem("mlp-small (D=2, H=50, B=1)", 2, 50, 1),
                mlp_problem("mlp-batch (D=32, H=64, B=512)", 32, 64, 512)]
    results = {p["name"]: measure(p, args.repeats) for p in problems}
    print(f"dopri5, rtol = atol = {RTOL:g}, float64; best of {args.repeats}; "
          f"numpy {np.__version__}" + (f", torch {torch.__version__}, torchdiffeq "
                                       f"{torchdiffeq.__version__}" if torch else ", torchdiffeq absent"))
    print()
    print(report(results))
    if args.breakdown:
        print("\n## Where the time goes: steps and the rest\n")
        print(breakdown_table({p["name"]: breakdown(p, args.repeats) for p in problems}))
    if args.profile:
        for p in problems:
            print(f"\n## cProfile: {p['name']}\n")
            profile(p)


if __name__ == "__main__":
    main()
