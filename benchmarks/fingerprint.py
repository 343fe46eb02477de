"""Fingerprints of solves and gradients, compared bit for bit between two versions.

    python benchmarks/fingerprint.py save before.npz     # on one version of refnode
    python benchmarks/fingerprint.py save after.npz      # on the other
    python benchmarks/fingerprint.py compare before.npz after.npz

Saves the states, step counts, step points, carried steps, traces, dense output and the
gradients (z0, theta, t) of small solves: every adaptive method, both batch modes,
forward and backward in time, float32 and float64, the adjoint (default, seminorm,
without reset, another method), the discrete adjoint, hand VJPs and autograd's.
``compare`` lists every array whose bytes differ (exit status 1 if any). A change meant
to leave results alone (a faster loop, a refactoring) must list none.
"""
import os
import sys

import autograd.numpy as anp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import refnode as rn  # noqa: E402
from refnode.nn import mlp_dynamics  # noqa: E402
from refnode.params import tree_leaves  # noqa: E402


def fingerprints():
    """{name: array} of every result the module docstring lists."""
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((16, 2)) / 2, 0.1 * rng.standard_normal(16),
         rng.standard_normal((2, 16)) / 4, 0.1 * rng.standard_normal(2))

    def mlp(t, z, theta):
        W1, b1, W2, b2 = theta
        return anp.tanh(z @ W1.T + b1) @ W2.T + b2 + 0.1 * anp.sin(t)

    def spiral(t, z, A):
        return (z ** 3) @ A

    def mlp32(t, z, theta):
        W1, b1, W2, b2 = theta
        return anp.tanh(z @ W1.T + b1) @ W2.T + b2

    A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
    out = {}
    z4 = rng.standard_normal((4, 2))
    z4[0] *= 3.0
    t_many = np.linspace(0.0, 3.0, 7)
    t_back = np.linspace(2.0, -1.0, 5)
    for method in rn.methods.ADAPTIVE_METHODS:
        for batch in ("shared", "independent"):
            for name, t in (("fwd", t_many), ("back", t_back)):
                sol = rn.solve(mlp, z4, t, W, method=method, rtol=1e-6, atol=1e-8, batch=batch)
                key = f"{method}/{batch}/{name}"
                out[key + "/z"] = np.asarray(sol.z)
                out[key + "/nfe"] = np.asarray(sol.stats["nfe"])
                out[key + "/grid"] = np.asarray(sol.grid)
                out[key + "/next"] = np.asarray(sol.next_step)
        sol = rn.solve(spiral, np.array([2.0, 0.0]), np.linspace(0, 5, 50), A, method=method,
                       rtol=1e-7, atol=1e-9, control=rn.StepControl(trace=True))
        out[f"{method}/spiral/z"] = sol.z
        out[f"{method}/spiral/trace"] = np.array([[r.t, r.h, r.error_ratio, r.accepted] for r in sol.trace])
        sol = rn.solve(spiral, np.array([2.0, 0.0]), np.linspace(0, 5, 3), A, method=method,
                       dense=True)
        out[f"{method}/dense"] = np.asarray(sol.dense(np.linspace(0, 5, 37)))
    z32 = z4.astype(np.float32)
    W32 = tuple(w.astype(np.float32) for w in W)
    for batch in ("shared", "independent"):
        out[f"f32/{batch}"] = rn.solve(mlp32, z32, t_many, W32, rtol=1e-4, atol=1e-6, batch=batch).z
    # gradients
    f = mlp_dynamics((2, 16, 2), "tanh")
    theta = f.init(np.random.default_rng(1))
    for gradient in ("adjoint", rn.Adjoint(seminorm=True), rn.Adjoint(reset=False),
                     rn.Adjoint(method="tsit5", rtol=1e-7, atol=1e-9), "discrete"):
        for batch in ("shared", "independent"):
            if gradient == "discrete" and batch == "independent":
                continue
            for fname, ff, th in (("nn", f, theta), ("plain", mlp, W)):
                for tname, t in (("fwd", t_many), ("back", t_back)):
                    z, vjp = rn.odeint_vjp(ff, z4, t, th, rtol=1e-6, atol=1e-8,
                                           gradient=gradient, batch=batch)
                    g = np.cos(np.asarray(z))
                    dz0, dth, dt = vjp(g)
                    key = f"grad/{gradient!r}/{batch}/{fname}/{tname}"
                    out[key + "/z"] = np.asarray(z)
                    out[key + "/dz0"] = np.asarray(dz0)
                    out[key + "/dt"] = np.asarray(dt)
                    for j, leaf in enumerate(tree_leaves(dth)):
                        out[key + f"/dth{j}"] = np.asarray(leaf)
                    for sname in ("forward_stats", "backward_stats"):
                        st = getattr(vjp, sname, None) or {}
                        for k2, v in st.items():
                            out[key + f"/{sname}/{k2}"] = np.asarray(v)
    # 1-D state, no theta
    z, vjp = rn.odeint_vjp(lambda t, z, th: -z * z, np.array([1.0, 2.0]), t_many, None)
    out["notheta/dz0"] = np.asarray(vjp(np.ones_like(z))[0])
    return out


def main():
    if sys.argv[1] == "save":
        partial = sys.argv[2] + ".partial.npz"
        np.savez(partial, **fingerprints())
        os.replace(partial, sys.argv[2])          # written whole or not at all
        return 0
    a, b = np.load(sys.argv[2]), np.load(sys.argv[3])
    bad = sorted(set(a.files) ^ set(b.files))
    for k in a.files:
        if k in b.files:
            x, y = a[k], b[k]
            if x.shape != y.shape or x.dtype != y.dtype or x.tobytes() != y.tobytes():
                bad.append(k)
    print(f"{len(a.files)} arrays; differ: {bad or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
