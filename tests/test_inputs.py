"""Every bad input raises the documented exception, with a message that says what to do.

Input errors (refnode.errors.InputError, a ValueError) come before any work: at most the
one evaluation f(t0, z0) that checks the dynamics' shape and dtype. Failures during a solve
(NonFiniteStateError, StepSizeUnderflowError, MaxStepsExceededError) name the time reached.
"""

import numpy as np
import pytest

import refnode as rn
from refnode.errors import (InputError, MaxStepsExceededError, NonFiniteStateError, SolverError,
                            StepSizeUnderflowError)
from refnode.methods import METHODS

from problems import BLOWUP, GAUSSIAN, ROTATION, SPIRAL_Z0, spiral_f

pytestmark = pytest.mark.rk


class CountingF:
    """Dynamics that count their calls (to check that no work is done on bad input)."""

    def __init__(self, f=ROTATION.f):
        self.f, self.calls = f, 0

    def __call__(self, t, z, theta):
        self.calls += 1
        return self.f(t, z, theta)


BAD_INPUTS = [
    # (keyword overrides, message fragments)
    (dict(t=[0.0, 1.0, 0.5, 2.0]), ["strictly increasing or strictly decreasing", "t[1] = 1.0",
                                   "t[2] = 0.5", "Sort"]),
    (dict(t=[0.0, 1.0, 1.0]), ["strictly", "drop repeats"]),
    (dict(t=[]), ["t is empty"]),
    (dict(t=[[0.0, 1.0]]), ["1-D", "shape (1, 2)"]),
    (dict(t=[0.0, np.nan, 2.0]), ["non-finite", "[1]"]),
    (dict(t=[0.0, np.inf]), ["non-finite"]),
    (dict(z0=np.array([1.0, np.nan])), ["z0", "non-finite"]),
    (dict(z0=np.array([np.inf, 0.0])), ["z0", "non-finite"]),
    (dict(z0="abc"), ["z0 must be an array", "str"]),
    (dict(rtol=0.0), ["rtol must be positive", "1e-7"]),
    (dict(rtol=-1e-6), ["rtol must be positive"]),
    (dict(atol=0.0), ["atol must be positive"]),
    (dict(atol=np.nan), ["atol must be positive and finite"]),
    (dict(rtol=float("inf")), ["rtol must be positive and finite"]),
    (dict(atol=np.float64(-1e-6)), ["atol must be positive"]),      # not a float: the array path
    (dict(rtol=np.float32(1e-17)), ["below what float64 can resolve"]),
    (dict(atol=np.array([1e-6, 0.0])), ["atol must be positive"]),
    (dict(rtol=np.ones(3) * 1e-6), ["rtol has shape (3,)", "does not broadcast", "(2,)"]),
    (dict(atol=np.ones((2, 2)) * 1e-6), ["atol has shape (2, 2)", "does not broadcast"]),
    (dict(rtol=1e-17), ["below what float64 can resolve"]),
    (dict(method="rk5"), ["unknown method 'rk5'"] + sorted(METHODS)),
    (dict(method=None), ["unknown method None"]),
    (dict(method="euler"), ["has no error estimate", "step_size= or n_steps=", "dopri5"]),
    (dict(method="rk4"), ["'rk4' has no error estimate"]),
    (dict(step_size=0.1, n_steps=4), ["step_size or n_steps, not both"]),
    (dict(step_size=0.0), ["step_size must be a positive number"]),
    (dict(step_size=np.inf), ["step_size must be a positive number"]),
    (dict(n_steps=0), ["n_steps must be a positive integer"]),
    (dict(n_steps=2.5), ["n_steps must be a positive integer"]),
    (dict(control={"max_steps": 100}), ["control must be a refnode.StepControl"]),
]


@pytest.mark.parametrize("overrides, fragments", BAD_INPUTS,
                         ids=[str(list(o.items())[0])[:40] for o, _ in BAD_INPUTS])
def test_bad_input_raises_input_error_before_any_work(overrides, fragments):
    f = CountingF()
    args = dict(z0=ROTATION.z0, t=[0.0, 1.0], rtol=1e-6, atol=1e-6) | overrides
    z0, t = args.pop("z0"), args.pop("t")
    with pytest.raises(InputError) as info:
        rn.solve(f, z0, t, **args)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert isinstance(info.value, ValueError)
    assert f.calls == 0


@pytest.mark.parametrize("bad_f, fragments", [
    (lambda t, z, theta: z[:1], ["returned shape (1,)", "state of shape (2,)", "dz/dt must have"]),
    (lambda t, z, theta: np.stack([z, z]), ["returned shape (2, 2)"]),
    (lambda t, z, theta: [0.0, 1.0], ["returned shape list"]),
    (lambda t, z, theta: z.astype(np.float32), ["returned dtype float32", "dtype float64",
                                                "precision"]),
    (lambda t, z, theta: z * np.nan, ["not finite at t0 = 0.0"]),
], ids=["fewer", "more", "list", "float32", "nan"])
@pytest.mark.parametrize("method, grid", [("dopri5", {}), ("rk4", {"n_steps": 3})])
def test_dynamics_of_the_wrong_shape_or_dtype(bad_f, fragments, method, grid):
    f = CountingF(bad_f)
    with pytest.raises(InputError) as info:
        rn.solve(f, ROTATION.z0, [0.0, 1.0], method=method, **grid)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    assert f.calls == 1  # only the check of f(t0, z0)


def test_integer_and_list_states_become_float64():
    z = rn.odeint(ROTATION.f, [1, 0], [0.0, 1.0])
    assert z.dtype == np.float64
    np.testing.assert_allclose(z[-1], ROTATION.exact(1.0, np.array([1.0, 0.0]), 0.0), atol=1e-7)


def test_a_single_time_returns_the_initial_state():
    sol = rn.solve(ROTATION.f, ROTATION.z0, [0.5])
    assert sol.z.shape == (1, 2) and np.array_equal(sol.z[0], ROTATION.z0)


# -- failures during a solve --------------------------------------------------------------

def test_step_size_underflow_at_a_blow_up():
    """dy/dt = y², y(0) = 1 blows up at t = 1: the steps shrink to nothing just before it."""
    with pytest.raises(StepSizeUnderflowError) as info:
        rn.solve(BLOWUP.f, BLOWUP.z0, [0.0, 2.0])
    error = info.value
    assert isinstance(error, SolverError) and error.t == pytest.approx(1.0, abs=1e-6)
    message = str(error)
    for fragment in ["step size underflowed at t = 1.0", "with step size h = ", "(0,): ",
                     "blow up near this time"]:
        assert fragment in message, message
    assert "np.int64" not in message and "np.float64" not in message


def test_min_step_raises_underflow_early():
    with pytest.raises(StepSizeUnderflowError) as info:
        rn.solve(BLOWUP.f, BLOWUP.z0, [0.0, 2.0], control=rn.StepControl(min_step=1e-4))
    assert 0.99 < info.value.t < 1.0


def test_max_steps_exceeded_names_last_t_and_h():
    with pytest.raises(MaxStepsExceededError) as info:
        rn.solve(spiral_f, SPIRAL_Z0, [0.0, 25.0], control=rn.StepControl(max_steps=20))
    message, t_reached = str(info.value), info.value.t
    assert 0.0 < t_reached < 25.0
    assert f"max_steps = 20 attempted steps at t = {t_reached!r} with step size h = " in message
    assert "Raise max_steps" in message and "stiff" in message


def test_non_finite_state_in_a_fixed_grid_names_the_step():
    """Euler on y' = y² overshoots the blow-up at t = 1 and overflows to inf."""
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(NonFiniteStateError) as info:
        rn.solve(BLOWUP.f, BLOWUP.z0, [0.0, 2.0], method="euler", n_steps=40)
    message = str(info.value)
    assert 1.0 < info.value.t < 2.0
    assert f"from t = {float(info.value.t)!r} to " in message and "(h = 0.05)" in message
    assert "np.float64" not in message and "smaller step_size" in message


def test_non_finite_dynamics_in_an_adaptive_solve():
    """f is NaN away from t0: every trial step fails, shrinking h, until the solve gives up."""
    f = lambda t, z, theta: -z if t == 0.0 else z * np.nan
    with np.errstate(invalid="ignore"), pytest.raises(NonFiniteStateError) as info:
        rn.solve(f, GAUSSIAN.z0, [0.0, 1.0], control=rn.StepControl(first_step=0.1))
    assert info.value.t == 0.0
    assert "non-finite (NaN or inf) at every trial step from t = 0.0" in str(info.value)


def test_non_finite_dynamics_after_a_time_are_not_stepped_over():
    """NaN for t > 1: the solver creeps up to t = 1 and stops there; it never returns NaN."""
    f = lambda t, z, theta: z * np.nan if t > 1.0 else -z
    with np.errstate(invalid="ignore"), pytest.raises(SolverError) as info:
        rn.solve(f, GAUSSIAN.z0, [0.0, 2.0])
    assert info.value.t == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("grid", [dict(method="rk4", n_steps=4), dict(step_size=0.1)])
def test_dense_with_a_fixed_grid_is_refused(grid):
    """A fixed grid kept no dense output, and sol.dense then said 'pass dense=True'."""
    with pytest.raises(InputError, match="dense=True keeps the steps of an adaptive solve"):
        rn.solve(ROTATION.f, ROTATION.z0, [0.0, 1.0], dense=True, **grid)


@pytest.mark.parametrize("control, names", [
    (dict(first_step=0.01), "first_step"), (dict(min_step=1e-6), "min_step"),
    (dict(norm=lambda error, y0, y1: 0.0), "norm"),
    (dict(first_step=0.5, min_step=1e-3), "first_step, min_step")])
def test_adaptive_step_controls_with_a_fixed_grid_are_refused(control, names):
    """They were silently ignored: the user's first_step, min_step or norm did nothing."""
    with pytest.raises(InputError, match=f"StepControl\\({names}=...\\) steers the adaptive"):
        rn.solve(ROTATION.f, ROTATION.z0, [0.0, 1.0], method="rk4", n_steps=4,
                 control=rn.StepControl(**control))
    kept = rn.StepControl(max_steps=4, trace=True)             # these apply to a grid too
    assert len(rn.solve(ROTATION.f, ROTATION.z0, [0.0, 1.0], method="rk4", n_steps=4,
                        control=kept).trace) == 4
