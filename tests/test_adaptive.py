"""Adaptive step-size control, dense output and solve statistics, checked against SciPy.

refnode's dopri5 and dop853 use the error norm, I controller and starting step of SciPy's
RK45 and DOP853 (see refnode.step_size), so single steps must agree to rounding and whole
solves must take (almost) the same number of evaluations of f.
"""

import numpy as np
import pytest
from scipy.integrate import DOP853, RK45, solve_ivp

import refnode as rn
from refnode import dense_output
from refnode.errors import InputError
from refnode.methods import ADAPTIVE_METHODS, METHODS
from refnode.rk_step import rk_step

from problems import CHIRP, GAUSSIAN, ROTATION, SPIRAL_Z0, spiral_f

pytestmark = pytest.mark.adaptive

SCIPY_TWINS = {"dopri5": RK45, "dop853": DOP853}
TOLERANCES = 10.0 ** -np.arange(3, 11)                  # 1e-3 ... 1e-10
#: Lowest tolerance tried per method: a 2nd/3rd-order pair at 1e-10 needs ~1e5 steps.
LOWEST_TOL = {"heun_euler": 1e-6, "bosh3": 1e-8}
#: Global error / tol^(p/q) allowed: the error of ~100s of steps, each controlled to tol.
GLOBAL_ERROR_FACTOR = 50.0


def scipy_fun(problem_f):
    return lambda t, y: problem_f(t, y, None)


def tolerance_exponent(tableau):
    """Expected slope of log(global error) vs log(tol): p / q with q = p̂ + 1.

    Each step's local error is ~tol, so h ~ tol^(1/q) and the global error ~ h^p ~ tol^(p/q):
    1 for pairs that propagate the higher order (dopri5, ...), 4/5 for fehlberg45.
    """
    q = tableau.error_power()          # the method's own: p̂ + 1, or 8 for dop853's combined estimate
    return tableau.order / q


# -- tolerance proportionality ----------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(ADAPTIVE_METHODS))
def test_global_error_follows_the_tolerance(method):
    tableau = METHODS[method]
    tols = TOLERANCES[TOLERANCES >= LOWEST_TOL.get(method, 0.0)]
    exponent = tolerance_exponent(tableau)
    for problem in (CHIRP, GAUSSIAN):
        errors = np.array([
            problem.error(rn.odeint(problem.f, problem.z0, [problem.t0, problem.t1],
                                    method=method, rtol=tol, atol=tol)[-1], problem.t1)
            for tol in tols])
        assert np.all(errors <= GLOBAL_ERROR_FACTOR * tols ** exponent), (problem.name, errors / tols)
        if problem is CHIRP:  # smooth and error-dominated at every tolerance
            slope = np.polyfit(np.log(tols), np.log(errors), 1)[0]
            assert abs(slope - exponent) <= 0.2, (slope, exponent)
            assert np.all(errors[2:] < errors[:-2]), errors  # decreasing over two decades


# -- agreement with SciPy ---------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(SCIPY_TWINS))
def test_one_step_equals_scipy(method):
    tableau = METHODS[method]
    t0, y0 = 0.3, np.array([0.8, -0.3])
    twin = SCIPY_TWINS[method](scipy_fun(CHIRP.f), t0, y0, 10.0, first_step=0.05, rtol=1e-3, atol=1e-3)
    twin.step()
    h = twin.h_previous  # SciPy's step is (t0 + h) - t0, rounded
    y1, error, k = rk_step(CHIRP.f, tableau, t0, y0, h, None, CHIRP.f(t0, y0))
    np.testing.assert_allclose(y1, twin.y, rtol=0, atol=1e-14)
    # SciPy's RK45.E is b̂ - b; its DOP853.E5 is b - b̂ (Hairer's ER), like refnode's.
    scipy_error = -twin.K.T @ twin.E * h if method == "dopri5" else twin.K.T @ twin.E5 * h
    np.testing.assert_allclose(error, scipy_error, rtol=0, atol=1e-14)
    if method == "dop853":
        error3 = h * sum(w * k_i for w, k_i in zip(tableau.e3_float, k))
        np.testing.assert_allclose(error3, twin.K.T @ twin.E3 * h, rtol=0, atol=1e-14)


@pytest.mark.parametrize("method", sorted(SCIPY_TWINS))
@pytest.mark.parametrize("tol", [1e-4, 1e-7, 1e-10])
@pytest.mark.parametrize("problem", [CHIRP, ROTATION, "spiral"], ids=["chirp", "rotation", "spiral"])
def test_nfe_matches_scipy(method, tol, problem):
    """Same controller, same starting step: NFE within 10%, with and without dense outputs."""
    if problem == "spiral":
        f, z0, t0, t1 = spiral_f, SPIRAL_Z0, 0.0, 25.0
    else:
        f, z0, t0, t1 = problem.f, problem.z0, problem.t0, problem.t1
    t_eval = np.linspace(t0, t1, 200)
    for t in ([t0, t1], t_eval):
        ours = rn.solve(f, z0, t, method=method, rtol=tol, atol=tol).stats["nfe"]
        # SciPy's DOP853 counts the 3 extra dense stages of each step containing a t_eval point.
        theirs = solve_ivp(scipy_fun(f), (t0, t1), z0, method=SCIPY_TWINS[method].__name__,
                           t_eval=np.asarray(t), rtol=tol, atol=tol).nfev
        assert abs(ours - theirs) <= 0.1 * theirs, (ours, theirs)


@pytest.mark.parametrize("method", sorted(SCIPY_TWINS))
def test_dense_output_equals_scipy_interpolant(method):
    t = np.linspace(0.0, 25.0, 1000)
    ours = rn.odeint(spiral_f, SPIRAL_Z0, t, method=method, rtol=1e-6, atol=1e-6)
    theirs = solve_ivp(scipy_fun(spiral_f), (0.0, 25.0), SPIRAL_Z0, method=SCIPY_TWINS[method].__name__,
                       t_eval=t, rtol=1e-6, atol=1e-6).y.T
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-11)


# -- dense output -----------------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(ADAPTIVE_METHODS))
def test_output_times_do_not_change_the_steps_and_equal_the_interpolant(method):
    t = np.linspace(CHIRP.t0, CHIRP.t1, 500)
    many = rn.solve(CHIRP.f, CHIRP.z0, t, method=method, rtol=1e-6, atol=1e-6)
    ends = rn.solve(CHIRP.f, CHIRP.z0, t[[0, -1]], method=method, rtol=1e-6, atol=1e-6, dense=True)
    assert many.grid == ends.grid
    assert many.stats["n_steps"] == ends.stats["n_steps"]
    # Equal up to rounding: a block of outputs is one matmul, a single output another, and
    # BLAS may sum them in different orders; dop853's weights reach |P| ~ 500 (cancellation).
    np.testing.assert_allclose(many.z, ends.dense(t), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(many.z[-1], ends.z[-1])
    # The interpolant is accurate to the tolerance's order between the step points.
    assert np.max(np.abs(many.z - CHIRP.exact(t[:, None], CHIRP.z0, CHIRP.t0))) < 1e-3


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "dop853"])
@pytest.mark.parametrize("pending_bytes", [0, 2000, 2**30])
def test_outputs_wait_for_one_batch_of_dense_output_within_the_byte_bound(
        method, pending_bytes, monkeypatch):
    """The shared loop keeps the steps that reach outputs (``Recorder.pending``) until their
    states and stages hold more than PENDING_BYTES, then interpolates them in one batch: the
    outputs are the step-by-step interpolants whatever the bound (0: every step at once),
    and the pending steps never hold more than the bound plus one step."""
    from refnode import drivers
    monkeypatch.setattr(drivers, "PENDING_BYTES", pending_bytes)
    held, flush = [], drivers.Recorder.flush
    def recording_flush(self, tableau):
        held.append(self.pending_bytes)
        flush(self, tableau)
    monkeypatch.setattr(drivers.Recorder, "flush", recording_flush)
    t = np.concatenate([np.linspace(CHIRP.t0, CHIRP.t1, 300), [CHIRP.t1 + 1e-3]])
    z0 = np.stack([CHIRP.z0, 2 * CHIRP.z0])                       # 2 samples: 32 bytes a state
    sol = rn.solve(CHIRP.f, z0, t, method=method, rtol=1e-6, atol=1e-6, dense=True)
    np.testing.assert_allclose(sol.z, sol.dense(t), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(sol.z[-1], sol.dense.steps[-1].y1)
    step_bytes = (len(sol.dense.steps[-1].k) + 3) * 8 * z0.size
    assert max(held) <= pending_bytes + step_bytes
    if pending_bytes == 2**30:
        assert len(held) == 1                        # one batch, when the solve ends
    if pending_bytes == 0:                           # a batch per step that reaches outputs
        reaching = [s for s in sol.dense.steps if np.any((t > s.t_n) & (t <= s.t_next))]
        assert held[:-1] == [step_bytes] * len(reaching) and held[-1] == 0


@pytest.mark.parametrize("reverse", [False, True])
def test_dense_evaluation_of_many_times_in_any_order_is_each_times_own(reverse):
    """``sol.dense(taus)`` finds each τ's step by bisection, groups the times step by
    step and forms all weights at once: for times in any order (repeated ones, step ends
    and the first time among them), each row is the interpolant at that τ alone, and y1
    itself at a step's end."""
    t = np.array([CHIRP.t1, CHIRP.t0]) if reverse else np.array([CHIRP.t0, CHIRP.t1])
    sol = rn.solve(CHIRP.f, CHIRP.z0, t, method="dopri5", rtol=1e-6, atol=1e-6, dense=True)
    ends = [step.t_next for step in sol.dense.steps]
    grid = np.linspace(t[0], t[1], 97)
    taus = np.random.default_rng(0).permutation(
        np.concatenate([grid, grid[10:20], ends[:5], [t[0]]]))
    many = sol.dense(taus)
    assert many.shape == (len(taus),) + CHIRP.z0.shape
    for tau, row in zip(taus, many):
        np.testing.assert_allclose(row, sol.dense(tau), rtol=1e-14, atol=1e-15)
    for step in sol.dense.steps[:5]:
        np.testing.assert_array_equal(many[list(taus).index(step.t_next)], step.y1)
    np.testing.assert_array_equal(many[list(taus).index(t[0])], CHIRP.z0)


def test_dense_evaluation_shapes_and_bounds():
    sol = rn.solve(ROTATION.f, ROTATION.z0, [0.0, 4.0], method="dopri5", dense=True)
    assert sol.dense(1.5).shape == (2,)
    assert sol.dense([1.5, 2.0, 4.0]).shape == (3, 2)
    np.testing.assert_array_equal(sol.dense(4.0), sol.z[-1])
    np.testing.assert_array_equal(sol.dense(0.0), ROTATION.z0)
    np.testing.assert_allclose(sol.dense(1.5), ROTATION.exact(1.5, ROTATION.z0, 0.0), atol=1e-7)
    with pytest.raises(InputError, match="never extrapolates"):
        sol.dense(4.5)
    with pytest.raises(InputError, match="outside the solved interval"):
        sol.dense(-0.1)
    no_dense = rn.solve(ROTATION.f, ROTATION.z0, [0.0, 4.0]).dense
    assert not no_dense
    with pytest.raises(InputError, match="dense=True"):
        no_dense(1.0)


def test_dense_output_covers_the_exact_end_time():
    """t_n + h can miss t[-1] by rounding (here 1.0 + (-1.0 - 1e-160) == 0.0); the dense
    solution must still reach t[-1] itself and return the solve's last state there."""
    t = np.array([1.0, -1.1e-160])
    sol = rn.solve(GAUSSIAN.f, GAUSSIAN.z0, t, method="bosh3", rtol=1e-6, atol=1e-6, dense=True)
    np.testing.assert_array_equal(sol.dense(t[-1]), sol.z[-1])


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "dop853"])
def test_every_output_at_the_step_end_by_rounding_gets_its_own_row(method):
    """An output one float64 spacing before the step's end can have θ = (t_i - t_n)/h = 1.0
    after rounding, like the step's end itself: both are y1, and neither is dropped."""
    t_n, h = -1.236733911695298, 1.0980440648305945          # an example found by search
    t_next = t_n + h
    thetas = np.array([0.5, (np.nextafter(t_next, -np.inf) - t_n) / h, (t_next - t_n) / h])
    assert thetas[1] == thetas[2] == 1.0
    tableau = METHODS[method]
    z0 = np.array([1.0, -0.5])
    y1, _, k = rk_step(GAUSSIAN.f, tableau, t_n, z0, h, None, GAUSSIAN.f(t_n, z0, None))
    k = dense_output.extra_stages(GAUSSIAN.f, tableau, t_n, z0, h, None, k)
    f1 = GAUSSIAN.f(t_next, y1, None)
    for given in (thetas, thetas.tolist()):
        block = dense_output.interpolate(tableau, given, h, z0, y1, k, f1)
        assert block.shape == (3, 2)
        np.testing.assert_array_equal(block[1:], [y1, y1])
        np.testing.assert_allclose(block[0], dense_output.interpolate_one(
            tableau, 0.5, h, z0, y1, k, f1), rtol=1e-14, atol=1e-14)


# -- reverse time, trace, statistics ----------------------------------------------------------

@pytest.mark.parametrize("method", sorted(ADAPTIVE_METHODS))
def test_reverse_time(method):
    z1 = CHIRP.exact(CHIRP.t1, CHIRP.z0, CHIRP.t0)
    t = np.linspace(CHIRP.t1, CHIRP.t0, 7)
    tol = 1e-6
    sol = rn.solve(CHIRP.f, z1, t, method=method, rtol=tol, atol=tol,
                   control=rn.StepControl(trace=True))
    exact = CHIRP.exact(t[:, None], z1, CHIRP.t1)
    assert np.max(np.abs(sol.z - exact)) <= GLOBAL_ERROR_FACTOR * tol ** tolerance_exponent(METHODS[method])
    assert all(r.h < 0 for r in sol.trace)
    assert sol.grid[0] == CHIRP.t1 and sol.grid[-1] == CHIRP.t0
    assert np.all(np.diff(sol.grid) < 0)


@pytest.mark.parametrize("method", sorted(ADAPTIVE_METHODS))
def test_trace_records_every_attempted_step(method):
    # A first step far too long forces rejections.
    sol = rn.solve(spiral_f, SPIRAL_Z0, [0.0, 10.0], method=method, rtol=1e-5, atol=1e-5,
                   control=rn.StepControl(first_step=0.5, trace=True))
    trace, stats = sol.trace, sol.stats
    assert len(trace) == stats["n_steps"] == stats["n_accepted"] + stats["n_rejected"]
    accepted = [r for r in trace if r.accepted]
    assert len(accepted) == stats["n_accepted"] and stats["n_rejected"] > 0
    assert all(r.error_ratio <= 1.0 for r in accepted)
    assert all(not r.error_ratio <= 1.0 for r in trace if not r.accepted)  # > 1, or NaN
    assert [r.t for r in accepted] == sol.grid[:-1]
    for r, r_next in zip(accepted, accepted[1:]):
        assert r.t + r.h == pytest.approx(r_next.t, rel=1e-15)
    for r, r_next in zip(trace, trace[1:]):
        if not r.accepted:  # a rejected step is retried from the same t with a smaller h
            assert r_next.t == r.t and abs(r_next.h) < abs(r.h)


@pytest.mark.parametrize("method", sorted(ADAPTIVE_METHODS))
@pytest.mark.parametrize("first_step", [None, 0.01])
def test_nfe_is_the_count_of_stages(method, first_step):
    """nfe = f(t0) [+ 1 for the starting step] + (s - 1) per attempt [+ 1 per accepted step
    unless FSAL] [+ the extra dense stages of each step with an output strictly inside]."""
    tableau = METHODS[method]
    t = np.linspace(0.0, 10.0, 40)
    calls = []
    counting_f = lambda t_, z, theta: calls.append(t_) or spiral_f(t_, z)
    sol = rn.solve(counting_f, SPIRAL_Z0, t, method=method, rtol=1e-5, atol=1e-5,
                   control=rn.StepControl(first_step=first_step))
    stats = sol.stats
    grid = np.array(sol.grid)
    steps_with_inner_output = sum(np.any((t > a) & (t < b)) for a, b in zip(grid[:-1], grid[1:]))
    n_extra = len(tableau.dense.A_extra) if tableau.dense is not None else 0
    expected = (1 + (first_step is None) + (tableau.stages - 1) * stats["n_steps"]
                + (0 if tableau.fsal else stats["n_accepted"]) + n_extra * steps_with_inner_output)
    assert stats["nfe"] == expected == len(calls)


def test_first_step_is_used():
    sol = rn.solve(GAUSSIAN.f, GAUSSIAN.z0, [0.0, 2.0],
                   control=rn.StepControl(first_step=1e-3, trace=True))
    assert sol.trace[0].h == 1e-3


@pytest.mark.batch
def test_batch_shares_one_step_size_and_each_sample_meets_the_tolerance():
    rng = np.random.default_rng(1)
    z0 = rng.standard_normal((6, 2))
    sol = rn.solve(ROTATION.f, z0, [0.0, 4.0], method="dopri5", rtol=1e-8, atol=1e-8)
    for i in range(len(z0)):
        assert ROTATION.error(sol.z[-1, i], 4.0, z0=z0[i]) < GLOBAL_ERROR_FACTOR * 1e-8
    # Identical samples: the RMS norm over the batch equals one sample's, so the steps match.
    # (Elementwise dynamics: a BLAS matmul would round a batch differently from one sample,
    # and the early steps' error ratios, ~1e-4 of rounding-level differences, amplify that.)
    one = rn.solve(CHIRP.f, z0[0], [0.0, 4.0], method="dopri5", rtol=1e-8, atol=1e-8)
    copies = rn.solve(CHIRP.f, np.tile(z0[0], (3, 1)), [0.0, 4.0], method="dopri5", rtol=1e-8, atol=1e-8)
    # The mean of squares over 6 entries rounds differently from over 2; the controller's
    # feedback carries those ~1e-16 differences along ~80 steps.
    assert copies.grid == pytest.approx(one.grid, rel=1e-10)
    np.testing.assert_allclose(copies.z[:, 1], one.z, rtol=1e-10)


def test_array_tolerances_weight_components():
    """A loose atol on a component lets the solver ignore its error (per-component scale)."""
    tight = rn.solve(CHIRP.f, CHIRP.z0, [0.0, 4.0], rtol=1e-9, atol=1e-9)
    mixed = rn.solve(CHIRP.f, CHIRP.z0, [0.0, 4.0], rtol=np.array([1e-9, 1e-3]), atol=np.array([1e-9, 1e-3]))
    assert mixed.stats["nfe"] < tight.stats["nfe"]
    assert CHIRP.error(tight.z[-1], 4.0) < 1e-7
    assert abs(mixed.z[-1, 0] - CHIRP.exact(4.0, CHIRP.z0, 0.0)[0]) < 1e-5
