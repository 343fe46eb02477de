"""refnode on CuPy vs refnode on NumPy (same machine's CPU) vs torchdiffeq on the same GPU.

MLP dynamics f(z) = tanh(z W1ᵀ + b1) W2ᵀ + b2, D = 64, H = 256, batch 1024 ... 65536,
dopri5 at rtol = atol = 1e-5 on [0, 1], float32 and float64: the forward solve, and the
forward plus the adjoint gradient of L = Σ z(1) (refnode ``gradient="adjoint"``,
torchdiffeq ``odeint_adjoint``). Every number is the best of ``--repeats`` runs after one
warm-up (CuPy compiles its kernels on first use), timed to a device synchronisation.

Targets (printed as met / MISSED): CuPy >= 50x NumPy at the largest batch; forward
<= 1.0x torchdiffeq and adjoint <= 1.25x at the largest batch; both <= 0.8x at 1024.

On a GPU machine, one command:

    python benchmarks/bench_gpu.py                      # add --json results.json to keep them

Pieces that are missing are skipped with a note (no CuPy or no GPU: NumPy only; no
torch/torchdiffeq: no torchdiffeq column; ``--no-numpy`` skips the slow CPU runs).
``--cpu-only`` runs NumPy and torchdiffeq on the CPU (tiny sizes: a check of this script).
``--device gpu`` insists on the GPU (no CuPy or no GPU: one line, exit status 2; this is
what ``refnode bench --device gpu`` passes); ``--device cpu`` is ``--cpu-only``.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refnode as rn  # noqa: E402
from common import best_time, fmt_ratio, markdown_table  # noqa: E402
from refnode.backend import to_numpy  # noqa: E402
from refnode.params import tree_map  # noqa: E402

TOL = 1e-5
#: (quantity, batch rule, limit): the targets of the issue, checked on the printed ratios.
TARGETS = [("numpy/cupy fwd", "largest", ">=", 50.0),
           ("cupy/torch fwd", "largest", "<=", 1.0), ("cupy/torch adj", "largest", "<=", 1.25),
           ("cupy/torch fwd", 1024, "<=", 0.8), ("cupy/torch adj", 1024, "<=", 0.8)]


def cupy_or_none(quiet=False):
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception as error:           # ImportError, or CUDA without a driver/device
        if not quiet:
            print(f"note: CuPy unavailable ({type(error).__name__}); CuPy columns read n/a")
    return None


def torch_or_none(device):
    try:
        import torch
        import torchdiffeq
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch has no CUDA device")
        return torch, torchdiffeq
    except Exception as error:
        print(f"note: torchdiffeq on {device} unavailable ({error}); its columns read n/a")
    return None


# -- refnode ----------------------------------------------------------------------------------

def refnode_runner(xp, f, theta, z0, sync):
    """(forward, adjoint) timing functions for refnode on the arrays' module ``xp``."""
    theta_x = tree_map(xp.asarray, theta)
    z0_x = xp.asarray(z0)
    t = np.array([0.0, 1.0])
    g = xp.stack([xp.zeros_like(z0_x), xp.ones_like(z0_x)])

    def forward():
        sol = rn.solve(f, z0_x, t, theta_x, rtol=TOL, atol=TOL)
        sync(sol.z)
        return sol.stats["nfe"]

    def adjoint():
        _, vjp = rn.odeint_vjp(f, z0_x, t, theta_x, rtol=TOL, atol=TOL, gradient="adjoint")
        dz0, _, _ = vjp(g)
        sync(dz0)
        return vjp.forward_stats["nfe"] + vjp.backward_stats["nfe"]

    return forward, adjoint


# -- torchdiffeq ------------------------------------------------------------------------------

def torch_runner(torch, torchdiffeq, theta, z0, device):
    """(forward, adjoint) timing functions for torchdiffeq with the same weights."""
    dtype = {np.float32: torch.float32, np.float64: torch.float64}[z0.dtype.type]
    (l1, _, l2) = theta

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(*l1["W"].shape[::-1]).to(device, dtype)
            self.fc2 = torch.nn.Linear(*l2["W"].shape[::-1]).to(device, dtype)
            with torch.no_grad():
                for layer, p in ((self.fc1, l1), (self.fc2, l2)):
                    layer.weight.copy_(torch.as_tensor(p["W"]))
                    layer.bias.copy_(torch.as_tensor(p["b"]))
            self.nfe = 0

        def forward(self, t, z):
            self.nfe += 1
            return self.fc2(torch.tanh(self.fc1(z)))

    func = MLP()
    z0_t = torch.as_tensor(z0, device=device)
    t = torch.tensor([0.0, 1.0], device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward():
        func.nfe = 0
        with torch.no_grad():
            torchdiffeq.odeint(func, z0_t, t, rtol=TOL, atol=TOL, method="dopri5")
        sync()
        return func.nfe

    def adjoint():
        func.nfe = 0
        z0_g = z0_t.clone().requires_grad_(True)
        z = torchdiffeq.odeint_adjoint(func, z0_g, t, rtol=TOL, atol=TOL, method="dopri5")
        z[-1].sum().backward()
        sync()
        return func.nfe

    return forward, adjoint


# -- the measurements -------------------------------------------------------------------------

def measure(name, runners, repeats):
    """{"fwd": (seconds, nfe), "adj": (seconds, nfe)} for one implementation (or None)."""
    if runners is None:
        return None
    out = {}
    for kind, fn in zip(("fwd", "adj"), runners):
        fn()                                            # warm-up: kernels, caches, allocators
        out[kind] = best_time(fn, repeats=repeats)
        print(f"  {name} {kind}: {out[kind][0] * 1e3:.1f} ms, NFE {out[kind][1]}", flush=True)
    return out


def problem(batch, dtype, dim=64, hidden=256, seed=0):
    """(f, theta, z0) of one case: the MLP dynamics, its weights and the initial states,
    host arrays of ``dtype``."""
    rng = np.random.default_rng(seed)
    f = rn.nn.mlp_dynamics((dim, hidden, dim), "tanh")
    theta = tree_map(lambda p: p.astype(dtype), f.init(rng))
    return f, theta, rng.normal(size=(batch, dim)).astype(dtype)


def run_case(batch, dtype, args, cupy, torch_libs, device):
    f, theta, z0 = problem(batch, dtype, args.dim, args.hidden, args.seed)
    print(f"batch {batch}, {np.dtype(dtype).name}:", flush=True)
    results = {}
    if cupy is not None and not args.cpu_only:
        sync = lambda x: cupy.cuda.Stream.null.synchronize()  # noqa: E731
        results["cupy"] = measure("refnode-cupy", refnode_runner(cupy, f, theta, z0, sync),
                                  args.repeats)
    if not args.no_numpy:
        results["numpy"] = measure("refnode-numpy", refnode_runner(np, f, theta, z0, to_numpy),
                                   args.repeats)
    if torch_libs is not None:
        results["torch"] = measure(f"torchdiffeq-{device}",
                                   torch_runner(*torch_libs, theta, z0, device), args.repeats)
    return results


def ratio(results, top, bottom, kind):
    a, b = results.get(top), results.get(bottom)
    return None if a is None or b is None else a[kind][0] / b[kind][0]


def report(all_results, batches):
    """The markdown table and the verdict on each target."""
    headers = ["batch", "dtype", "cupy fwd", "numpy fwd", "torch fwd", "numpy/cupy fwd",
               "cupy/torch fwd", "cupy adj", "numpy adj", "torch adj", "numpy/cupy adj",
               "cupy/torch adj"]
    ms = lambda r, k: "n/a" if r is None else f"{r[k][0] * 1e3:.1f} ms"  # noqa: E731
    rows, ratios = [], {}
    for (batch, dtype), res in all_results.items():
        r = {key: ratio(res, *spec) for key, spec in {
            "numpy/cupy fwd": ("numpy", "cupy", "fwd"), "cupy/torch fwd": ("cupy", "torch", "fwd"),
            "numpy/cupy adj": ("numpy", "cupy", "adj"), "cupy/torch adj": ("cupy", "torch", "adj"),
        }.items()}
        ratios[(batch, dtype)] = r
        rows.append([batch, dtype, ms(res.get("cupy"), "fwd"), ms(res.get("numpy"), "fwd"),
                     ms(res.get("torch"), "fwd"), fmt_ratio(r["numpy/cupy fwd"]),
                     fmt_ratio(r["cupy/torch fwd"]), ms(res.get("cupy"), "adj"),
                     ms(res.get("numpy"), "adj"), ms(res.get("torch"), "adj"),
                     fmt_ratio(r["numpy/cupy adj"]), fmt_ratio(r["cupy/torch adj"])])
    print(markdown_table(headers, rows))
    for quantity, rule, op, limit in TARGETS:
        batch = max(batches) if rule == "largest" else rule
        for (b, dtype), r in ratios.items():
            if b != batch:
                continue
            value = r[quantity]
            verdict = "n/a" if value is None else (
                "met" if (value >= limit if op == ">=" else value <= limit) else "MISSED")
            print(f"target {quantity} {op} {limit:g}x at batch {b} ({dtype}): "
                  f"{fmt_ratio(value)} -> {verdict}")
    return ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-numpy", action="store_true", help="skip refnode on the CPU")
    parser.add_argument("--no-torch", action="store_true", help="skip torchdiffeq")
    parser.add_argument("--cpu-only", action="store_true",
                        help="no GPU: NumPy and torchdiffeq on the CPU (checks this script)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default=None,
                        help="gpu: require CuPy and a GPU (exit 2 without); cpu: --cpu-only "
                        "(default: the GPU when there is one)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    args.cpu_only = args.cpu_only or args.device == "cpu"
    device = "cpu" if args.cpu_only else "cuda"
    cupy = None if args.cpu_only else cupy_or_none(quiet=args.device == "gpu")
    if args.device == "gpu" and cupy is None:
        print("bench_gpu.py: --device gpu needs CuPy and a GPU (pip install 'refnode[gpu]' "
              "or 'refnode[gpu-cuda13]'); none was found", file=sys.stderr)
        return 2
    torch_libs = None if args.no_torch else torch_or_none(device)
    all_results = {}
    for dtype in args.dtypes:
        for batch in args.batches:
            all_results[(batch, dtype)] = run_case(batch, np.dtype(dtype).type, args, cupy,
                                                   torch_libs, device)
    ratios = report(all_results, args.batches)
    if args.json:
        payload = [dict(batch=b, dtype=d, ratios=ratios[(b, d)],
                        times={name: {k: v[0] for k, v in res.items()}
                               for name, res in r.items() if res is not None})
                   for (b, d), r in all_results.items()]
        tmp = args.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(payload, fh, indent=1)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
