"""How far a float32 training gradient lies from the float64 one, on each device.

    python benchmarks/grad_precision.py [--models odenet ...] [--batch B] [--json PATH]

For each Table 1 model (the weights and batch of ``bench_training.py``), one training
step's gradient is computed in float64 by refnode on NumPy: the reference. Each row is
another computation of it, with its distance from the reference

    d = max_leaf max |g − g_64| / max_leaf max |g_64|

(the measure ``bench_training.py`` calls "grad diff"), and the same distance from the
NumPy float32 row:

* ``numpy float32``: refnode on NumPy, float32;
* ``numpy float32, x·(1+1e-7·ε)``: the same, the images perturbed at the scale of float32
  rounding (ε standard normal, seed 1). Its distance from the float32 row shows how much
  a change in rounding alone moves the gradient: ReLU kinks, and for the ODE-Net the step
  sizes the controller picks from rounded error estimates;
* ``cupy float32``: refnode on CuPy (with a GPU);
* ``torch float32``, ``torch TF32``: PyTorch on CUDA (else the CPU), TF32 convolutions off
  and on (on, PyTorch's default on CUDA; see ``bench_training.ieee_float32``). torchdiffeq
  takes its own steps in the ODE-Net, so that row also differs by the solver's error;
* ODE-Net only, ``numpy float64, discrete adjoint``: backprop through the same dopri5 steps,
  the exact gradient of the loss computed; its distance is the continuous adjoint's error
  at the model's tolerance (1e-3).

Without torch the torch rows are left out; without CuPy and a GPU, the cupy row.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_training as bt  # noqa: E402
from common import markdown_table  # noqa: E402
from refnode.backend import to_numpy  # noqa: E402
from refnode.device import check_device, to_device  # noqa: E402
from refnode.errors import InputError  # noqa: E402
from refnode.params import tree_map  # noqa: E402

#: Relative size of the perturbation of the images: a few float32 spacings (2^-23 ≈ 1.2e-7).
PERTURBATION = 1e-7


def distance(g, g_ref):
    """max |g − g_ref| over every leaf, over max |g_ref|."""
    return (max(float(np.max(np.abs(np.asarray(a, np.float64) - b))) for a, b in zip(g, g_ref))
            / max(float(np.max(np.abs(b))) for b in g_ref))


def refnode_gradient(model, theta, x, labels, dtype, device="cpu"):
    """(gradient leaves on the host, NFE) of one refnode step in ``dtype`` on ``device``."""
    theta, x = tree_map(lambda v: np.asarray(v, dtype), theta), np.asarray(x, dtype)
    theta, x, labels = to_device((theta, x, labels), device)
    _, grad, nfe = bt.refnode_step_fn(model, theta, x, labels, bt.device_sync(device))()
    return [to_numpy(g) for g in grad], nfe


def torch_gradient(model, theta, x, labels, device, tf32):
    module = bt.to_torch(model, theta).to(device)
    _, grad, nfe = bt.torch_step_fn(module, x, labels, device, tf32)()
    return [g.detach().cpu().numpy() for g in grad], nfe


def has_gpu():
    try:
        check_device("gpu")
    except InputError:
        return False
    return True


def rows_for(name, batch):
    """The rows of one model: computation, NFE, distance from the float64 gradient and from
    NumPy's float32 one."""
    model, theta, x, labels = bt.problem(name, batch)
    g64, nfe64 = refnode_gradient(model, theta, x, labels, np.float64)
    x_perturbed = x * (1 + PERTURBATION * np.random.default_rng(1).standard_normal(x.shape))
    runs = [("numpy float64 (reference)", (g64, nfe64)),
            ("numpy float32", refnode_gradient(model, theta, x, labels, np.float32)),
            ("numpy float32, x·(1+1e-7·ε)",
             refnode_gradient(model, theta, x_perturbed, labels, np.float32))]
    if name == "odenet":       # the exact gradient of the loss refnode computes, same steps
        discrete = bt.build_model("odenet", gradient="discrete")
        runs.append(("numpy float64, discrete adjoint",
                     refnode_gradient(discrete, theta, x, labels, np.float64)))
    if has_gpu():
        runs.append(("cupy float32", refnode_gradient(model, theta, x, labels, np.float32, "gpu")))
    if bt.torch is not None:
        device = "cuda" if bt.torch.cuda.is_available() else "cpu"
        runs.append((f"torch {device} float32", torch_gradient(model, theta, x, labels, device,
                                                               False)))
        if device == "cuda":
            runs.append(("torch cuda TF32", torch_gradient(model, theta, x, labels, device, True)))
    g32 = runs[1][1][0]
    return [dict(model=name, run=label, nfe=list(np.atleast_1d(nfe).tolist()),
                 distance=distance(g, g64), distance_float32=distance(g, g32))
            for label, (g, nfe) in runs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=bt.MODELS, default=list(bt.MODELS))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    rows = [row for name in args.models for row in rows_for(name, args.batch)]
    print(f"batch {args.batch}; distance (max abs / max abs) from refnode's float64 and "
          "NumPy float32 gradients\n")
    print(markdown_table(["model", "computation", "NFE", "from float64", "from numpy float32"],
                         [[r["model"], r["run"], "/".join(map(str, r["nfe"])),
                           f"{r['distance']:.1e}", f"{r['distance_float32']:.1e}"]
                          for r in rows]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
