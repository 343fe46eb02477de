"""How many array operations a GPU would launch: counted on the CPU, per refnode function.

    python benchmarks/count_device_ops.py training odenet [--batch 8] [--top 20]
    python benchmarks/count_device_ops.py adjoint [--batch 1024] [--top 20]

On a GPU, refnode's small steps are bound by the host: every array operation is a CuPy
call that costs 10–45 µs whatever its size (benchmarks/README.md, "Where the time goes on
the GPU"). This script runs a workload once on :mod:`refnode.strict` arrays (NumPy inside,
CuPy's rules outside), after one warm-up, and counts each operation on them: every
``xp.*`` function, every operator and method of a strict array. Each is charged to the
innermost refnode function that issued it. Views (indexing, ``reshape``, ``transpose``,
``broadcast_to``) are counted apart from the rest: on CuPy they launch no kernel.

Workloads:

* ``training MODEL``: one training step of a Table 1 model (``bench_training.py``'s
  weights and random images, float32);
* ``adjoint``: the gradient ``bench_gpu.py`` times (MLP D = 64, H = 256, dopri5 at 1e-5,
  float32, ``odeint_vjp`` with the adjoint).

A count is no timing, but it needs no GPU, does not depend on the machine's load, and
a change that lowers it lowers the GPU's launch cost.
"""

import argparse
import collections
import contextlib
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from refnode import strict  # noqa: E402

PACKAGE = os.path.dirname(os.path.abspath(strict.__file__))       # refnode/
#: Operations that make a view (no kernel on CuPy).
VIEWS = {"__getitem__", "reshape", "transpose", "broadcast_to", "expand_dims", "squeeze",
         "swapaxes"}
#: Operators of a strict array that are counted.
OPERATORS = ("__add__", "__sub__", "__mul__", "__truediv__", "__pow__", "__matmul__",
             "__radd__", "__rsub__", "__rmul__", "__rtruediv__", "__rpow__", "__rmatmul__",
             "__neg__", "__abs__", "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__",
             "__and__", "__or__", "__invert__", "__getitem__", "__setitem__", "__iadd__")


def issuer():
    """``module.py:function`` of the innermost refnode frame outside refnode.strict."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(PACKAGE) and not path.endswith("strict.py"):
            return f"{os.path.relpath(path, PACKAGE)}:{frame.f_code.co_name}"
        frame = frame.f_back
    return "(outside refnode)"


@contextlib.contextmanager
def counting():
    """Count the operations on strict arrays inside the block: yields a Counter of
    (issuer, "view" or "op")."""
    counts = collections.Counter()
    saved = {name: getattr(strict.StrictArray, name) for name in OPERATORS
             if hasattr(strict.StrictArray, name)}
    saved_getattr = strict._Namespace.__getattr__, strict.StrictArray.__getattr__

    def counted(name, fn):
        def call(*args, **kwargs):
            counts[issuer(), "view" if name in VIEWS else "op"] += 1
            return fn(*args, **kwargs)
        return call

    def namespace_getattr(self, name):
        attr = saved_getattr[0](self, name)
        if callable(attr) and not isinstance(attr, type) and name not in ("asarray", "array"):
            return counted(name, attr)
        return attr

    def array_getattr(self, name):
        attr = saved_getattr[1](self, name)
        return counted(name, attr) if callable(attr) and name != "get" else attr

    try:
        for name, method in saved.items():
            setattr(strict.StrictArray, name, counted(name, method))
        strict._Namespace.__getattr__ = namespace_getattr
        strict.StrictArray.__getattr__ = array_getattr
        yield counts
    finally:
        for name, method in saved.items():
            setattr(strict.StrictArray, name, method)
        strict._Namespace.__getattr__, strict.StrictArray.__getattr__ = saved_getattr


def training_step(model_name, batch):
    """One training step of a Table 1 model on strict arrays."""
    import bench_training
    model, theta, x, labels = bench_training.problem(model_name, batch)
    return bench_training.refnode_step_fn(model, *strict.to_device((theta, x, labels)))


def adjoint_gradient(batch, dim=64, hidden=256):
    """``bench_gpu.py``'s adjoint (its problem and its runner) on strict arrays."""
    import bench_gpu
    f, theta, z0 = bench_gpu.problem(batch, np.float32, dim, hidden)
    return bench_gpu.refnode_runner(strict.namespace, f, theta, z0, lambda x: None)[1]


def count(run):
    """The Counter of one call of ``run`` after a warm-up call."""
    run()
    with counting() as counts:
        run()
    return counts


def report(counts, top):
    """Totals, then the ``top`` issuers by operations (views beside them)."""
    ops = sum(n for (_, kind), n in counts.items() if kind == "op")
    views = sum(n for (_, kind), n in counts.items() if kind == "view")
    by_issuer = collections.Counter()
    for (where, kind), n in counts.items():
        by_issuer[where] += 0 if kind == "view" else n
    lines = [f"{ops} operations and {views} views", "", "| issued by | operations | views |",
             "|---|---|---|"]
    for where, n in by_issuer.most_common(top):
        lines.append(f"| {where} | {n} | {counts[where, 'view']} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=("training", "adjoint"))
    parser.add_argument("model", nargs="?", default="odenet",
                        choices=("mlp", "resnet", "odenet", "rknet"))
    parser.add_argument("--batch", type=int, help="default 8 (training), 1024 (adjoint)")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    if args.workload == "training":
        run, what = training_step(args.model, args.batch or 8), f"{args.model} training step"
    else:
        run, what = adjoint_gradient(args.batch or 1024), "bench_gpu adjoint"
    print(f"{what}, batch {args.batch or (8 if args.workload == 'training' else 1024)}: ", end="")
    print(report(count(run), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
