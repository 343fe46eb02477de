"""Runge–Kutta steps and fixed-grid solves: measured order of every method.

The global error of a method of order p on a grid of n equal steps is C n^(-p) + O(n^(-p-1)),
so the slope of log(error) against log(n) tends to -p (HNW I, §II.3, Thm 3.6). We fit that
slope on the finest grids whose error is still well above float64 roundoff.
"""

import dataclasses

import numpy as np
import pytest

import refnode as rn
from refnode.methods import ADAPTIVE_METHODS, METHODS
from refnode.rk_step import rk_step

from problems import CHIRP, GAUSSIAN, ROTATION, mlp_f, mlp_theta

pytestmark = pytest.mark.rk

#: Errors below this are dominated by roundoff (observed floor ~1e-15 on these problems).
ROUNDOFF_FLOOR = 2e-14
#: How far a measured order may lie from the declared one.
ORDER_SLACK = 0.3
#: The grids tried: 4, 8, ..., 2048 steps.
GRIDS = 4 * 2 ** np.arange(10)


def loglog_slope(x, y):
    """The least-squares slope of log(y) against log(x)."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def global_errors(method, problem, by_step_size):
    """Errors at t1 on successively finer grids, stopping at the roundoff floor."""
    ns, errors = [], []
    span = problem.t1 - problem.t0
    for n in GRIDS:
        grid = dict(step_size=span / n) if by_step_size else dict(n_steps=int(n))
        z = rn.odeint(problem.f, problem.z0, [problem.t0, problem.t1], method=method, **grid)
        ns.append(n)
        errors.append(problem.error(z[-1], problem.t1))
        if errors[-1] < ROUNDOFF_FLOOR:
            break
    return np.array(ns), np.array(errors)


def measured_order(method, problem, by_step_size=False, n_points=3):
    """-slope of log(error) vs log(n) on the finest ``n_points`` grids above roundoff."""
    ns, errors = global_errors(method, problem, by_step_size)
    keep = errors > ROUNDOFF_FLOOR
    assert keep.sum() >= n_points, f"{method}: too few grids above roundoff: {errors}"
    return -loglog_slope(ns[keep][-n_points:], errors[keep][-n_points:])


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("problem, by_step_size", [(ROTATION, False), (CHIRP, True)],
                         ids=["rotation-n_steps", "chirp-step_size"])
def test_measured_order_matches_declared_order(method, problem, by_step_size):
    p = METHODS[method].order
    order = measured_order(method, problem, by_step_size)
    assert abs(order - p) <= ORDER_SLACK, f"{method} on {problem.name}: order {order:.2f}, declared {p}"


@pytest.mark.parametrize("method", sorted(ADAPTIVE_METHODS))
def test_embedded_error_estimate_has_order_p_hat_plus_one(method):
    """One step's error estimate h Σ (b_i - b̂_i) k_i is the local error of b̂: O(h^(p̂+1))."""
    tableau = METHODS[method]
    hs = 0.4 * 2.0 ** -np.arange(5)
    y0, t0 = CHIRP.z0, 0.3
    k1 = CHIRP.f(t0, y0)
    estimates, estimates3 = [], []
    for h in hs:
        _, error, k = rk_step(CHIRP.f, tableau, t0, y0, h, None, k1)
        estimates.append(np.linalg.norm(error))
        if getattr(tableau, "e3_float", None) is not None:    # dop853's own third estimate
            estimates3.append(np.linalg.norm(h * sum(w * k_i for w, k_i in zip(tableau.e3_float, k))))
    p_hat = min(tableau.order, tableau.error_order)
    assert abs(loglog_slope(hs, estimates) - (p_hat + 1)) <= ORDER_SLACK
    if estimates3:  # dop853's third-order estimate: O(h^4)
        assert abs(loglog_slope(hs, estimates3) - 4) <= ORDER_SLACK


@pytest.mark.parametrize("method", sorted(METHODS))
def test_one_step_on_linear_problem_is_the_stability_function(method):
    """On y' = λy one step gives R(hλ) y with R(z) = 1 + z bᵀ (I - zA)⁻¹ 1 (HNW II, §IV.2)."""
    tableau = METHODS[method]
    lam, h, y0 = -0.7, 0.3, np.array([1.5])
    f = lambda t, y, theta: lam * y
    y1, _, k = rk_step(f, tableau, 0.0, y0, h, None, f(0.0, y0, None))
    A, b, z = tableau.A_numpy(), np.array(tableau.b_float), h * lam
    s = tableau.stages
    R = 1 + z * b @ np.linalg.solve(np.eye(s) - z * A, np.ones(s))
    np.testing.assert_allclose(y1, R * y0, rtol=1e-14)
    assert len(k) == s


@pytest.mark.parametrize("method", sorted(METHODS))
def test_fixed_grid_nfe_and_output_times_are_step_points(method):
    tableau = METHODS[method]
    t = np.array([0.0, 0.5, 0.7, 2.0])
    sol = rn.solve(GAUSSIAN.f, GAUSSIAN.z0, t, method=method, n_steps=3)
    n = 3 * (len(t) - 1)
    expected_nfe = 1 + n * (tableau.stages - 1) + (0 if tableau.fsal else n - 1)
    assert sol.stats == dict(nfe=expected_nfe, n_steps=n, n_accepted=n, n_rejected=0)
    assert sol.z.shape == (len(t), 1)
    assert np.array_equal(sol.z[0], GAUSSIAN.z0)
    assert [sol.grid[3 * i] for i in range(len(t))] == t.tolist()
    # Each output interval is an independent grid: solving interval by interval agrees.
    z_i = GAUSSIAN.z0
    for i in range(len(t) - 1):
        z_i = rn.odeint(GAUSSIAN.f, z_i, t[i:i + 2], method=method, n_steps=3)[-1]
        np.testing.assert_allclose(sol.z[i + 1], z_i, rtol=1e-15)


def test_step_size_gives_the_fewest_equal_steps_no_longer_than_it():
    t = np.array([0.0, 1.0, 1.25])
    sol = rn.solve(GAUSSIAN.f, GAUSSIAN.z0, t, method="rk4", step_size=0.3,
                   control=rn.StepControl(trace=True))
    hs = [r.h for r in sol.trace]
    assert len(hs) == 4 + 1  # ceil(1/0.3) = 4 steps, then ceil(0.25/0.3) = 1
    np.testing.assert_allclose(hs, [0.25] * 5)
    same = rn.solve(GAUSSIAN.f, GAUSSIAN.z0, [0.0, 1.0], method="rk4", step_size=0.25)
    assert same.stats["n_steps"] == 4  # exactly representable multiples are not rounded up


@pytest.mark.parametrize("method", sorted(METHODS))
def test_backwards_in_time_converges_at_the_declared_order(method):
    """From t1 down to t0 (h < 0): the same order, and every step goes backwards."""
    backwards = dataclasses.replace(ROTATION, t0=ROTATION.t1, t1=ROTATION.t0,
                                    z0=ROTATION.exact(ROTATION.t1, ROTATION.z0, ROTATION.t0))
    order = measured_order(method, backwards)
    assert abs(order - METHODS[method].order) <= ORDER_SLACK
    sol = rn.solve(backwards.f, backwards.z0, [4.0, 1.0, 0.0], method=method, n_steps=2,
                   control=rn.StepControl(trace=True))
    assert all(r.h < 0 for r in sol.trace) and sol.grid == [4.0, 2.5, 1.0, 0.5, 0.0]


@pytest.mark.batch
@pytest.mark.parametrize("method", ["euler", "rk4", "dopri5", "dop853"])
def test_batched_fixed_grid_equals_per_sample_solves(method):
    rng = np.random.default_rng(0)
    theta = mlp_theta(3, 16, rng)
    z0 = rng.standard_normal((5, 3))
    t = np.array([0.0, 0.4, 1.0])
    batched = rn.odeint(mlp_f, z0, t, theta, method=method, n_steps=7)
    for i in range(len(z0)):
        single = rn.odeint(mlp_f, z0[i], t, theta, method=method, n_steps=7)
        np.testing.assert_allclose(batched[:, i], single, rtol=1e-13, atol=1e-13)


def test_stage_sums_of_a_tree_state_are_those_of_its_leaves_bit_for_bit():
    """combine / weighted_sum on a tree (the adjoint's augmented state) run leaf by leaf."""
    from refnode.rk_step import combine, weighted_sum
    rng = np.random.default_rng(3)
    def tree():
        return {"z": rng.standard_normal((3, 2)), "p": [rng.standard_normal(4), rng.standard_normal(())]}
    y, ks = tree(), [tree() for _ in range(4)]
    terms, h = [(0, 0.3), (1, -1.7), (3, 2.0 / 3.0)], 0.125     # stage 2 has weight 0
    got_y1, got_e = combine(y, h, terms, ks), weighted_sum(h, terms, ks)
    for path in (("z",), ("p", 0), ("p", 1)):
        leaf = lambda tree: tree[path[0]] if len(path) == 1 else tree[path[0]][path[1]]  # noqa: E731
        leaf_ks = [leaf(k) for k in ks]
        assert leaf(got_y1).tobytes() == combine(leaf(y), h, terms, leaf_ks).tobytes()
        assert leaf(got_e).tobytes() == weighted_sum(h, terms, leaf_ks).tobytes()
        expected = leaf(y) + ((h * 0.3) * leaf_ks[0] + (h * -1.7) * leaf_ks[1]
                              + (h * (2.0 / 3.0)) * leaf_ks[3])
        assert leaf(got_y1).tobytes() == expected.tobytes()


def test_tree_map_refuses_trees_of_different_lengths():
    """A tree with more leaves than the first is refused, not silently cut to its length."""
    from refnode.params import tree_map
    with pytest.raises(ValueError):
        tree_map(lambda a, b: a + b, [1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        tree_map(lambda a, b: a + b, (1.0, 2.0), (1.0,))
