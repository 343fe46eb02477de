"""Grading: the capstone. Your solver and adjoint (assignments 01 and 04, wired together
here) must pass ``refnode verify`` against refnode's golden values and fit the paper's
spiral within a budget of seconds."""

import time

import numpy as np

import refnode as rn
from refnode.demo import make_model, reference_solution, sample_windows, spiral_times, window_loss
from refnode.params import flatten
from refnode.reference.problems import get_problem
from refnode.verify import ATOL_FACTOR, problem_dict, verify_callable

#: The reference problems a fixed-step RK4 handles (the stiff one needs an implicit or
#: adaptive method; the CNF's and the non-smooth ones are beyond the capstone).
PROBLEMS = ("linear", "decay", "oscillator", "spiral", "mlp")
#: refnode verify's relative tolerance: each quantity within 100 · RTOL + golden accuracy.
RTOL = 1e-6
#: The fit: 100 iterations of train_spiral must bring the loss on held-out windows below
#: FIT_LOSS (untrained: 0.13; refnode's reference solution: 0.003) within BUDGET seconds
#: (it takes about 2.5 s on one core of a laptop).
ITERATIONS, FIT_LOSS, BUDGET = 100, 0.01, 60.0


def test_rk_solve_takes_equal_rk4_steps(submission):
    f = lambda t, y, theta: theta @ np.tanh(y) + np.sin(3.0 * t)               # noqa: E731
    theta, y0 = np.array([[-0.5, 1.0], [-1.0, -0.2]]), np.array([1.0, -0.5])
    got = np.asarray(submission.rk_solve(f, y0, 0.2, 0.935, theta, max_step=0.1), dtype=float)
    expected = rn.odeint(f, y0, np.array([0.2, 0.935]), theta, method="rk4", n_steps=8)[-1]
    floor = rn.odeint(f, y0, np.array([0.2, 0.935]), theta, method="rk4", n_steps=7)[-1]
    if np.allclose(got, floor, rtol=1e-12):
        raise AssertionError("rk_solve took 7 steps of 0.105 > max_step = 0.1 from 0.2 to 0.935: "
                             "n = ⌈|t_end − t_start| / max_step⌉ (rounded up, not down)")
    for n in (7, 8):
        wrong = rn.odeint(f, y0, np.array([0.2, 0.2 + n * 0.1]), theta, method="rk4", n_steps=n)[-1]
        if np.allclose(got, wrong, rtol=1e-12):
            raise AssertionError(f"rk_solve took {n} steps of 0.1, ending at t = {0.2 + n * 0.1:g}, "
                                 "not t_end = 0.935: n = ⌈|t_end − t_start| / max_step⌉ equal steps, "
                                 "h = (t_end − t_start) / n")
    assert np.allclose(got, expected, rtol=1e-12), (
        f"rk_solve = {got}, expected {expected} (8 equal RK4 steps from 0.2 to 0.935)")


def test_rk_solve_runs_backwards(submission):
    f = lambda t, y, theta: -theta * y                                         # noqa: E731
    got = np.asarray(submission.rk_solve(f, np.array([1.0]), 1.0, 0.0, 0.7, max_step=0.05))
    expected = np.exp(0.7)
    if np.allclose(got, np.exp(-0.7), rtol=1e-6):
        raise AssertionError("rk_solve from t = 1 to 0 went forwards: h = (t_end − t_start) / n is "
                             "negative when t_end < t_start (forgetting to reverse time)")
    assert np.allclose(got, expected, rtol=1e-6), (
        f"y' = −0.7 y from y(1) = 1 back to t = 0: got {got}, expected e^0.7 = {expected:.6f}")


def test_odeint_and_flat_dynamics(submission):
    problem = get_problem("linear")                      # z0 (2, 3), θ = {"A": (3, 3)}
    theta, unflatten = flatten(problem.theta)
    F = submission.flat_dynamics(problem.f, problem.f.vjp, problem.z0.shape, unflatten)
    z, a = problem.z0.ravel(), np.sin(np.arange(6.0))
    assert np.allclose(F(0.3, z, theta), problem.f(0.3, problem.z0, problem.theta).ravel()), (
        "flat_dynamics: F(t, z, θ) must be f on z reshaped to `shape` and θ = unflatten(θ), flattened")
    a_z, a_theta, a_t = problem.f.vjp(0.3, problem.z0, problem.theta, a.reshape(problem.z0.shape))
    got = F.vjp(0.3, z, theta, a)
    assert np.shape(got[0]) == (6,) and np.shape(got[1]) == (9,) and np.ndim(got[2]) == 0, (
        f"F.vjp returned shapes {[np.shape(x) for x in got]}: flat (D,), flat (P,) and a float")
    assert np.allclose(got[0], a_z.ravel()) and np.allclose(got[1], flatten(a_theta)[0]), (
        "F.vjp must return f.vjp's aᵀ∂f/∂z and aᵀ∂f/∂θ flattened (θ in the order of flatten)")
    zs = np.asarray(submission.odeint(F, z, problem.t, theta), dtype=float)
    expected = rn.odeint(F, z, problem.t, theta, method="dopri5", rtol=1e-10, atol=1e-12)
    assert zs.shape == expected.shape, f"odeint returned shape {zs.shape}, expected {expected.shape}"
    assert np.allclose(zs, expected, rtol=1e-6, atol=1e-8), (
        "odeint's states are off from the exact solution by more than RK4 with MAX_STEP allows")


def test_refnode_verify_passes(submission):
    """refnode verify --callable student:verify_solve --rtol 1e-6 --problems ..."""
    submission.verify_solve(problem_dict("linear", RTOL, ATOL_FACTOR * RTOL))   # errors: yours, with a line
    report = verify_callable(submission.verify_solve, rtol=RTOL, names=PROBLEMS)
    assert report.passed, "refnode verify: " + "\n".join(report.summary())


def held_out_loss(f, theta):
    """The mean squared error of 100 held-out windows of 20 times, solved by refnode."""
    t_all = spiral_times()
    z0, t, z_window = sample_windows(np.random.default_rng(2024), t_all, reference_solution(t_all),
                                     batch_time=20, batch_size=100)
    return window_loss(rn.odeint(f, z0, t, theta, rtol=1e-7, atol=1e-9), z_window)[0]


def test_the_spiral_is_fitted_within_the_budget(submission):
    start = time.perf_counter()
    f, theta, losses = submission.train_spiral(iterations=ITERATIONS, seed=0)
    seconds = time.perf_counter() - start
    assert len(losses) == ITERATIONS, f"train_spiral returned {len(losses)} losses for {ITERATIONS} iterations"
    untrained = held_out_loss(*make_model(np.random.default_rng(0)))
    loss = held_out_loss(f, theta)
    assert loss < FIT_LOSS, (
        f"after {ITERATIONS} iterations the held-out loss is {loss:.3g} (untrained {untrained:.3g}); "
        f"it must be below {FIT_LOSS}. A gradient that verify passes descends: check the Adam step "
        "(θ ← adam.update(θ, dL/dθ, state)) and that the loss's gradient goes to adjoint_sweep")
    assert seconds < BUDGET, (f"train_spiral took {seconds:.0f} s for {ITERATIONS} iterations "
                              f"(budget {BUDGET:.0f} s): one RK4 step per observation interval suffices")
