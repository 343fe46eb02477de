"""No silent wrong answer from the solver entry points: each case is a regression test.

Every bad input gets a RefnodeError that says what is wrong (usually an InputError,
before any work), or the right answer; never a raw error from deep inside, never a
silently wrong result.
"""

import warnings

import numpy as np
import pytest

import refnode as rn
from refnode.errors import InputError, NonFiniteStateError, RefnodeError
from refnode.odeint import DEFAULT_ATOL, DEFAULT_RTOL

pytestmark = pytest.mark.adaptive

DECAY = lambda t, z, theta: -z          # noqa: E731


@pytest.mark.parametrize("z0, t", [
    (np.array([1.0 + 1j, 2.0]), [0.0, 1.0]),
    (np.array([1.0, 2.0]), np.array([0.0, 1.0 + 0.5j])),
    ([1.0 + 2j], [0.0, 1.0]),
])
def test_complex_input_is_refused_not_cut_to_its_real_part(z0, t):
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no ComplexWarning either
        with pytest.raises(InputError, match="[Cc]omplex|real"):
            rn.odeint(DECAY, z0, t)


def test_complex_cotangent_is_refused():
    z, vjp = rn.odeint_vjp(DECAY, np.ones(2), [0.0, 1.0])
    with pytest.raises(InputError, match="real"):
        vjp(np.ones_like(z) * (1 + 1j))


@pytest.mark.parametrize("tau", [np.nan, np.inf, "1.0", 1j, [[0.5]]])
def test_dense_output_refuses_times_that_are_not_finite_reals(tau):
    sol = rn.solve(DECAY, np.ones(2), [0.0, 1.0], dense=True)
    with pytest.raises(InputError):
        sol.dense(tau)


def test_dense_output_without_dense_says_how_to_get_it():
    with pytest.raises(InputError, match="dense=True"):
        rn.solve(DECAY, np.ones(2), [0.0, 1.0]).dense(0.5)


def test_dense_output_of_a_single_time_answers_at_that_time_only():
    sol = rn.solve(DECAY, np.ones(2), [0.0], dense=True)
    np.testing.assert_array_equal(sol.dense(0.0), np.ones(2))
    with pytest.raises(InputError, match="outside"):
        sol.dense(0.5)


@pytest.mark.parametrize("options", [dict(method="rk4", n_steps=4), dict(method="dopri5")])
def test_f_changing_its_output_shape_after_t0_is_caught(options):
    f = lambda t, z, theta: -z if t < 0.5 else -z[:1]     # noqa: E731 (broadcasts silently)
    with pytest.raises(InputError, match="shape"):
        rn.odeint(f, np.ones(2), [0.0, 1.0, 2.0], **options)


def test_f_turning_complex_after_t0_is_caught():
    f = lambda t, z, theta: -z if t < 0.5 else -z + 0j    # noqa: E731
    with pytest.raises(InputError, match="dtype"):
        rn.odeint(f, np.ones(2), [0.0, 1.0], method="rk4", n_steps=4)


class BadVJP:
    """Dynamics -θz with a hand-written VJP that can be made wrong in several ways."""

    def __init__(self, mode):
        self.mode = mode

    def __call__(self, t, z, theta):
        return -theta * z

    def vjp(self, t, z, theta, a):
        a_z, a_theta, a_t = -theta * a, -np.sum(a * z), 0.0
        if self.mode == "none-theta":
            return a_z, None, a_t
        if self.mode == "nan":
            return a_z * np.nan, a_theta, a_t
        if self.mode == "two":
            return a_z, a_theta
        if self.mode == "list":
            return [a_z, a_theta, a_t]
        if self.mode == "shape":
            return a_z[:1], a_theta, a_t
        return a_z, a_theta, a_t


@pytest.mark.parametrize("mode", ["none-theta", "nan", "two", "list", "shape"])
@pytest.mark.parametrize("gradient", ["discrete", "adjoint"])
def test_a_wrong_custom_vjp_is_named_not_a_silent_zero(mode, gradient):
    z, vjp = rn.odeint_vjp(BadVJP(mode), np.ones(2), [0.0, 1.0], 0.5, gradient=gradient)
    with pytest.raises(InputError, match="vjp"):
        vjp(np.ones_like(z))


@pytest.mark.parametrize("mode", ["none-theta", "nan", "two", "list", "shape"])
def test_the_autograd_oracle_ignores_a_wrong_custom_vjp(mode):
    """gradient="autograd" traces f itself: a broken hand VJP is never called, and the
    oracle gives the gradient it gives for the same f with a right one."""
    calls = []

    class Counted(BadVJP):
        def vjp(self, *args):
            calls.append(args)
            return super().vjp(*args)

    z, vjp = rn.odeint_vjp(Counted(mode), np.ones(2), [0.0, 1.0], 0.5, gradient="autograd")
    z_ok, vjp_ok = rn.odeint_vjp(BadVJP("ok"), np.ones(2), [0.0, 1.0], 0.5, gradient="autograd")
    for got, want in zip(vjp(np.ones_like(z)), vjp_ok(np.ones_like(z_ok))):
        np.testing.assert_array_equal(got, want)
    assert calls == []


def test_a_vjp_turning_nan_mid_way_is_an_error_not_a_nan_gradient():
    class LateNaN(BadVJP):
        def vjp(self, t, z, theta, a):
            a_z, a_theta, a_t = super().vjp(t, z, theta, a)
            return (a_z * np.nan if t < 0.5 else a_z), a_theta, a_t

    for gradient in ("discrete", "adjoint"):
        z, vjp = rn.odeint_vjp(LateNaN("ok"), np.ones(2), [0.0, 1.0], 0.5, gradient=gradient)
        with np.errstate(invalid="ignore"), pytest.raises(RefnodeError, match="non-finite"):
            vjp(np.ones_like(z))


def test_single_time_result_does_not_share_memory_with_z0():
    z0 = np.ones(3)
    for options in (dict(), dict(method="rk4", n_steps=2), dict(batch="independent")):
        z = rn.odeint(DECAY, np.ones((2, 3)) if options.get("batch") else z0, [0.0], **options)
        z[...] = 7.0
    assert np.all(z0 == 1.0)


def test_autograd_gradient_keeps_float32():
    f = lambda t, z, theta: -theta * z                    # noqa: E731
    z, vjp = rn.odeint_vjp(f, np.ones(2, np.float32), [0.0, 1.0], np.float32(2.0),
                           gradient="autograd")
    assert z.dtype == np.float32
    assert vjp(np.ones_like(z))[0].dtype == np.float32


def test_huge_but_finite_derivative_gives_a_clear_error():
    f = lambda t, z, theta: z * 1e160                     # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # the error alone, no overflow warning
        with pytest.raises(InputError, match="first_step|rescale"):
            rn.odeint(f, np.ones(2), [0.0, 1.0])


@pytest.mark.parametrize("rtol, atol", [("1e-6", 1e-9), (1e-6, "1e-9"), (float("nan"), 1e-9),
                                        (True, 1e-9), ([1e-6, "x"], 1e-9), (1e-6j, 1e-9)])
def test_tolerances_must_be_numbers(rtol, atol):
    with pytest.raises(InputError):
        rn.odeint(DECAY, np.ones(2), [0.0, 1.0], rtol=rtol, atol=atol)


def test_no_tolerance_means_the_defaults():
    z = rn.odeint(DECAY, np.ones(2), [0.0, 1.0], rtol=None, atol=None)
    defaults = dict(rtol=DEFAULT_RTOL, atol=DEFAULT_ATOL)
    assert (DEFAULT_RTOL, DEFAULT_ATOL) == (1e-7, 1e-9)
    np.testing.assert_array_equal(z, rn.odeint(DECAY, np.ones(2), [0.0, 1.0], **defaults))


@pytest.mark.parametrize("grid", [dict(n_steps=4), dict(step_size=0.1)])
@pytest.mark.parametrize("given", [dict(rtol=1e-3), dict(atol=1e-6), dict(rtol=1e-7, atol=1e-9)])
def test_tolerances_with_a_fixed_grid_are_refused_not_ignored(grid, given):
    """A fixed grid takes its steps whatever the error: a tolerance there would do nothing."""
    names = " and ".join(given)
    for call in (rn.odeint, rn.solve, rn.odeint_vjp):
        with pytest.raises(InputError, match=f"{names} control the step size.*drop {names}"):
            call(DECAY, np.ones(2), [0.0, 1.0], method="rk4", **grid, **given)
    z = rn.odeint(DECAY, np.ones(2), [0.0, 1.0], method="rk4", **grid)   # without: fine
    assert z.shape == (2, 2)


def test_adjoint_tolerances_with_a_fixed_reverse_grid_are_refused():
    for grid in (dict(n_steps=4), {}):
        adjoint = rn.Adjoint(rtol=1e-6, **({} if grid else dict(method="rk4", n_steps=8)))
        with pytest.raises(InputError, match=r"Adjoint\(rtol=\.\.\., atol=\.\.\.\).*fixed grid"):
            rn.odeint_vjp(DECAY, np.ones(2), [0.0, 1.0], method="rk4" if grid else "dopri5",
                          gradient=adjoint, **grid)


def test_keep_grid_is_not_a_public_option():
    with pytest.raises(TypeError, match="unexpected keyword argument 'keep_grid'"):
        rn.odeint_vjp(DECAY, np.ones(2), [0.0, 1.0], keep_grid=False)


def test_fixed_grid_too_large_is_refused_before_it_starts():
    calls = []

    def f(t, z, theta):
        calls.append(t)
        return -z

    with pytest.raises(InputError, match="max_steps"):
        rn.odeint(f, np.ones(2), [0.0, 1.0], method="rk4", step_size=1e-9)
    assert not calls
    z = rn.odeint(f, np.ones(2), [0.0, 1.0], method="rk4", step_size=0.1,
                  control=rn.StepControl(max_steps=10))
    np.testing.assert_allclose(z[-1], np.exp(-1.0), rtol=1e-5)


@pytest.mark.parametrize("z0, match", [(np.zeros(0), "empty"), (np.ones(2, np.float16), "float16"),
                                       (np.array(["a"]), "numbers|real")])
def test_states_that_cannot_be_solved_are_refused(z0, match):
    with pytest.raises(InputError, match=match):
        rn.odeint(DECAY, z0, [0.0, 1.0])


@pytest.mark.parametrize("control", [dict(first_step=0.0), dict(first_step=np.nan),
                                     dict(first_step=-1.0), dict(min_step=np.nan),
                                     dict(min_step=-1.0), dict(max_steps=0),
                                     dict(max_steps=2.5), dict(trace="yes"), dict(norm=3)])
def test_step_control_is_checked_when_built(control):
    with pytest.raises(InputError):
        rn.StepControl(**control)


def test_f_returning_nan_after_some_time_names_the_non_finite_values():
    f = lambda t, z, theta: -z if t < 0.5 else z * np.nan     # noqa: E731
    with np.errstate(invalid="ignore"), pytest.raises(NonFiniteStateError, match="non-finite") as info:
        rn.odeint(f, np.ones(2), [0.0, 1.0])
    assert 0.4 < info.value.t <= 0.5
