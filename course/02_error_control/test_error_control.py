"""Grading: the scaled error of a step, its RMS norm, and the step-size controller
(HNW I, §II.4), alone and inside refnode's adaptive driver."""

import numpy as np

import refnode as rn
import refnode.drivers
import refnode.step_size as reference
from refnode.step_size import MAX_FACTOR, MIN_FACTOR, SAFETY


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    return 1e-4 * rng.standard_normal(6), rng.standard_normal(6), rng.standard_normal(6)


def test_scaled_error(submission):
    error, y0, y1 = arrays()
    got = submission.scaled_error(error, y0, y1, 1e-3, 1e-6)
    expected = reference.scaled_error(error, y0, y1, 1e-3, 1e-6)
    if np.allclose(got, error / (1e-6 + 1e-3 * np.abs(y0))):
        raise AssertionError("scaled_error scales by |y0| only: use max(|y0|, |y1|)")
    if np.allclose(got, error / (1e-6 + 1e-3 * np.abs(y1))):
        raise AssertionError("scaled_error scales by |y1| only: use max(|y0|, |y1|)")
    assert np.allclose(got, expected, rtol=1e-14), (
        f"scaled_error = {got}, expected {expected}: e / (atol + rtol · max(|y0|, |y1|))")


def test_error_ratio_is_the_rms_of_the_scaled_error(submission):
    error, y0, y1 = arrays(1)
    got = submission.error_ratio(error, y0, y1, 1e-3, 1e-6)
    expected = reference.error_ratio(error, y0, y1, 1e-3, 1e-6)
    scaled = reference.scaled_error(error, y0, y1, 1e-3, 1e-6)
    assert np.ndim(got) == 0, "error_ratio returns one number for the whole state"
    if np.isclose(got, np.max(np.abs(scaled))):
        raise AssertionError("error_ratio is the max norm of the scaled error; it is the RMS norm "
                             "sqrt(mean(scaled²))")
    if np.isclose(got, np.sqrt(np.sum(scaled ** 2))):
        raise AssertionError("error_ratio = sqrt(Σ scaled²) is missing the mean: sqrt(mean(scaled²))")
    assert np.isclose(got, expected, rtol=1e-13), f"error_ratio = {got}, expected {expected}"


def test_step_factor(submission):
    q = 5
    for ratio in (0.3, 1.0, 2.0, 1e-12, 1e6):
        got = submission.step_factor(ratio, q)
        expected = reference.step_factor(ratio, q)
        for wrong_q, name in ((q - 1, "p̂ = q − 1"), (q + 1, "q + 1")):
            wrong = np.clip(SAFETY * ratio ** (-1.0 / wrong_q), MIN_FACTOR, MAX_FACTOR)
            if not np.isclose(wrong, expected) and np.isclose(got, wrong):
                raise AssertionError(f"step_factor({ratio}, q={q}) uses the exponent -1/({name}); "
                                     "the controller is SAFETY · ratio^(-1/q)")
        if np.isclose(got, SAFETY * ratio ** (-1.0 / q)) and not np.isclose(got, expected):
            raise AssertionError(f"step_factor({ratio}) = {got:.4g} is not clipped to "
                                 f"[MIN_FACTOR, MAX_FACTOR] = [{MIN_FACTOR}, {MAX_FACTOR}]")
        assert np.isclose(got, expected, rtol=1e-13), (
            f"step_factor({ratio}, q={q}) = {got}, expected {expected}: "
            "min(MAX_FACTOR, max(MIN_FACTOR, SAFETY · ratio^(-1/q)))")
    got = submission.step_factor(0.01, q, after_rejection=True)
    assert got <= 1.0, (f"step_factor(0.01, after_rejection=True) = {got:.4g}: right after a "
                        "rejected step the factor is capped at 1 (no growth)")
    for ratio, expected in ((0.0, MAX_FACTOR), (np.inf, MIN_FACTOR), (np.nan, MIN_FACTOR)):
        got = submission.step_factor(ratio, q)
        assert got == expected, (f"step_factor({ratio}) = {got}; expected {expected} (a zero ratio "
                                 "grows by MAX_FACTOR, a non-finite one shrinks by MIN_FACTOR)")


def adaptive_solve(monkeypatch, functions):
    """Dormand–Prince on a Van der Pol oscillator with ``functions`` in refnode's place."""
    for name, function in functions.items():
        monkeypatch.setattr(reference, name, function)
        if hasattr(refnode.drivers, name):
            monkeypatch.setattr(refnode.drivers, name, function)
    f = lambda t, y, mu: np.array([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])     # noqa: E731
    return rn.solve(f, np.array([2.0, 0.0]), np.array([0.0, 3.0]), 2.0, method="dopri5",
                    rtol=1e-6, atol=1e-8, control=rn.StepControl(trace=True))


def test_your_controller_drives_an_adaptive_solve(submission, monkeypatch):
    """Accept where the ratio <= 1, then h ← h · step_factor: the same steps as refnode."""
    mine = adaptive_solve(monkeypatch, {name: getattr(submission, name)
                                        for name in ("scaled_error", "error_ratio", "step_factor")})
    monkeypatch.undo()
    expected = adaptive_solve(monkeypatch, {})
    for n, (step, step_exp) in enumerate(zip(mine.trace, expected.trace)):
        assert np.isclose(step.h, step_exp.h, rtol=1e-9) and step.accepted == step_exp.accepted, (
            f"attempted step {n}: h = {step.h:.6g} ({'accepted' if step.accepted else 'rejected'}), "
            f"expected h = {step_exp.h:.6g} ({'accepted' if step_exp.accepted else 'rejected'})")
    assert mine.stats == expected.stats, f"stats {mine.stats}, expected {expected.stats}"
