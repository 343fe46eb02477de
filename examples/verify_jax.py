"""Verify JAX's ``jax.experimental.ode.odeint`` gradients against refnode's golden values.

    python examples/verify_jax.py [--rtol 1e-7] [--atol 1e-10]

The adapter is built in (:mod:`refnode.reference.adapters.for_jax`: JAX's argument order
``func(y, t, p)`` and decreasing times are mapped there); this script is the same as
``refnode verify --library jax ...``. diffrax: ``refnode verify --library diffrax
--gradient recursive-checkpoint|backsolve|direct``. Without JAX the command says so and
exits 2.
"""

import sys

from refnode import cli


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    return cli.main(["verify", "--library", "jax", *argv])


if __name__ == "__main__":
    sys.exit(main())
