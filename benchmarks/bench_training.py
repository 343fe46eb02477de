"""Training steps: the Table 1 models in refnode against the same networks in PyTorch.

    OMP_NUM_THREADS=2 python benchmarks/bench_training.py [--repeats N] [--batch B]
                                                         [--models resnet odenet ...]
                                                         [--layers] [--json PATH] [--quick]
    python benchmarks/bench_training.py --device gpu [--repeats N] [--json PATH]

One training step = forward pass, mean softmax cross-entropy, gradient of every parameter
(refnode: the layers' hand VJPs chained, ``refnode.models.classifier.train_step``; PyTorch:
``loss.backward()``). The optimizer update is left out of both. Models (as in
``refnode.models.odenet``, 64 channels, the "conv" downsampling stem, float32):

* resnet: six pre-activation residual blocks;
* odenet: dopri5 at rtol = atol = 1e-3 with the continuous adjoint (torchdiffeq:
  ``odeint_adjoint``, same tolerances for the backward solve);
* rknet: four RK4 steps, backprop through the steps (torchdiffeq: ``odeint(method="rk4")``).
  torchdiffeq's "rk4" is Kutta's 3/8 rule, so refnode runs its "rk38" here (same cost, four
  evaluations a step, as the model's classic RK4) and the two gradients can be compared;
* mlp: Flatten → Linear(784→300) → ReLU → Linear(300→10).

Both libraries get the same weights (refnode's initialisation copied into the torch
modules) and the same batch (seed 0); times are best of N in one process, one library
right after the other, so the ratio refnode / PyTorch does not depend on the machine's
speed. Threads: torch gets ``OMP_NUM_THREADS`` (NumPy's BLAS reads the same variable).
``--layers`` adds refnode's per-layer time table (forward and VJP of each layer type).
Skipped (exit status 0, a message) when torch or torchdiffeq is not installed.

``--device gpu``: refnode on CuPy against PyTorch on CUDA, same process, same weights and
batch (moved to the GPU once, :func:`refnode.device.to_device`), each step timed to a
device synchronisation, PyTorch's TF32 convolutions switched off so that both round in
float32 (:func:`ieee_float32`); the targets are ODE-Net <= 1.5x and every model <= 2x PyTorch.
It needs CuPy with a GPU and torch with CUDA: without them it stops at once with one
line on stderr, exit status 2.
"""

import argparse
import collections
import functools
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import best_time, fmt_ratio, fmt_seconds, gpu_name, markdown_table  # noqa: E402
from refnode import nn as rnn  # noqa: E402
from refnode.backend import to_numpy  # noqa: E402
from refnode.device import check_device, to_device  # noqa: E402
from refnode.errors import InputError  # noqa: E402
from refnode.models.odenet import (NUM_CLASSES, ODEBlock, ResBlock, build_model,  # noqa: E402
                                   ode_blocks)
from refnode.models.classifier import train_step  # noqa: E402
from refnode.params import tree_leaves  # noqa: E402

try:
    import torch
    import torchdiffeq
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
except ImportError:
    torch = torchdiffeq = None

MODELS = ("resnet", "odenet", "rknet", "mlp")
#: refnode method -> torchdiffeq's name for it (torchdiffeq's "rk4" is the 3/8 rule).
TORCHDIFFEQ_NAMES = {"rk38": "rk4"}
#: The goal: a training step within 2x PyTorch's on the CPU.
TARGET_RATIO = 2.0
#: The goals on the GPU (refnode on CuPy / PyTorch on CUDA): every model within 2x, the
#: ODE-Net within 1.5x.
GPU_TARGETS = {"odenet": 1.5}


# --- the same network in torch, layer by layer, with refnode's weights ---------------------

def _param(array):
    return torch.nn.Parameter(torch.from_numpy(np.array(array)))


def _conv(layer, theta):
    m = torch.nn.Conv2d(layer.c_in, layer.c_out, layer.kernel_size, layer.stride,
                        layer.padding, bias=layer.bias)
    m.weight = _param(theta["W"])
    if layer.bias:
        m.bias = _param(theta["b"])
    return m


@functools.lru_cache(maxsize=None)
def _modules():
    """torch modules for the refnode layers that have no one-line torch equivalent."""
    class ConcatConv(torch.nn.Module):
        def __init__(self, conv):
            super().__init__()
            self.conv = conv

        def forward(self, t, x):
            tt = torch.ones_like(x[:, :1]) * t
            return self.conv(torch.cat([tt, x], 1))

    class ODEFunc(torch.nn.Module):
        def __init__(self, layers):
            super().__init__()
            self.layers = torch.nn.ModuleList(layers)
            self.nfe = 0

        def forward(self, t, x):
            self.nfe += 1
            for m in self.layers:
                x = m(t, x) if isinstance(m, ConcatConv) else m(x)
            return x

    class TorchODEBlock(torch.nn.Module):
        def __init__(self, func, block):
            super().__init__()
            self.func, self.t1, self.adjoint = func, block.t1, block.gradient == "adjoint"
            self.options = (dict(rtol=block.rtol, atol=block.atol, method=block.method)
                            if self.adjoint else
                            dict(method=TORCHDIFFEQ_NAMES.get(block.method, block.method),
                                 options={"step_size": block.t1 / block.n_steps}))

        def forward(self, x):
            t = torch.tensor([0.0, self.t1], dtype=x.dtype, device=x.device)
            solve = torchdiffeq.odeint_adjoint if self.adjoint else torchdiffeq.odeint
            return solve(self.func, x, t, **self.options)[-1]

    class TorchResBlock(torch.nn.Module):
        def __init__(self, pre, residual, shortcut):
            super().__init__()
            self.pre, self.residual, self.shortcut = pre, residual, shortcut

        def forward(self, x):
            a = self.pre(x)
            return (x if self.shortcut is None else self.shortcut(a)) + self.residual(a)

    class Mean2d(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    return ConcatConv, ODEFunc, TorchODEBlock, TorchResBlock, Mean2d


def to_torch(layer, theta):
    """A torch module computing what the refnode ``layer`` computes, with weights ``theta``."""
    ConcatConv, ODEFunc, TorchODEBlock, TorchResBlock, Mean2d = _modules()
    if isinstance(layer, rnn.Sequential):
        return torch.nn.Sequential(*[to_torch(l, th) for l, th in zip(layer.layers, theta)])
    if isinstance(layer, rnn.Conv2d):
        return _conv(layer, theta)
    if isinstance(layer, rnn.ConcatConv2d):
        return ConcatConv(_conv(layer.conv, theta))
    if isinstance(layer, rnn.GroupNorm):
        m = torch.nn.GroupNorm(layer.num_groups, layer.num_channels, eps=layer.eps)
        m.weight, m.bias = _param(theta["weight"]), _param(theta["bias"])
        return m
    if isinstance(layer, rnn.ReLU):
        return torch.nn.ReLU()
    if isinstance(layer, rnn.GlobalAvgPool2d):
        return Mean2d()
    if isinstance(layer, rnn.Flatten):
        return torch.nn.Flatten()
    if isinstance(layer, rnn.Linear):
        m = torch.nn.Linear(layer.n_in, layer.n_out)
        m.weight, m.bias = _param(theta["W"]), _param(theta["b"])
        return m
    if isinstance(layer, ResBlock):
        shortcut = to_torch(layer.shortcut, theta["shortcut"]) if layer.shortcut else None
        return TorchResBlock(to_torch(layer.pre, theta["pre"]),
                        to_torch(layer.residual, theta["residual"]), shortcut)
    if isinstance(layer, ODEBlock):
        net = layer.dynamics.net
        func = ODEFunc([to_torch(l, th) for l, th in zip(net.layers, theta)])
        return TorchODEBlock(func, layer)
    raise TypeError(f"no torch equivalent for {layer!r}")


# --- one training step in each library -------------------------------------------------------

def problem(name, batch, seed=0):
    """(model, theta float32, images (B, 1, 28, 28) float32, labels (B,))."""
    rng = np.random.default_rng(seed)
    model = build_model(name)
    for _, block in ode_blocks(model):
        if block.method == "rk4":       # torchdiffeq's "rk4" is Kutta's 3/8 rule: use the same
            block.method = "rk38"
    theta = model.init(rng, np.float32)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    return model, theta, x, rng.integers(0, NUM_CLASSES, batch)


def refnode_step_fn(model, theta, x, labels, sync=lambda: None):
    """One refnode step on the arrays' device, ending with ``sync()`` (the GPU's queue
    drained); returns (loss, gradient leaves on the device, NFE)."""
    def run():
        loss, _, grad, nfe = train_step(model, theta, x, labels)
        sync()
        return loss, tree_leaves(grad), nfe
    return run


def ieee_float32(tf32=False):
    """Whether PyTorch on CUDA may round float32 convolutions and matrix products in TF32.

    PyTorch's default lets cuDNN run float32 convolutions in TF32 (a 10-bit mantissa,
    ``torch.backends.cudnn.allow_tf32 = True``): faster, and about 1e-3 off per product.
    refnode on CuPy rounds in float32 throughout, so the comparisons here switch TF32 off
    (``tf32=False``) to time and compare the same arithmetic. No effect on the CPU.
    """
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32


def torch_step_fn(module, x, labels, device="cpu", tf32=False):
    """One PyTorch step on ``device`` ("cpu" or "cuda"), float32 rounded as IEEE float32
    unless ``tf32`` (:func:`ieee_float32`, set here for the steps that follow, outside the
    timed call); returns (loss, gradients, NFE)."""
    ieee_float32(tf32)
    x_t, y_t = torch.from_numpy(x).to(device), torch.from_numpy(labels).to(device)
    funcs = [m for m in module.modules() if hasattr(m, "nfe")]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run():
        module.zero_grad(set_to_none=True)
        for f in funcs:
            f.nfe = 0
        loss = torch.nn.functional.cross_entropy(module(x_t), y_t)
        loss.backward()
        sync()
        return loss.item(), [p.grad for p in module.parameters()], sum(f.nfe for f in funcs)
    return run


def layer_table(model, theta, x, labels):
    """refnode's time per layer type and direction over one step: [(name, ms), ...]."""
    times = collections.defaultdict(float)
    originals = []
    for cls in (rnn.Conv2d, rnn.GroupNorm, rnn.ReLU, rnn.Linear, rnn.GlobalAvgPool2d):
        for method in ("forward", "vjp"):
            original = cls.__dict__.get(method) or getattr(cls, method)
            originals.append((cls, method, cls.__dict__.get(method)))

            def timed(self, *args, _f=original, _key=f"{cls.__name__}.{method}"):
                start = time.perf_counter()
                out = _f(self, *args)
                times[_key] += time.perf_counter() - start
                return out
            setattr(cls, method, timed)
    try:
        start = time.perf_counter()
        train_step(model, theta, x, labels)
        total = time.perf_counter() - start
    finally:
        for cls, method, original in originals:
            if original is None:
                delattr(cls, method)
            else:
                setattr(cls, method, original)
    rows = sorted(times.items(), key=lambda kv: -kv[1])
    return rows + [("rest (solver, adjoint, loss, Python)", total - sum(times.values())),
                   ("total", total)]


def device_sync(device):
    """A function that waits until ``device``'s queued work is done (no-op off the GPU)."""
    if device == "gpu":
        import cupy
        return cupy.cuda.Device().synchronize
    return lambda: None


def refnode_runner(name, batch, device="cpu"):
    """(refnode's step function on ``device``, the problem on the host): the model's
    weights, the images and the labels move to the device once, as in training."""
    model, theta, x, labels = problem(name, batch)
    theta_d, x_d, labels_d = to_device((theta, x, labels), device)
    return refnode_step_fn(model, theta_d, x_d, labels_d, device_sync(device)), \
        (model, theta, x, labels)


def measure(name, batch, repeats, layers=False, device="cpu"):
    """One row: refnode on ``device`` ("cpu", or "gpu": CuPy) and PyTorch on the same
    (CUDA for "gpu"), best of ``repeats`` after a warm-up, gradients compared on the host."""
    ref_fn, (model, theta, x, labels) = refnode_runner(name, batch, device)
    torch_device = "cuda" if device == "gpu" else "cpu"
    module = to_torch(model, theta).to(torch_device)
    torch_fn = torch_step_fn(module, x, labels, torch_device)
    ref_fn(), torch_fn()                                               # warm up both
    t_ref, (loss_ref, g_ref, nfe_ref) = best_time(ref_fn, repeats)
    t_torch, (loss_torch, g_torch, nfe_torch) = best_time(torch_fn, repeats)
    g_ref = [to_numpy(g) for g in g_ref]
    g_torch = [g.detach().cpu().numpy() for g in g_torch]
    grad_diff = (max(float(np.max(np.abs(a - b))) for a, b in zip(g_ref, g_torch))
                 / max(float(np.max(np.abs(b))) for b in g_torch))
    row = dict(model=name, batch=batch, device=device, refnode_s=t_ref, torch_s=t_torch,
               ratio=t_ref / t_torch, loss_diff=abs(loss_ref - loss_torch),
               grad_rel_diff=grad_diff, nfe_refnode=list(nfe_ref), nfe_torch=nfe_torch)
    if layers:
        row["layers_ms"] = [(k, v * 1e3) for k, v in layer_table(model, theta, x, labels)]
    return row


def table(rows):
    headers = ["model", "refnode", "PyTorch", "ratio", "NFE refnode fwd/bwd, torch",
               "grad diff"]
    cells = [[r["model"], fmt_seconds(r["refnode_s"]), fmt_seconds(r["torch_s"]),
              fmt_ratio(r["ratio"]),
              f"{r['nfe_refnode'][0]}/{r['nfe_refnode'][1]}, {r['nfe_torch']}"
              if r["nfe_torch"] else "—", f"{r['grad_rel_diff']:.1e}"] for r in rows]
    return markdown_table(headers, cells)


def target(model, device):
    """The largest ratio refnode / PyTorch that meets the goal for ``model`` on ``device``."""
    return GPU_TARGETS.get(model, TARGET_RATIO) if device == "gpu" else TARGET_RATIO


def verdicts(rows):
    """One line per row: its ratio against its target, met or MISSED."""
    lines = []
    for r in rows:
        limit = target(r["model"], r.get("device", "cpu"))
        verdict = "met" if r["ratio"] <= limit else "MISSED"
        lines.append(f"target refnode/PyTorch <= {limit}x, {r['model']}: {r['ratio']:.2f}x, "
                     f"{verdict}")
    return lines


def gpu_problem():
    """Why ``--device gpu`` cannot run here (one line), or None: it needs CuPy with a GPU,
    and torch with CUDA and torchdiffeq to compare against."""
    try:
        check_device("gpu")
    except InputError as error:
        return str(error)
    if torch is None:
        return ("--device gpu compares against PyTorch on CUDA: pip install torch torchdiffeq "
                "(a CUDA build of torch)")
    if not torch.cuda.is_available():
        return "--device gpu: torch sees no CUDA device (a CPU-only build of torch?)"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--layers", action="store_true", help="refnode's per-layer times")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--quick", action="store_true", help="batch 8, one repeat (a smoke run)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="gpu: refnode on CuPy against PyTorch on CUDA (exit 2 without them)")
    args = parser.parse_args(argv)
    if args.device == "gpu":
        problem_line = gpu_problem() or (
            "--layers times refnode's layers on the CPU; leave it out with --device gpu"
            if args.layers else None)
        if problem_line:
            print(f"bench_training.py: {problem_line}", file=sys.stderr)
            return 2
    if torch is None:
        print("bench_training: skipped, needs torch and torchdiffeq "
              "(pip install torch torchdiffeq)")
        return 0
    if args.quick:
        args.batch, args.repeats = 8, 1
    print(f"{device_line(args.device)}; batch {args.batch}, float32, best of {args.repeats}",
          flush=True)
    rows = []
    for name in args.models:
        rows.append(measure(name, args.batch, args.repeats, args.layers, args.device))
        print(f"{name}: refnode {fmt_seconds(rows[-1]['refnode_s'])}, PyTorch "
              f"{fmt_seconds(rows[-1]['torch_s'])}, ratio {fmt_ratio(rows[-1]['ratio'])}", flush=True)
        if args.layers:
            print(f"\n{name}: refnode time per layer type\n")
            print(markdown_table(["layer.method", "ms"],
                                 [[k, f"{v:.1f}"] for k, v in rows[-1]["layers_ms"]]), flush=True)
    print()
    print(table(rows))
    print("\n".join(verdicts(rows)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=1)
    return 0


def device_line(device):
    """What runs where: threads on the CPU, the GPU's name on the GPU."""
    if device == "gpu":
        import cupy
        return (f"GPU: {gpu_name(cupy)}; CuPy {cupy.__version__}, torch {torch.__version__} "
                f"(CUDA {torch.version.cuda})")
    return (f"threads: torch {torch.get_num_threads()}, OMP_NUM_THREADS="
            f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")


if __name__ == "__main__":
    sys.exit(main())
