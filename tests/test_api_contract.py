"""The public entry points' contract with their caller.

* Each input is checked once per call: ``odeint``, ``solve`` and ``odeint_vjp`` (every
  gradient mode) run ``check_times``, ``check_state`` and ``check_tolerances`` once each.
* The gradient does not depend on what the caller does after the call: writing into
  z0, t, theta (nested trees included) or the returned states between ``odeint_vjp``
  and ``vjp(g)`` leaves the gradient unchanged, in every gradient and batch mode, and
  ``Solution.t`` is not the caller's array.
* A per-sample time cannot be read along the wrong axis (B == D).
* The three gradient routes agree on what is an error.
"""

import sys
from collections import Counter

import autograd.numpy as anp
import numpy as np
import pytest

import refnode as rn
from refnode import checks
from refnode.errors import InputError

pytestmark = pytest.mark.adjoint

CHECKS = {fn.__code__: fn.__name__ for fn in (checks.check_times, checks.check_state,
                                             checks.check_tolerances)}
GRADIENT_MODES = [("adjoint", "shared"), ("discrete", "shared"), ("autograd", "shared"),
                  ("adjoint", "independent"), ("discrete", "independent")]


def count_checks(call):
    """Run ``call`` and count the calls of each input check (by code object, so the
    count does not depend on how a module imported the check)."""
    counts = Counter()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in CHECKS:
            counts[CHECKS[frame.f_code]] += 1

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return counts


def decay(t, z, theta):
    return -theta * z


@pytest.mark.parametrize("entry", ["odeint", "solve"])
@pytest.mark.parametrize("batch", ["shared", "independent"])
def test_solve_checks_each_input_once(entry, batch):
    call = lambda: getattr(rn, entry)(decay, np.ones((2, 3)), [0.0, 1.0], 0.5,  # noqa: E731
                                      batch=batch)
    assert count_checks(call) == Counter(check_times=1, check_state=1, check_tolerances=1)


@pytest.mark.parametrize("gradient, batch", GRADIENT_MODES)
def test_odeint_vjp_checks_each_input_once(gradient, batch):
    def call():
        z, vjp = rn.odeint_vjp(decay, np.ones((2, 3)), [0.0, 0.5, 1.0], 0.5,
                               gradient=gradient, batch=batch)
        vjp(np.ones_like(z))

    assert count_checks(call) == Counter(check_times=1, check_state=1, check_tolerances=1)


def test_adjoint_tolerances_of_their_own_are_checked_too():
    with pytest.raises(InputError, match="rtol"):
        rn.odeint_vjp(decay, np.ones(2), [0.0, 1.0], 0.5, gradient=rn.Adjoint(rtol=1e-30))


# ------------------------------------------------------------------------ no aliasing

def tree_dynamics(t, z, theta):
    """dz/dt = -(a + b₀ + b₁ + c) z + w sin t, theta a nested tree (dict, list, tuple)."""
    rate = theta["a"] + anp.sum(theta["nested"][0]) + theta["nested"][1][0]
    return -rate * z + theta["w"] * anp.sin(t)


def tree_theta():
    return {"a": np.array(0.7), "nested": [np.array([0.1, 0.2]), (np.array(0.05),)],
            "w": np.array([0.3, -0.2])}


def scribble(tree):
    """Write into every array leaf of ``tree`` in place."""
    for leaf in rn.params.tree_leaves(tree):
        if isinstance(leaf, np.ndarray):
            leaf *= -3.0
            leaf += 11.0


def gradients(gradient, batch, mutate):
    z0 = np.array([[1.0, -0.5], [0.3, 0.8], [2.0, 0.1]])
    t = np.array([0.0, 0.4, 1.1])
    theta = tree_theta()
    z, vjp = rn.odeint_vjp(tree_dynamics, z0, t, theta, gradient=gradient, batch=batch,
                           rtol=1e-8, atol=1e-10)
    g = np.linspace(-1.0, 1.0, z.size).reshape(z.shape)
    z_before = z.copy()
    if mutate:
        scribble([z0, t, theta, z])
    first = vjp(g)
    if mutate:
        scribble(list(first))                # the returned gradients are the caller's too
    second = vjp(g)
    return z_before, first if not mutate else second


@pytest.mark.parametrize("gradient, batch", GRADIENT_MODES)
def test_gradient_ignores_writes_into_inputs_and_outputs(gradient, batch):
    z_clean, clean = gradients(gradient, batch, mutate=False)
    z_dirty, dirty = gradients(gradient, batch, mutate=True)
    np.testing.assert_array_equal(z_clean, z_dirty)
    for a, b in zip(rn.params.tree_leaves(clean), rn.params.tree_leaves(dirty)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch", ["shared", "independent"])
def test_solution_owns_its_times_and_states(batch):
    z0, t = np.ones((2, 2)), np.array([0.0, 0.5, 1.0])
    sol = rn.solve(decay, z0, t, 0.5, batch=batch)
    assert not np.shares_memory(sol.t, t) and not np.shares_memory(sol.z, z0)


# ------------------------------------------------------------ per-sample time's shape

def time_dependent(t, z, theta):
    return -z + anp.sin(t) * z


@pytest.mark.batch
@pytest.mark.parametrize("shape", [(3, 3), (3, 2), (2, 3), (3, 3, 3)])
def test_per_sample_time_pairs_each_row_with_its_own_time(shape):
    """t * z with B == D once paired column j with time j: 4.9e-3 off, silently."""
    z0 = np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape) / 10
    t = [0.0, 1.0, 2.0]
    shared = rn.odeint(time_dependent, z0, t, rtol=1e-10, atol=1e-12)
    independent = rn.odeint(time_dependent, z0, t, rtol=1e-10, atol=1e-12, batch="independent")
    np.testing.assert_allclose(independent, shared, rtol=1e-8, atol=1e-10)


@pytest.mark.batch
def test_per_sample_time_has_one_axis_per_state_axis():
    seen = []
    rn.odeint(lambda t, z, th: seen.append(np.shape(t)) or -z, np.ones((4, 2, 3)), [0.0, 1.0],
              batch="independent")
    assert set(seen) == {(4, 1, 1)}


# ------------------------------------------------------------- the routes agree on errors

def sqrt_decay(t, z, theta):
    return -0.5 * anp.sqrt(z)


@pytest.mark.parametrize("gradient", ["adjoint", "discrete", "autograd"])
def test_every_route_refuses_an_infinite_derivative(gradient):
    """dz/dt = -sqrt(z)/2 at z = 0: ∂f/∂z is infinite. autograd once returned dz0 = [nan, 1.75]."""
    z, vjp = rn.odeint_vjp(sqrt_decay, np.array([0.0, 1.0]), [0.0, 1.0], gradient=gradient)
    with pytest.raises(InputError, match="non-finite"), np.errstate(all="ignore"):
        vjp(np.ones_like(z))


# --------------------------------------------------- raw exceptions at the API's edges

class LaterBad:
    """f that answers -z at first, then ``bad(z)`` from its ``after``-th call on."""

    def __init__(self, bad, after=2):
        self.bad, self.after, self.calls = bad, after, 0

    def __call__(self, t, z, theta):
        self.calls += 1
        return -z if self.calls < self.after else self.bad(z)

    def vjp(self, t, z, theta, a):
        return -a, None, 0.0


BAD_VALUES = {"shape": lambda z: -z[:1], "list": lambda z: list(-z),
              "dtype": lambda z: (-z).astype(np.float32)}
PATHS = {"dopri5": dict(), "rk4": dict(method="rk4", n_steps=3),
         "independent": dict(batch="independent")}


@pytest.mark.parametrize("bad", sorted(BAD_VALUES))
@pytest.mark.parametrize("path", sorted(PATHS))
def test_f_changing_its_output_after_t0_is_refused_by_name(bad, path):
    with pytest.raises(InputError, match="dz/dt must have the state's shape|keep the dynamics in the state's precision"):
        rn.odeint(LaterBad(BAD_VALUES[bad]), np.ones((2, 2)), [0.0, 1.0], **PATHS[path])


@pytest.mark.parametrize("bad", sorted(BAD_VALUES))
@pytest.mark.parametrize("gradient", ["discrete", "adjoint"])
def test_f_changing_its_output_in_the_reverse_pass_is_refused_by_name(bad, gradient):
    f = LaterBad(BAD_VALUES[bad], after=10 ** 9)
    z, vjp = rn.odeint_vjp(f, np.ones((2, 2)), [0.0, 1.0], gradient=gradient)
    f.after = 0
    with pytest.raises(InputError, match="dz/dt must have the state's shape|keep the dynamics in the state's precision"):
        vjp(np.ones_like(z))


@pytest.mark.parametrize("batch", ["shared", "independent"])
@pytest.mark.parametrize("answer", ["small", np.ones((2, 2)), np.ones(3), None])
def test_a_norm_that_does_not_answer_a_number_is_refused(answer, batch):
    control = rn.StepControl(norm=lambda error, y0, y1: answer)
    with pytest.raises(InputError, match="the error norm"):
        rn.odeint(decay, np.ones((2, 2)), [0.0, 1.0], 0.5, control=control, batch=batch)


@pytest.mark.parametrize("gradient", ["autograd", "discrete", "adjoint"])
def test_namedtuple_theta_keeps_its_type_in_every_route(gradient):
    from collections import namedtuple
    Rates = namedtuple("Rates", "k shift")
    theta = Rates(np.array(0.5), {"x": np.array([0.1, 0.2])})
    f = lambda t, z, th: -th.k * z + th.shift["x"]       # noqa: E731
    z, vjp = rn.odeint_vjp(f, np.ones(2), [0.0, 1.0], theta, gradient=gradient, rtol=1e-10,
                           atol=1e-12)
    dtheta = vjp(np.ones_like(z))[1]
    _, reference = rn.odeint_vjp(lambda t, z, th: -th[0] * z + th[1]["x"], np.ones(2),
                                 [0.0, 1.0], (np.array(0.5), {"x": np.array([0.1, 0.2])}),
                                 gradient="discrete", rtol=1e-10, atol=1e-12)
    assert type(dtheta) is Rates
    np.testing.assert_allclose(dtheta.k, reference(np.ones_like(z))[1][0], rtol=1e-6)


@pytest.mark.parametrize("entry", ["odeint", "odeint_vjp"])
def test_a_theta_that_contains_itself_is_refused(entry):
    theta = [np.array(1.0)]
    theta.append(theta)
    with pytest.raises(InputError, match="theta contains itself"):
        getattr(rn, entry)(decay, np.ones((2, 2)), [0.0, 1.0], theta, batch="independent")


@pytest.mark.parametrize("kind", ["matrix", "masked"])
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")     # np.matrix itself
def test_matrix_and_masked_states_are_refused(kind):
    z0 = (np.matrix([[1.0, 2.0]]) if kind == "matrix"
          else np.ma.masked_array([1.0, 2.0], mask=[0, 1]))
    with pytest.raises(InputError, match=r"np.asarray\(z0\)"):
        rn.odeint(decay, z0, [0.0, 1.0], 0.5)


def test_big_endian_state_is_solved_in_native_order():
    z = rn.odeint(decay, np.ones(2, dtype=">f8"), [0.0, 1.0], 0.5)
    np.testing.assert_allclose(z[-1], np.exp(-0.5), rtol=1e-6)


def test_times_whose_difference_overflows_are_refused():
    with pytest.raises(InputError, match="overflows float64"):
        rn.odeint(decay, np.ones(2), [-1e308, 1e308], 0.5, method="rk4", step_size=1e308)


@pytest.mark.parametrize("where", ["b", "A"])
def test_a_tableau_with_a_text_coefficient_is_refused(where):
    fields = dict(name="x", A=[[0, 0], [0.5, 0]], b=[0, 1], c=[0, 0.5], order=2)
    if where == "b":
        fields["b"] = [0, "1"]
    else:
        fields["A"] = [[0, 0], ["0.5", 0]]
    with pytest.raises(InputError, match=f"{where} holds '"):
        rn.ButcherTableau(**fields)
