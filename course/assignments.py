"""The course's assignments, as data: what each one blanks in refnode.

``refnode course build DIR`` reads this table. Each assignment is a folder next to this
file holding its statement (README.md) and its grading tests (test_*.py); the student's
template ``student.py`` is generated from refnode's own functions listed under
``blanks`` (signature and docstring kept, body replaced), so it cannot go stale, and the
reference solution is refnode itself (``REFNODE_SUBMISSION=refnode``).

``blanks`` maps the name in ``student.py`` to refnode's function ``module:qualified.name``
(a method keeps its ``self``), or to the course's own reference solution
(``course.solutions.*``) where refnode has no function that is the exercise (05's traces
are fused into the fields' forward-mode passes; the capstone's solver and training loop
are the student's own wiring); their grading compares them against refnode's functions.
``given`` is the import block at the top of the template.
"""

#: The capstone's imports: refnode's spiral demo, optimizer and reverse-solve settings,
#: and the student's own rk_step (01) and adjoint_sweep (04) from the handout's folders.
CAPSTONE_GIVEN = '''import importlib.util
import math
from pathlib import Path

import numpy as np

from refnode.demo import make_model, reference_solution, sample_windows, spiral_times, window_loss
from refnode.methods import METHODS
from refnode.optim import Adam
from refnode.options import Adjoint
from refnode.params import flatten

#: RK4 steps of at most this length.
MAX_STEP = 0.01


def previous(folder):
    """Your student.py of an earlier assignment of this handout (to hand in one file,
    paste your rk_step and your assignment 04's functions here instead)."""
    path = Path(__file__).resolve().parent.parent / folder / "student.py"
    spec = importlib.util.spec_from_file_location(f"your_{folder}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rk_step = previous("01_rk_step").rk_step                  # assignment 01
adjoint_sweep = previous("04_adjoint").adjoint_sweep      # assignment 04
'''

ASSIGNMENTS = [
    {"folder": "01_rk_step",
     "title": "A Runge-Kutta step from a Butcher tableau, and its order measured",
     "minutes": 60,
     "blanks": {"rk_step": "refnode.rk_step:rk_step"},
     "given": "import numpy as np\n"},
    {"folder": "02_error_control",
     "title": "Error control: the embedded error, its norm, the step-size controller",
     "minutes": 60,
     "blanks": {"scaled_error": "refnode.step_size:scaled_error",
                "error_ratio": "refnode.step_size:error_ratio",
                "step_factor": "refnode.step_size:step_factor"},
     "given": "import numpy as np\n\n"
              "from refnode.step_size import MAX_FACTOR, MIN_FACTOR, SAFETY, rms\n"},
    {"folder": "03_layer_vjps",
     "title": "Hand VJPs of an ODE function's layers: ConcatLinear, tanh, an MLP",
     "minutes": 90,
     "blanks": {"concat_linear_vjp": "refnode.nn.dense:ConcatLinear.vjp",
                "tanh_vjp": "refnode.nn.activations:Tanh.vjp",
                "sequential_vjp": "refnode.nn.base:Sequential.vjp"},
     "given": "import numpy as np\n"},
    {"folder": "04_adjoint",
     "title": "The adjoint method: the augmented dynamics and Algorithm 2's reverse sweep",
     "minutes": 120,
     "blanks": {"augmented_dynamics": "refnode.adjoint:augmented_dynamics",
                "at_output_time": "refnode.adjoint:at_output_time",
                "adjoint_sweep": "refnode.adjoint:adjoint_sweep"},
     "given": "import numpy as np\n\n"
              "from refnode.adjoint import (AugmentedState, add_stats, channel_norm_of, "
              "last_state,\n                            solve_back)\n"
              "from refnode.dynamics import value_and_vjp\n"
              "from refnode.params import tree_scale, tree_zeros_like\n"},
    {"folder": "05_cnf",
     "title": "The instantaneous change of variables: a CNF's log-density, exact and Hutchinson",
     "minutes": 90,
     "blanks": {"trace_exact": "course.solutions.cnf:trace_exact",
                "trace_hutchinson": "course.solutions.cnf:trace_hutchinson",
                "cnf_dynamics": "course.solutions.cnf:cnf_dynamics",
                "log_density": "course.solutions.cnf:log_density"},
     "given": "import numpy as np\n\n"
              "from refnode.models.ffjord import draw_noise\n"
              "from refnode.models.planar_flow import standard_normal_logpdf\n"},
    {"folder": "06_capstone",
     "title": "Capstone: the spiral fitted with your own solver and adjoint, verified by refnode",
     "minutes": 120,
     "blanks": {"rk_solve": "course.solutions.capstone:rk_solve",
                "odeint": "course.solutions.capstone:odeint",
                "flat_dynamics": "course.solutions.capstone:flat_dynamics",
                "verify_solve": "course.solutions.capstone:verify_solve",
                "train_spiral": "course.solutions.capstone:train_spiral"},
     "given": CAPSTONE_GIVEN},
]
