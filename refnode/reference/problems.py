"""Named reference problems: dynamics, parameters, initial state, times and cotangents.

Every problem asks for the same things. Solve dz/dt = f(t, z, θ) from z(t_0) = z_0 and
report the states z(t_i) at every time, and the gradients of

    L = Σ_i ⟨g_i, z(t_i)⟩

with respect to z_0, every named parameter in θ, and every t_i. The cotangents g_i are
fixed: ``g.flat[k] = sin(k + 1)`` in C order over the array of shape (N, *z0.shape), so
every entry is nonzero and the loss touches every state at every time.

Inputs are built to come out the same, bit for bit, on every machine: from literals,
``+ − × ÷`` and ``sqrt`` (which IEEE 754 rounds correctly), never from NumPy's ``**``,
whose SIMD kernels differ by a unit in the last place from one CPU to another. The sines
of the cotangents go through ``math.sin`` (one scalar libm call each, whatever the NumPy
build); the golden files store every input, and the tests check that these builders
still give them, bit for bit.

=================  ==========================================  ===================
name               dynamics                                    answer
=================  ==========================================  ===================
linear             dz/dt = A z, batch of 2, D = 3              closed form (expm)
decay              dz/dt = −k z                                closed form
oscillator         x'' + 2ζω x' + ω² x = 0, z = (x, x')        closed form
spiral             dz/dt = z³ A                                computed twice
mlp                dz/dt = tanh(z W1ᵀ + b1) W2ᵀ + b2, batch 3  computed twice
cnf                planar CNF on [z, ℓ], dℓ/dt = −tr ∂f/∂z      computed twice
sensitive          dz/dt = A z, error control blind to ∂/∂z0   closed form (expm)
backward           dz/dt = A z, 25 output times, t decreasing  closed form (expm)
relu               dz/dt = relu(z W1ᵀ + b1) W2ᵀ + b2, batch 3  adjoint, twice; spread
stiff              dz/dt = A z, eigenvalues −0.5 ± 2i, −300     closed form (expm)
=================  ==========================================  ===================

The last four separate correct gradients from plausible ones: ``sensitive`` is solved
exactly in the direction error control sees, so discretise-then-optimise gradients
(the discrete adjoint, backprop through the solver) miss ∂L/∂z0 at any rtol;
``backward`` checks the bookkeeping of many output times in decreasing order;
``relu`` has a field that is not differentiable, where discrete and continuous
gradients differ by far more than rtol (its golden file states the expected spread
instead of a pass/fail rule); ``stiff`` makes an explicit solver reject steps often.

``get_problem(name)`` returns a :class:`Problem`; ``PROBLEM_NAMES`` lists them in order.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..models.cnf import CNFDynamics, PlanarField
from ..models.planar_flow import standard_normal_logpdf
from . import closed_form
from .fields import (DecayField, LinearField, MLPField, NamedParameters, OscillatorField,
                     ReLUField, SpiralField)

#: Seeds of the random parameters and initial states (mlp, cnf); the values are in the
#: golden files, so nobody needs NumPy's generator to reproduce them.
MLP_SEED, CNF_SEED, RELU_SEED = 20180619, 1806_07366, 20180620
#: Sizes of the planar CNF: D = 2, M = 4 units, hypernetwork width 8, batch 3.
CNF_DIM, CNF_WIDTH, CNF_HIDDEN, CNF_BATCH = 2, 4, 8, 3


@dataclass
class Problem:
    """One reference problem.

    Attributes
    ----------
    name, description, equation : str
        What it is, in words and as an equation (refnode's row-vector convention).
    f : callable
        ``f(t, z, theta) -> dz/dt`` on NumPy arrays, with a hand-derived ``f.vjp``;
        ``theta`` is a dict of named arrays.
    theta : dict of str -> ndarray
    z0 : ndarray, shape (D,) or (B, D)
    t : ndarray, shape (N,)
    closed_form : callable or None
        ``closed_form(theta, z0, t, g) -> (states, {"z0", "theta", "t"})`` where an
        exact answer exists.
    parameter_notes : dict of str -> str
        What each parameter is, for the golden file.
    extras : callable or None
        ``extras(states) -> dict`` of derived outputs (the CNF's log-densities).
    """

    name: str
    description: str
    equation: str
    f: object
    theta: dict
    z0: np.ndarray
    t: np.ndarray
    closed_form: object = None
    parameter_notes: dict = field(default_factory=dict)
    extras: object = None
    nonsmooth: bool = False

    @property
    def cotangents(self):
        """g of shape (N, *z0.shape): ``g.flat[k] = sin(k + 1)``."""
        shape = (len(self.t),) + np.shape(self.z0)
        values = [math.sin(k + 1) for k in range(int(np.prod(shape)))]
        return np.array(values, dtype=np.float64).reshape(shape)


def linear_problem():
    A = np.array([[-0.1, 2.0, 0.0], [-2.0, -0.1, 0.3], [0.0, -0.3, -0.5]])
    return Problem(
        "linear", "A linear system with a rotating and a decaying mode, on a batch of two "
        "initial states.", "dz/dt = A z  (rows: z Aᵀ)", LinearField(), {"A": A},
        np.array([[1.0, 0.0, 0.5], [-0.5, 1.0, 0.0]]), np.array([0.0, 0.5, 1.2, 2.0]),
        closed_form.linear_closed_form, {"A": "the system matrix, (3, 3)"})


def decay_problem():
    return Problem(
        "decay", "Exponential decay with a rate parameter.", "dz/dt = −k z", DecayField(),
        {"k": np.array(0.7)}, np.array([1.0, -2.0, 0.5]), np.array([0.0, 0.3, 1.0, 2.5]),
        closed_form.decay_closed_form, {"k": "the decay rate, a scalar"})


def oscillator_problem():
    return Problem(
        "oscillator", "An underdamped harmonic oscillator, z = (position x, velocity v).",
        "dx/dt = v,  dv/dt = −ω² x − 2ζω v", OscillatorField(),
        {"omega": np.array(2.0), "zeta": np.array(0.15)}, np.array([1.0, 0.0]),
        np.array([0.0, 0.4, 1.1, 2.0, 3.0]), closed_form.oscillator_closed_form,
        {"omega": "the undamped angular frequency ω", "zeta": "the damping ratio ζ (0 < ζ < 1)"})


def spiral_problem():
    return Problem(
        "spiral", "The cubic spiral of the paper's demo (torchdiffeq examples/ode_demo.py).",
        "dz/dt = z³ A  (z³ elementwise, a row vector times A)", SpiralField(),
        {"A": np.array([[-0.1, 2.0], [-2.0, -0.1]])}, np.array([2.0, 0.0]),
        np.array([0.0, 0.25, 0.5, 1.0]), None, {"A": "the mixing matrix, (2, 2)"})


def mlp_problem():
    rng = np.random.default_rng(MLP_SEED)
    D, H = 2, 8
    theta = {"W1": rng.standard_normal((H, D)) / np.sqrt(D), "b1": 0.1 * rng.standard_normal(H),
             "W2": rng.standard_normal((D, H)) / np.sqrt(H), "b2": 0.1 * rng.standard_normal(D)}
    return Problem(
        "mlp", "A small MLP vector field (2 -> 8 -> 2, tanh) on a batch of three states.",
        "dz/dt = tanh(z W1ᵀ + b1) W2ᵀ + b2", MLPField(), theta,
        rng.standard_normal((3, D)), np.array([0.0, 0.5, 1.0, 1.5]), None,
        {"W1": "(8, 2)", "b1": "(8,)", "W2": "(2, 8)", "b2": "(2,)"})


CNF_EQUATION = (
    "State s = [z, ℓ] of shape (B, 3), z in R². At time t a hypernetwork gives "
    "p = L3(tanh(L2(tanh(L1([t]))))) with Lk(x) = x Wkᵀ + bk, widths 1 -> 8 -> 8 -> 3MD + M "
    "(M = 4, D = 2); p splits, in order, into W (M, D), U_raw (M, D), G (M, D), b (M,), each "
    "row-major; U = U_raw ⊙ sigmoid(G). Then dz/dt = (1/M) Σ_m u_m tanh(w_mᵀz + b_m) and "
    "dℓ/dt = −tr ∂f/∂z = −(1/M) Σ_m (1 − tanh²(w_mᵀz + b_m)) u_mᵀw_m. "
    "log p(z(t)) = log N(z(t_0); 0, I) + ℓ(t) with ℓ(t_0) = 0.")


def cnf_problem():
    planar = PlanarField(CNF_DIM, CNF_WIDTH, hidden=CNF_HIDDEN)
    rng = np.random.default_rng(CNF_SEED)
    template = planar.init(rng)
    names = [f"L{k + 1}.{key}" for k, layer in enumerate(t for t in template if t)
             for key in layer]
    f = NamedParameters(CNFDynamics(planar), template, names)
    theta = dict(zip(names, (leaf for layer in template for leaf in layer.values())))
    z = rng.standard_normal((CNF_BATCH, CNF_DIM))
    z0 = np.concatenate([z, np.zeros((CNF_BATCH, 1))], axis=1)

    def extras(states):
        """log p(z(t_i)) = log N(z(t_0)) + ℓ(t_i), shape (N, B)."""
        return {"log_density": standard_normal_logpdf(z)[None, :] + states[:, :, -1]}

    notes = {name: "hypernetwork weight (n_out, n_in)" if name.endswith("W") else
             "hypernetwork bias (n_out,)" for name in names}
    return Problem(
        "cnf", "The paper's planar continuous normalizing flow (§4, eq. 10) in 2-D, with "
        "its log-density change, on a batch of three points (refnode.models.cnf.PlanarField).",
        CNF_EQUATION, f, theta, z0, np.array([0.0, 0.5, 1.0]), None, notes, extras)


def sensitive_problem():
    A = np.array([[1.0, 0.0], [0.0, 0.0]])
    return Problem(
        "sensitive", "The first component is exactly zero along the solution, so a solver's "
        "error control never sees it and its steps grow without bound; yet ∂z(3)/∂z0[0] = e³. "
        "The discrete adjoint (backprop through the solver) misses ∂L/∂z0[0] and ∂L/∂A at any "
        "rtol; the continuous adjoint, which controls the error of a, does not.",
        "dz/dt = A z  (rows: z Aᵀ), A = [[1, 0], [0, 0]]", LinearField(), {"A": A},
        np.array([0.0, 1.0]), np.array([0.0, 3.0]), closed_form.linear_closed_form,
        {"A": "the system matrix, (2, 2)"})


def backward_problem():
    A = np.array([[-0.1, 1.5], [-1.5, -0.1]])
    x = np.arange(25) / 24.0
    return Problem(
        "backward", "A damped rotation solved backward in time (t decreasing from 5 to 0) "
        "to 25 unevenly spaced output times, on a batch of two states.",
        "dz/dt = A z  (rows: z Aᵀ), t_k = 5 (1 − (k/24)^1.5), k = 0..24", LinearField(),
        {"A": A}, np.array([[1.0, 0.0], [0.3, -0.8]]), 5.0 * (1.0 - x * np.sqrt(x)),
        closed_form.linear_closed_form, {"A": "the system matrix, (2, 2)"})


def relu_problem():
    rng = np.random.default_rng(RELU_SEED)
    D, H = 2, 8
    theta = {"W1": rng.standard_normal((H, D)) / np.sqrt(D), "b1": 0.1 * rng.standard_normal(H),
             "W2": rng.standard_normal((D, H)) / np.sqrt(H), "b2": 0.1 * rng.standard_normal(D)}
    return Problem(
        "relu", "A ReLU MLP vector field (2 -> 8 -> 2) on a batch of three states; the "
        "trajectories cross a unit's switching surface 9 times. The field is Lipschitz but not "
        "differentiable there, so discrete and continuous gradients converge at different "
        "rates: the golden file states the expected spread instead of a pass/fail rule.",
        "dz/dt = relu(z W1ᵀ + b1) W2ᵀ + b2", ReLUField(), theta,
        rng.standard_normal((3, D)), np.array([0.0, 0.5, 1.0, 1.5, 2.0]), None,
        {"W1": "(8, 2)", "b1": "(8,)", "W2": "(2, 8)", "b2": "(2,)"}, nonsmooth=True)


def stiff_problem():
    A = np.array([[-0.5, 2.0, 0.0], [-2.0, -0.5, 1.0], [0.0, 0.0, -300.0]])
    return Problem(
        "stiff", "A moderately stiff linear system: a slow damped rotation driven by a mode "
        "that decays 600 times faster. An explicit solver's steps sit at its stability limit "
        "and about one in ten is rejected. The 81 output times are 0.025 apart: an adjoint "
        "that rebuilds z backwards amplifies an error in the fast mode by e^(300 Δt) ≈ 1.8e3 "
        "between output times (with t = [0, 0.5, 1, 2] that would be e^300).",
        "dz/dt = A z  (rows: z Aᵀ), eigenvalues −0.5 ± 2i and −300, t_k = k/40, k = 0..80",
        LinearField(), {"A": A}, np.array([1.0, 0.0, 1.0]), np.linspace(0.0, 2.0, 81),
        closed_form.linear_closed_form, {"A": "the system matrix, (3, 3)"})


#: The problems, in the order reports list them.
BUILDERS = {"linear": linear_problem, "decay": decay_problem, "oscillator": oscillator_problem,
            "spiral": spiral_problem, "mlp": mlp_problem, "cnf": cnf_problem,
            "sensitive": sensitive_problem, "backward": backward_problem, "relu": relu_problem,
            "stiff": stiff_problem}
PROBLEM_NAMES = tuple(BUILDERS)


def get_problem(name):
    """The :class:`Problem` called ``name`` (one of :data:`PROBLEM_NAMES`)."""
    if name not in BUILDERS:
        raise InputError(f"unknown reference problem {name!r}; choose one of "
                         f"{', '.join(PROBLEM_NAMES)}.")
    return BUILDERS[name]()
