"""Built-in adapters: other libraries' solvers and gradients, as ``refnode verify`` callables.

    refnode verify --library torchdiffeq [--gradient adjoint|backprop]
    refnode verify --library jax
    refnode verify --library diffrax [--gradient recursive-checkpoint|backsolve|direct]
    refnode verify --library torchode [--gradient backprop]

One module per library (``for_<library>``) rebuilds each reference problem's dynamics in
that framework from the golden file's parameters, solves with the library's dopri5 at
the requested rtol/atol, and returns the states and the gradients of L = Σ_i ⟨g_i, z(t_i)⟩
in refnode's layout. Conventions are mapped in the adapter, never left to the reader:
argument order (JAX's ``func(y, t, p)``), batch layout (torchode solves a batch of
independent problems: the whole state is one of them), decreasing times (JAX's odeint
wants increasing t: the adapter integrates in s = −t and negates ∂L/∂s). Where a library
cannot give a quantity the adapter says so in ``results["unsupported"]``, and the report
shows "n/s" (neither pass nor fail).

The frameworks are optional (``pip install 'refnode[verify]'``); asking for a library
that is not installed raises :class:`LibraryMissingError` with a one-line message.
"""

import importlib

from ...errors import InputError

#: library -> (module, gradient modes; the first is the default).
LIBRARIES = {
    "torchdiffeq": ("for_torchdiffeq", ("adjoint", "backprop")),
    "jax": ("for_jax", ("adjoint",)),
    "diffrax": ("for_diffrax", ("recursive-checkpoint", "backsolve", "direct")),
    "torchode": ("for_torchode", ("backprop",)),
    "refnode": ("for_refnode", ("adjoint", "discrete")),
}

#: Which dynamics each reference problem has (the adapters build one function per kind).
KIND = {"linear": "linear", "sensitive": "linear", "backward": "linear", "stiff": "linear",
        "decay": "decay", "oscillator": "oscillator", "spiral": "spiral", "mlp": "mlp",
        "relu": "relu", "cnf": "cnf"}

#: Sizes of the planar CNF's hypernetwork output: M units in D dimensions
#: (refnode.reference.problems.CNF_WIDTH, CNF_DIM).
CNF_M, CNF_D = 4, 2


class LibraryMissingError(InputError):
    """The library asked for is not installed."""


def library_names():
    return tuple(LIBRARIES)


def gradient_modes(library):
    """The gradient modes of ``library`` (the first is the default)."""
    check_library(library)
    return LIBRARIES[library][1]


def check_library(library, gradient=None):
    """An InputError for an unknown library or a mode the library does not have."""
    if library not in LIBRARIES:
        raise InputError(f"unknown library {library!r}; choose one of {', '.join(LIBRARIES)}.")
    modes = LIBRARIES[library][1]
    if gradient is not None and gradient not in modes:
        raise InputError(f"{library} has no gradient mode {gradient!r}; choose one of "
                         f"{', '.join(modes)}.")


def load_adapter(library, gradient=None):
    """The adapter module of ``library`` and the gradient mode (default: the library's first).

    Returns
    -------
    module : with ``solve(problem, gradient) -> results``, ``versions() -> dict`` and
        ``DESCRIPTION`` (str, keyed by mode)
    gradient : str
    """
    check_library(library, gradient)
    module_name, modes = LIBRARIES[library]
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ImportError as err:
        missing = getattr(err, "name", None) or str(err)
        raise LibraryMissingError(
            f"{library} is not installed (missing module {missing!r}); "
            f"pip install 'refnode[verify]' or pip install {library}.") from err
    return module, gradient or modes[0]


def adapter_callable(library, gradient=None):
    """``fn(problem) -> results`` for :func:`refnode.verify.verify_callable`, and a label."""
    module, gradient = load_adapter(library, gradient)
    versions = ", ".join(f"{k} {v}" for k, v in module.versions().items())

    def solve(problem):
        return module.solve(problem, gradient)

    return solve, f"{library} {module.DESCRIPTION[gradient]} ({versions})"


def kind_of(problem):
    """The dynamics kind of a problem dict (KeyError-free: an InputError for a new problem)."""
    if problem["name"] not in KIND:
        raise InputError(f"no built-in adapter dynamics for problem {problem['name']!r}.")
    return KIND[problem["name"]]


def results(states, dz0, dtheta, dt, problem, unsupported=None):
    """The results dict in refnode's layout (NumPy arrays), extras from the states."""
    extras = problem["extras"](states) if problem["extras"] is not None else {}
    out = dict(states=states, gradients=dict(z0=dz0, theta=dtheta, t=dt), extras=extras)
    if unsupported:
        out["unsupported"] = dict(unsupported)
        if dt is None:
            out["gradients"].pop("t")
    return out
