"""How much refnode code one gradient runs: the functions and modules executed.

    python benchmarks/count_calls.py

Runs ``z, vjp = rn.odeint_vjp(...); vjp(g)`` once with dopri5 and the adjoint on dz/dt =
tanh(z A) (after one warm-up call, so imports and first-call caches are not counted), and
counts with ``sys.setprofile`` every call of a Python function defined in the refnode
package: the number of calls, the number of distinct functions and the number of distinct
modules they live in. A shorter count is less code a reader must follow to see how a
gradient is computed, and less fixed cost per step.
"""

import collections
import os
import sys

import autograd.numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import refnode as rn  # noqa: E402

PACKAGE = os.path.dirname(os.path.abspath(rn.__file__))


def f(t, z, theta):
    """dz/dt = tanh(z A): a plain function (its VJP comes from autograd)."""
    return np.tanh(z @ theta)


def gradient(f, theta, z0, t):
    z, vjp = rn.odeint_vjp(f, z0, t, theta, method="dopri5", rtol=1e-6, atol=1e-6,
                           gradient="adjoint")
    return vjp(np.ones_like(z))


def count(fn):
    """Calls per (module, function) of refnode code while ``fn()`` runs."""
    calls = collections.Counter()

    def profiler(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGE):
            module = os.path.relpath(frame.f_code.co_filename, PACKAGE)
            calls[(module, frame.f_code.co_qualname)] += 1

    sys.setprofile(profiler)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def main():
    rng = np.random.default_rng(0)
    theta, z0, t = 0.5 * rng.standard_normal((2, 2)), rng.standard_normal((4, 2)), np.linspace(0.0, 1.0, 3)
    gradient(f, theta, z0, t)                               # warm-up
    calls = count(lambda: gradient(f, theta, z0, t))
    modules = sorted({module for module, _ in calls})
    print(f"one odeint_vjp + vjp (dopri5, adjoint): {sum(calls.values())} calls of "
          f"{len(calls)} refnode functions in {len(modules)} modules")
    print("modules: " + ", ".join(modules))
    return 0


if __name__ == "__main__":
    sys.exit(main())
