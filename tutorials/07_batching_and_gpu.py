# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 07 — Batches: shared or independent steps, and the same code on a GPU
#
# A neural ODE is almost always solved for a batch: z0 of shape (B, D), the leading axis
# the batch. This tutorial:
#
# 1. solves one batch with **shared** steps (one step size for all samples, as
#    torchdiffeq does) and with **independent** steps (each sample its own step size,
#    accept/reject and statistics), and plots each sample's step sizes
#    (`batching_steps.png`);
# 2. checks that an independent sample is exactly its own single solve;
# 3. swaps the arrays: the same solver on CuPy when CuPy and a GPU are there, and on a
#    strict "device" array that fails wherever CuPy code would go wrong;
# 4. shows the GPU numbers `benchmarks/bench_gpu.py` measured on an H200, and how to
#    measure them again.
#
# Run as a script; `REFNODE_QUICK=1` shrinks the batch.
# Figures go to the directory named by `$REFNODE_FIGURES`, or to a new temporary directory
# when it is unset; run as a script, each prints the path it wrote, and in Jupyter each
# appears under the cell that makes it. (`REFNODE_FIGURES=figures` writes into the
# repository's `figures/`, over any committed figure of the same name.)

# %%
import os

import numpy as np

import refnode as rn
from refnode import strict
from refnode.backend import array_module, to_numpy
from refnode.figures import figure_directory, show

QUICK = os.environ.get("REFNODE_QUICK") == "1"
FIGURES = figure_directory()   # $REFNODE_FIGURES, else a new temporary directory

# %% [markdown]
# ## 1. A batch with one fast sample
#
# The dynamics are an MLP, dx/dt = ω · MLP(x), where each sample's speed ω rides along as
# a constant last state column (dω/dt = 0). Sample 0 is ten times faster than the rest.
# Keeping ω in the state, rather than in a (B, 1) array the dynamics close over, matters
# for independent steps: finished samples leave the working batch, so f must treat rows
# independently.

# %%
class SpeedScaledMLP:
    """dx/dt = ω · MLP_θ(x), dω/dt = 0 (ω is the last state column)."""

    def __init__(self, dim, hidden):
        self.net = rn.nn.mlp_dynamics((dim, hidden, dim), "tanh")

    def __call__(self, t, z, theta):
        xp = array_module(z)            # numpy, cupy or autograd.numpy: the arrays decide
        y = self.net(t, z[..., :-1], theta)
        return xp.concatenate([z[..., -1:] * y, 0.0 * z[..., -1:]], axis=-1)


rng = np.random.default_rng(0)
B, D = (16, 4) if QUICK else (64, 8)
f = SpeedScaledMLP(D, 32)
theta = f.net.init(rng)
speed = np.ones((B, 1))
speed[0] = 10.0
z0 = np.concatenate([rng.normal(size=(B, D)), speed], axis=1)
t = np.linspace(0.0, 2.0, 5)

shared = rn.solve(f, z0, t, theta, rtol=1e-6, atol=1e-6)
independent = rn.solve(f, z0, t, theta, rtol=1e-6, atol=1e-6, batch="independent")
print("shared:      NFE", shared.stats["nfe"], "for every sample")
print("independent: NFE fast sample", independent.stats["nfe"][0],
      "| easy samples", independent.stats["nfe"][1:].min(), "to", independent.stats["nfe"][1:].max(),
      "| batched f calls", independent.stats["batch_nfe"])

# %% [markdown]
# In shared mode the error norm is one RMS over all B·(D+1) components, so the fast
# sample's error is diluted by the easy ones: the batch takes fewer steps than the fast
# sample alone would need, and the fast sample ends up *less* accurate than asked. In
# independent mode each sample's RMS must be ≤ 1 on its own: the fast sample takes many
# small steps, the easy ones a few large ones.
#
# What the per-sample statistics count: f is evaluated on the whole working batch at
# every stage (masks keep shapes fixed; finished samples are gathered out once half of
# the batch is done). `stats["nfe"][b]` counts the evaluations sample b needed while it
# was running — what its own solve would spend; `stats["batch_nfe"]` counts batched calls.

# %%
gap = np.abs(independent.z[-1] - shared.z[-1]).max(axis=1)
print(f"|independent - shared| at t = 2: fast sample {gap[0]:.1e}, easy samples <= {gap[1:].max():.1e}")

# %% [markdown]
# ## 2. Each sample is its own solve
#
# The per-sample arithmetic is that of the single-sample driver, so sample b of the
# batch equals `rn.solve(f, z0[b], ...)` up to rounding, with the same step count.

# %%
for b in (0, 1):
    alone = rn.solve(f, z0[b], t, theta, rtol=1e-6, atol=1e-6)
    print(f"sample {b}: max |batch - alone| = {np.abs(independent.z[:, b] - alone.z).max():.1e}, "
          f"NFE {independent.stats['nfe'][b]} vs {alone.stats['nfe']}")

# %% [markdown]
# `Solution.grid` holds each sample's accepted step points, shape (B, L+1), padded at
# the end with the final time: the step sizes are its differences.

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 4))
for b in range(min(B, 8)):
    n = independent.stats["n_accepted"][b]
    points = independent.grid[b, :n + 1]
    ax.step(points[:-1], np.diff(points), where="post", lw=2 if b == 0 else 1,
            label="fast sample (independent)" if b == 0 else ("easy samples" if b == 1 else None),
            color="C3" if b == 0 else "C0", alpha=1.0 if b == 0 else 0.5)
ax.step(shared.grid[:-1], np.diff(shared.grid), where="post", color="k", ls="--",
        label="shared step (all samples)")
ax.set_xlabel("t")
ax.set_ylabel("step size h")
ax.set_yscale("log")
ax.set_title("Shared vs independent step sizes, dopri5, rtol = atol = 1e-6")
ax.legend()
fig.tight_layout()
path = os.path.join(FIGURES, "batching_steps.png")
show(fig, path)

# %% [markdown]
# **When each mode wins.** Shared: samples alike (same stiffness, same time scale) — less
# overhead per step, no masks, and the batch RMS norm is what torchdiffeq users expect.
# Independent: samples that differ — easy samples stop paying for the hard one's small
# steps, every sample meets the tolerance on its own, and per-sample NFE is measurable.
# In independent mode f receives a per-sample time, t of shape (B, 1, ..., 1) (as many
# axes as z, so `t * z` pairs row b with time b): time-independent dynamics ignore it;
# refnode's `ConcatLinear` broadcasts it over the batch.
# Gradients: `rn.odeint_vjp(..., batch="independent", gradient="discrete" | "adjoint")`.

# %%
_, vjp = rn.odeint_vjp(f, z0, t, theta, rtol=1e-6, atol=1e-6, batch="independent",
                       gradient="adjoint")
dz0, dtheta, dt = vjp(np.ones((len(t),) + z0.shape))
print("adjoint reverse NFE per sample: fast", vjp.backward_stats["nfe"][0],
      "| easy max", vjp.backward_stats["nfe"][1:].max())

# %% [markdown]
# ## 3. The array swap
#
# No refnode solver, adjoint or layer imports an array library for its arithmetic: each
# asks `xp = refnode.backend.array_module(x)` for the module that owns its inputs —
# NumPy, CuPy, autograd.numpy. So moving the problem to a GPU is moving the arrays,
# `refnode.device.to_device(tree, "gpu")` (CuPy's `cupy.asarray` on every array of a
# tree), and the result comes back with `refnode.device.to_host`. The next cell does it
# when CuPy and a GPU are there (`pip install 'refnode[gpu]'` for CUDA 12,
# `'refnode[gpu-cuda13]'` for CUDA 13), and says so when they are not.

# %%
from refnode.device import check_device, to_device, to_host
from refnode.errors import InputError

try:
    check_device("gpu")
    GPU = True
except InputError as why:
    GPU = False
    print("No GPU section here:", why)
if GPU:
    z0_gpu, theta_gpu = to_device((z0, theta), "gpu")
    z_gpu = rn.odeint(f, z0_gpu, t, theta_gpu, rtol=1e-6, atol=1e-6)
    z_cpu = rn.odeint(f, z0, t, theta, rtol=1e-6, atol=1e-6)
    print("module of the result:", array_module(z_gpu).__name__)
    print("max |z_gpu - z_cpu| =", float(np.max(np.abs(to_host(z_gpu) - z_cpu))),
          "(other kernels, the same steps up to rounding)")

# %% [markdown]
# Two rules make that work: nothing mixes host (NumPy) arrays into device arithmetic,
# and nothing reads a device value on the host except on purpose. The loop reads exactly
# one thing per step: the accept/reject decision (shared mode: the error ratio, a float;
# independent mode: a few flags and counts, one small array). Everything else —
# stages, error norms, dense output, the adjoint's augmented state — stays on the device.
# Time grids and step-size bookkeeping stay on the host as Python floats.
#
# Without a GPU we can still check both rules: `refnode.strict` wraps NumPy arrays in a
# type that refuses `np.asarray`, host arrays mixed in, and implicit `float()`/`bool()`,
# and counts the explicit transfers.

# %%
z0_dev, theta_dev = strict.to_device(z0), strict.to_device(theta)
before = strict.TRANSFERS[0]
sol_dev = rn.solve(f, z0_dev, t, theta_dev, rtol=1e-6, atol=1e-6)
print("module of the result:", array_module(sol_dev.z).__name__)
print("host transfers:", strict.TRANSFERS[0] - before, "for", sol_dev.stats["n_steps"],
      "steps (one per step, plus the input checks and the starting step)")
try:
    float(sol_dev.z[-1, 0, 0])
except TypeError as error:
    print("refused:", str(error)[:70], "...")
print("explicit copy is fine:", to_numpy(sol_dev.z).shape)

# %% [markdown]
# `SpeedScaledMLP` takes `xp` from its input for the same reason: had it called
# `np.concatenate`, the strict array (and CuPy) would refuse it — and autograd, which
# derives this f's VJP for the adjoint above, could not trace it either. On CuPy, prefer
# dynamics with hand-derived VJPs (refnode.nn's layers): autograd runs on NumPy only.
#
# ## 4. GPU numbers
#
# `benchmarks/bench_gpu.py` times refnode on CuPy against refnode on NumPy (same
# machine's CPU) and torchdiffeq on the same GPU: MLP D = 64, H = 256, batch 1024 to
# 65536, dopri5 at rtol = atol = 1e-5, forward and adjoint, float32 and float64. The
# targets: CuPy ≥ 50x NumPy at 65536; forward ≤ 1.0x torchdiffeq and adjoint ≤ 1.25x;
# at batch 1024 ≤ 0.8x torchdiffeq for both.
#
# Measured on 2026-12-04 on one NVIDIA H200 (CuPy 14.2 with CUDA 13, PyTorch 2.11,
# torchdiffeq 0.2.5, NumPy on the same machine's 16 CPU cores), by the GPU check
# (`benchmarks/gpu_check.sh`: float32, batches 1024 and 65536, best of 2) on the project
# as of commit 4ee6031. Ratios are refnode-CuPy time / other time (below 1: refnode faster):
#
# | batch | CuPy / torchdiffeq, forward | CuPy / torchdiffeq, adjoint | NumPy / CuPy, forward | NumPy / CuPy, adjoint |
# |---|---|---|---|---|
# | 1024 | 1.09x | 1.21x | 1.5x | 1.6x |
# | 65536 | **0.80x** | 1.70x | **134x** | **51x** |
#
# At batch 65536 the forward solve beats torchdiffeq and CuPy is 134 times NumPy; the
# adjoint takes fewer evaluations than torchdiffeq's (76 against 88) and still 1.7 times
# its time, so the cost is per evaluation. At batch 1024 both libraries wait on kernel
# launches more than on arithmetic, and refnode launches more kernels per evaluation.
# (An earlier sweep on another H200, at commit f3e561e, gave adjoint ratios 0.78x at 1024
# and 1.95x at 65536: launch-bound times move with the machine's CPU.)
#
# To measure again, on a machine with CUDA, CuPy and torchdiffeq:
#
# ```
# python benchmarks/bench_gpu.py --json gpu_results.json
# ```
#
# It prints a markdown table and, for each target, "met" or "MISSED". The experiments
# take the same switch: `refnode demo --device gpu`, `refnode reproduce table1 --device
# gpu`, `refnode reproduce latent --device gpu`, `refnode reproduce cnf --device gpu` and
# `refnode reproduce cnf-curves --device gpu`; `bash benchmarks/gpu_check.sh` runs the GPU
# tests and benchmarks in one call and writes a report.
