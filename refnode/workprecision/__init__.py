"""Work-precision diagrams: how much accuracy each solver and gradient buys per unit of work.

``refnode bench workprecision [--quick] [--json PATH] [--out DIR]`` runs

* :mod:`.forward`: every adaptive method of :mod:`refnode.methods`, with SciPy's RK45 and
  DOP853 beside them, on the problems of :mod:`.problems`: error at the end against
  function evaluations and against wall time, for rtol = atol = 1e-3 … 1e-12;
* :mod:`.gradients`: the adjoint (default and seminorm), the discrete adjoint, autograd and
  torchdiffeq's adjoint (where installed): gradient error against wall time;

and writes the records as JSON and the figures of :mod:`.plot`. ``quick`` shrinks it to one
problem, a few tolerances and one repeat, for a smoke test.
"""

import json
import os
import platform

import numpy as np

from ..files import atomic_write
from .forward import run_forward
from .gradients import run_gradients
from .problems import PROBLEMS

#: Tolerances of the full run: 1e-3, 1e-4, ..., 1e-12 (forward) and to 1e-10 (gradients).
FORWARD_TOLERANCES = tuple(10.0 ** -k for k in range(3, 13))
GRADIENT_TOLERANCES = tuple(10.0 ** -k for k in range(3, 11))
#: Quick run: one problem (closed-form reference, no reference solve), two tolerances, a low
#: step cap.
QUICK_PROBLEM, QUICK_TOLERANCES, QUICK_MAX_STEPS = "detest_b5", (1e-3, 1e-6), 1000
#: Full run: a method's sweep stops at the first tolerance needing more steps than this.
MAX_STEPS = 20000


def run(quick=False, repeats=3):
    """All records and the settings that produced them, as one JSON-ready dict."""
    if quick:
        problems, tolerances, repeats = [PROBLEMS[QUICK_PROBLEM]()], QUICK_TOLERANCES, 1
        records = run_forward(problems, tolerances, repeats, QUICK_MAX_STEPS)
        records += run_gradients(tolerances, repeats, quick=True)
    else:
        problems = [make() for make in PROBLEMS.values()]
        records = run_forward(problems, FORWARD_TOLERANCES, repeats, MAX_STEPS)
        records += run_gradients(GRADIENT_TOLERANCES, repeats)
    references = {p.name: dict(source=p.source, reference=p.reference,
                               reference_spread=p.reference_spread) for p in problems}
    settings = dict(quick=quick, repeats=repeats, numpy=np.__version__,
                    python=platform.python_version(),
                    threads=os.environ.get("OMP_NUM_THREADS", "unset"))
    return dict(settings=settings, problems=references, records=records)


def write_json(result, path):
    """Write ``result`` to ``path`` atomically (a temporary file renamed into place)."""
    return atomic_write(path, lambda out: json.dump(result, out, indent=1), "w")
