"""Hypothesis over bad input to the solver entry points: a RefnodeError or a right answer.

Each example starts from a valid call and replaces one argument with a value drawn from
a pool of bad ones (wrong types, shapes, dtypes, signs, non-finite numbers, complex
numbers, strings, None, nested junk). The rule, for ``odeint``, ``solve``,
``odeint_vjp`` and its ``vjp``, and ``Solution.dense``: the call returns a finite answer
of the documented shape, or raises a :class:`refnode.errors.RefnodeError` — never a raw
TypeError, ValueError, IndexError, ZeroDivisionError or a warning turned silent result.
The counts of what was tried are printed with ``pytest -s`` (``FUZZ_COUNTS``).
"""

import collections
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refnode as rn
from refnode.errors import RefnodeError

pytestmark = pytest.mark.adaptive

#: outcome counts per (entry point, argument): "ok" or the RefnodeError's class name.
FUZZ_COUNTS = collections.Counter()

JUNK = [None, "1.0", b"x", 1j, np.nan, np.inf, -np.inf, -1.0, 0.0, 1e308, -1e-300, True,
        [], [[]], [1.0, "a"], [[1.0], [1.0, 2.0]], {"a": 1.0}, object(), np.array([]),
        np.zeros((2, 2)), np.array([np.nan]), np.array([1.0 + 1j]), np.float16(1.0), 10 ** 30]

BAD = {
    "f": JUNK + [lambda t, z, theta: None, lambda t, z, theta: z[:1],
                 lambda t, z, theta: np.zeros(5), lambda t, z, theta: "dz",
                 lambda t, z, theta: z.astype(np.float32), lambda t, z, theta: z * np.nan,
                 lambda t, z, theta: z + 0j, lambda t, z, theta: [1.0, 2.0]],
    "z0": JUNK + [np.zeros(0), np.ones(2, np.float16), np.array(["a", "b"]),
                  np.ones((2, 0)), np.array([1e308, 1e308])],
    "t": JUNK + [np.array([0.0, 0.0]), np.array([0.0, 1.0, 0.5]), np.array([[0.0, 1.0]]),
                 np.array([0.0, np.nan]), [0.0, 1e-320], np.array([1.0 + 1j, 2.0]), "0,1"],
    "theta": JUNK,
    "method": JUNK + ["nope", 5, "DOPRI5", rn.methods.METHODS["rk4"]],
    "rtol": JUNK + [np.array([1e-6, 1e-6, 1e-6]), np.array([-1e-6, 1e-6]), 1e-20, "1e-6"],
    "atol": JUNK + [np.array([[1e-9]]), np.array([1e-9, -1.0])],
    "step_size": JUNK + [1e-12],
    "n_steps": JUNK + [0, -3, 2.5, np.int64(2), 10 ** 9],
    "control": JUNK + [dict(max_steps=1), rn.StepControl(max_steps=1),
                       rn.StepControl(first_step=1e-30), rn.StepControl(min_step=10.0)],
    "dense": JUNK + ["yes", 1],
    "batch": JUNK + ["independent", "Independent", "per-sample"],
    "gradient": JUNK + ["adjoint ", "Discrete", rn.Adjoint(method="euler"),
                        rn.Adjoint(max_steps=1), rn.Adjoint(rtol=1e-3)],
}

VALID = dict(f=lambda t, z, theta: -theta * z, z0=np.array([1.0, 2.0]),
             t=np.array([0.0, 0.5, 1.0]), theta=0.7, method="dopri5", rtol=1e-6, atol=1e-8)


def check_rule(entry, argument, call):
    """Run ``call``: a RefnodeError or a finite result pass; anything else fails the test."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("error")                 # a ComplexWarning is a silent cut
            result = call()
    except RefnodeError as err:
        assert str(err), "a RefnodeError must say what happened"
        FUZZ_COUNTS[(entry, argument, type(err).__name__)] += 1
        return None
    FUZZ_COUNTS[(entry, argument, "ok")] += 1
    return result


def assert_finite(*arrays):
    for a in arrays:
        if a is not None:
            assert np.all(np.isfinite(np.asarray(a, dtype=np.complex128))), a


#: Three times the profile's examples: 60 in CI (profile "ci"), 900 with "thorough".
fuzz = settings(max_examples=3 * settings.default.max_examples, deadline=None,
                suppress_health_check=list(HealthCheck))


@fuzz
@given(argument=st.sampled_from(["f", "z0", "t", "theta", "method", "rtol", "atol",
                                 "step_size", "n_steps", "control", "dense", "batch"]),
       data=st.data())
def test_solve_and_odeint_refuse_or_answer(argument, data):
    value = data.draw(st.sampled_from(BAD[argument]), label=argument)
    kwargs = dict(VALID)
    kwargs[argument] = value
    for entry, fn in (("solve", rn.solve), ("odeint", rn.odeint)):
        result = check_rule(entry, argument, lambda: fn(**kwargs))
        if result is not None:
            z = result.z if entry == "solve" else result
            assert np.asarray(z).shape[0] == len(np.atleast_1d(kwargs["t"]))
            assert_finite(z)


@fuzz
@given(argument=st.sampled_from(["f", "z0", "t", "theta", "method", "rtol", "atol",
                                 "step_size", "n_steps", "control", "batch", "gradient"]),
       cotangent=st.sampled_from(["ones", "nan", "complex", "short", "list", "int", "none"]),
       data=st.data())
def test_odeint_vjp_and_its_vjp_refuse_or_answer(argument, cotangent, data):
    value = data.draw(st.sampled_from(BAD[argument]), label=argument)
    kwargs = dict(VALID)
    kwargs[argument] = value
    out = check_rule("odeint_vjp", argument, lambda: rn.odeint_vjp(**kwargs))
    if out is None:
        return
    z, vjp = out
    g = dict(ones=np.ones_like(z), nan=np.full_like(z, np.nan), complex=np.ones_like(z) + 1j,
             short=np.ones(z.shape[1:]), list=np.ones_like(z).tolist(),
             int=np.ones(z.shape, dtype=int), none=None)[cotangent]
    grads = check_rule("vjp", cotangent, lambda: vjp(g))
    if grads is not None:
        dz0, dtheta, dt = grads
        assert np.shape(dt) == (z.shape[0],)
        assert_finite(dz0, dt, None if dtheta is None else np.asarray(dtheta, dtype=float))


@fuzz
@given(tau=st.one_of(st.sampled_from(JUNK), st.floats(allow_nan=True, allow_infinity=True),
                     st.lists(st.floats(-1.0, 2.0), max_size=4)))
def test_dense_output_refuses_or_answers(tau):
    sol = rn.solve(VALID["f"], VALID["z0"], VALID["t"], 0.7, dense=True)
    result = check_rule("Solution.dense", "tau", lambda: sol.dense(tau))
    if result is not None:
        assert_finite(result)


# -- pairs of arguments ----------------------------------------------------------------------
# Each example replaces two arguments of the valid call, each drawn from its GOOD pool (valid
# alone) or its BAD pool: the pairs of GOOD values find the combinations that no single
# argument shows (batch="independent" with a z0 of one axis, rk4 with n_steps and a control,
# an Adjoint with a fixed-step method and a per-sample batch, a pytree theta traced by autograd).

Params = collections.namedtuple("Params", "k")


def leaf_sum(theta):
    """The sum of theta's leaves (1.0 for None): dynamics that accept any theta tree."""
    return 1.0 if theta is None else sum(rn.params.tree_leaves(theta))


class Decay:
    """f = -theta z with a hand-written VJP (theta a scalar)."""

    def __call__(self, t, z, theta):
        return -theta * z

    def vjp(self, t, z, theta, a):
        return -theta * a, -np.sum(a * z), 0.0


GOOD = {
    "f": [lambda t, z, theta: -z, lambda t, z, theta: -z * leaf_sum(theta),
          lambda t, z, theta: -theta * z + np.sin(t) * z, Decay()],
    "z0": [np.array([1.0]), np.ones((3, 2)), np.ones((2, 2)), np.array([1.0, 2.0], np.float32),
           np.array(1.0), [1.0, 2.0], np.ones((2, 1, 2))],
    "t": [np.array([1.0, 0.0]), np.array([0.0]), [0, 1], np.array([0.0, 1e-3]),
          np.linspace(0.0, 3.0, 4), np.array([0.0, 1.0], np.float32), np.array([-1.0, -2.0, -3.0])],
    "theta": [None, np.array([0.7, 0.7]), np.float32(0.7), 1, (0.7,), {"k": np.array(0.7)},
              Params(k=0.7), [np.array(0.3), (np.array([0.2]),)], np.full((3, 1), 0.7)],
    "method": ["rk4", "euler", "bosh3", "dop853", "tsit5", "heun_euler", "midpoint",
               rn.methods.METHODS["dopri5"]],
    "rtol": [1e-3, np.array([1e-6, 1e-3]), 1e-12, np.float32(1e-4), 1],
    "atol": [1e-3, np.array([1e-8, 1e-6]), 1e-300, np.array(1e-8)],
    "step_size": [0.1, 0.5, 2.0, np.float64(0.25), 1],
    "n_steps": [1, 3, np.int32(2)],
    "control": [rn.StepControl(max_steps=5), rn.StepControl(trace=True),
                rn.StepControl(first_step=0.01), rn.StepControl(min_step=1e-6),
                rn.StepControl(norm=lambda error, y0, y1: float(np.max(np.abs(error))) / 1e-6),
                rn.StepControl(max_steps=50, min_step=1e-3, first_step=0.5)],
    "dense": [True, False, np.True_],
    "batch": ["independent", "shared"],
    "gradient": ["adjoint", "discrete", "autograd", rn.Adjoint(method="euler"),
                 rn.Adjoint(method="rk4", n_steps=4), rn.Adjoint(method="rk4", step_size=0.1),
                 rn.Adjoint(rtol=1e-4, atol=1e-6), rn.Adjoint(seminorm=True),
                 rn.Adjoint(reset=False), rn.Adjoint(max_steps=3), rn.Adjoint(method="dop853")],
}

SOLVE_ARGUMENTS = ["f", "z0", "t", "theta", "method", "rtol", "atol", "step_size", "n_steps",
                   "control", "dense", "batch"]
VJP_ARGUMENTS = [a for a in SOLVE_ARGUMENTS if a != "dense"] + ["gradient"]


def draw_pair(data, arguments):
    """Two distinct arguments, each with a value valid alone (GOOD) or not (BAD)."""
    pair = data.draw(st.lists(st.sampled_from(arguments), min_size=2, max_size=2, unique=True),
                     label="arguments")
    kwargs = dict(VALID)
    for argument in pair:
        kwargs[argument] = data.draw(st.one_of(st.sampled_from(GOOD[argument]),
                                               st.sampled_from(BAD[argument])), label=argument)
    return "+".join(sorted(pair)), kwargs


def states_shape(kwargs):
    """The documented shape of the states, (len(t), *z0.shape)."""
    return (len(np.atleast_1d(np.asarray(kwargs["t"]))),) + np.shape(kwargs["z0"])


def assert_like(grad, value):
    """``grad`` has the structure and leaf shapes of ``value`` (a theta tree)."""
    leaves, want = rn.params.tree_leaves(grad), rn.params.tree_leaves(value)
    assert [np.shape(g) for g in leaves] == [np.shape(w) for w in want], (grad, value)
    assert type(grad) is type(value) or not isinstance(value, (tuple, list, dict)), (grad, value)


@fuzz
@given(data=st.data())
def test_pairs_solve_and_odeint_refuse_or_answer(data):
    pair, kwargs = draw_pair(data, SOLVE_ARGUMENTS)
    for entry, fn in (("solve", rn.solve), ("odeint", rn.odeint)):
        result = check_rule(entry, pair, lambda: fn(**kwargs))
        if result is not None:
            z = result.z if entry == "solve" else result
            assert np.shape(z) == states_shape(kwargs)
            assert_finite(z)


@fuzz
@given(cotangent=st.one_of(st.just("ones"), st.sampled_from(["nan", "complex", "short", "list",
                                                              "int", "none"])),
       data=st.data())
def test_pairs_odeint_vjp_and_its_vjp_refuse_or_answer(cotangent, data):
    pair, kwargs = draw_pair(data, VJP_ARGUMENTS)
    out = check_rule("odeint_vjp", pair, lambda: rn.odeint_vjp(**kwargs))
    if out is None:
        return
    z, vjp = out
    assert np.shape(z) == states_shape(kwargs)
    assert_finite(z)
    g = dict(ones=np.ones_like(z), nan=np.full_like(z, np.nan), complex=np.ones_like(z) + 1j,
             short=np.ones(z.shape[1:]), list=np.ones_like(z).tolist(),
             int=np.ones(z.shape, dtype=int), none=None)[cotangent]
    grads = check_rule("vjp", pair + "/" + cotangent, lambda: vjp(g))
    if grads is not None:
        dz0, dtheta, dt = grads
        assert np.shape(dz0) == np.shape(kwargs["z0"])
        assert np.shape(dt) == (z.shape[0],)
        if kwargs["theta"] is None:
            assert dtheta is None
        else:
            assert_like(dtheta, kwargs["theta"])
        assert_finite(dz0, dt, *(rn.params.tree_leaves(dtheta) if dtheta is not None else []))


@fuzz
@given(tau=st.one_of(st.sampled_from(JUNK), st.floats(allow_nan=True, allow_infinity=True),
                     st.lists(st.floats(-3.0, 3.0), max_size=4), st.floats(-3.0, 3.0)),
       data=st.data())
def test_pairs_dense_output_refuses_or_answers(tau, data):
    pair, kwargs = draw_pair(data, [a for a in SOLVE_ARGUMENTS if a != "dense"])
    kwargs["dense"] = True
    sol = check_rule("solve(dense=True)", pair, lambda: rn.solve(**kwargs))
    if sol is None:
        return
    assert sol.dense, "dense=True was accepted, so the solution must keep its dense output"
    result = check_rule("Solution.dense", pair, lambda: sol.dense(tau))
    if result is not None:
        z0_shape = np.shape(kwargs["z0"])
        assert np.shape(result) == (z0_shape if np.ndim(tau) == 0 else (len(tau),) + z0_shape)
        assert_finite(result)


def test_the_fuzz_saw_both_outcomes():
    """Runs last in this file: the pools must produce both outcomes. The counts are printed
    into the captured output (shown with ``pytest -s``, never in a quiet run)."""
    if not FUZZ_COUNTS:
        pytest.skip("run with the other tests of this file")
    total = sum(FUZZ_COUNTS.values())
    errors = sum(n for (_, _, kind), n in FUZZ_COUNTS.items() if kind != "ok")
    print(f"\nFUZZ_COUNTS: {total} calls, {errors} clear refnode errors, {total - errors} answers")
    assert any(kind == "ok" for _, _, kind in FUZZ_COUNTS)
    assert any(kind != "ok" for _, _, kind in FUZZ_COUNTS)
