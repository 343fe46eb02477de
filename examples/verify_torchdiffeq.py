"""Verify torchdiffeq's gradients against refnode's golden values.

    python examples/verify_torchdiffeq.py [--gradient adjoint|backprop] [--rtol 1e-7] [--atol 1e-10]

The adapter is built in (:mod:`refnode.reference.adapters.for_torchdiffeq`); this script is
the same as ``refnode verify --library torchdiffeq ...``. Writing an adapter for another
library: ``refnode verify --callable mypkg.mod:solve`` with a ``solve(problem) -> dict``
like the built-in ones (docs/verify.md). Without torch and torchdiffeq the command says so
and exits 2.
"""

import sys

from refnode import cli


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    return cli.main(["verify", "--library", "torchdiffeq", *argv])


if __name__ == "__main__":
    sys.exit(main())
