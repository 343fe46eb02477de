"""The rules of an adaptive step, shared by the shared and the per-sample loop.

Each rule of refnode/step_policy.py takes a float (one step size) or a (B,) array (one
per sample) and must give the same answer elementwise. Both loops must fail alike: the
same problem solved with batch="shared" and with batch="independent" (B = 1, and B = 3
copies) raises the same error class with the same message, numbers included (the
per-sample one names the sample first), naming the real cause: a blow-up at any sign
and direction of t, max_steps (1 among them), a non-finite f, a norm returning NaN,
min_step (above the whole span among them), a subnormal first step, and times too large
for float64 to resolve the step. A sample that succeeds takes the shared loop's
steps exactly and ends on its final state bit for bit.
"""

import warnings

import numpy as np
import pytest

import refnode as rn
from refnode import step_policy
from refnode.per_sample import spacing
from refnode.errors import (InputError, MaxStepsExceededError, NonFiniteStateError,
                            StepSizeUnderflowError)
from refnode.methods import get_method

pytestmark = pytest.mark.adaptive


def square(t, z, theta):
    return z * z


def decay(t, z, theta):
    return -z


def nan_below_half(t, z, theta):
    return np.where(z < 0.5, np.nan, -z)


def nan_norm(error, y0, y1):
    """A broken norm: NaN for every step."""
    return float("nan")


def nan_norm_per_sample(error, y0, y1):
    """The same broken norm as a per-sample norm: one NaN per sample, shape (B,)."""
    return np.full(error.shape[0], np.nan)


#: name: (f, z0 of one sample, t, options, error class, what the message must say)
FAILING = {
    "blow-up at t = 3": (square, 1.0, [2.0, 4.0], {}, StepSizeUnderflowError, "underflowed"),
    "blow-up at negative t": (square, 1.0, [-2.0, 0.0], {}, StepSizeUnderflowError,
                              "underflowed"),
    "blow-up backwards in time": (square, -1.0, [4.0, 2.0], {}, StepSizeUnderflowError,
                                  "underflowed"),
    "blow-up backwards at negative t": (square, -1.0, [0.0, -2.0], {},
                                        StepSizeUnderflowError, "underflowed"),
    "max_steps": (decay, 1.0, [0.0, 10.0], dict(max_steps=5), MaxStepsExceededError,
                  "max_steps = 5"),
    "non-finite f": (nan_below_half, 1.0, [0.0, 1.0], {}, NonFiniteStateError,
                     "f or the state became non-finite"),
    "norm returning NaN": (decay, 1.0, [0.0, 1.0], dict(norm=nan_norm, first_step=0.1),
                           NonFiniteStateError, "the error norm returned NaN"),
    "norm returning NaN at the start": (decay, 1.0, [0.0, 1.0], dict(norm=nan_norm),
                                        InputError, "the error norm returned NaN"),
    "min_step": (decay, 1.0, [0.0, 1.0], dict(min_step=10.0), StepSizeUnderflowError,
                 "fell below min_step = 10.0"),
    "time resolution": (decay, 1.0, [1e15, 1e15 + 1.0], {}, StepSizeUnderflowError,
                        "time resolution of float64"),
    "times near the largest float": (decay, 1.0, [1e300, 1e300 * (1 + 1e-14)], {},
                                     StepSizeUnderflowError, "underflowed"),
    "a subnormal first step": (decay, 1.0, [0.0, 1.0], dict(first_step=5e-324),
                               StepSizeUnderflowError, "underflowed"),
    "min_step above the span": (decay, 1.0, [0.0, 0.1], dict(min_step=0.5),
                                StepSizeUnderflowError, "fell below min_step = 0.5"),
    "max_steps = 1": (decay, 1.0, [0.0, 1.0], dict(max_steps=1), MaxStepsExceededError,
                      "max_steps = 1"),
}

def failure(name, batch, B):
    """The exception the solve of FAILING[name] raises (max_steps kept low for speed)."""
    f, z0, t, options, _, _ = FAILING[name]
    if options.get("norm") is nan_norm and batch == "independent":
        options = dict(options, norm=nan_norm_per_sample)
    control = rn.StepControl(**{"max_steps": 5000, **options})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)   # no overflow warnings on the way
        with pytest.raises(rn.RefnodeError) as info:
            rn.solve(f, np.full((B, 1), z0), np.array(t), control=control, batch=batch)
    return info.value


@pytest.mark.parametrize("name", FAILING)
def test_both_loops_fail_alike_with_the_real_cause(name):
    """The same class and the same message, numbers included: a batch of identical samples
    takes the shared loop's steps exactly (the step policy is one set of functions, and
    the norm and the controller's power round alike for a float and a (B,) array)."""
    *_, error_class, says = FAILING[name]
    shared = failure(name, "shared", 1)
    assert type(shared) is error_class, shared
    assert says in str(shared)
    for B in (1, 3):
        per_sample = failure(name, "independent", B)
        assert type(per_sample) is error_class, per_sample
        message = str(per_sample)
        if error_class is not InputError:               # a solve failure names its sample
            assert message.startswith("sample 0: "), message
            message = message[len("sample 0: "):]
            assert per_sample.t == shared.t
        assert message == str(shared)


@pytest.mark.parametrize("batch", ["shared", "independent"])
def test_max_steps_is_the_number_of_steps_a_solve_may_attempt(batch):
    """A solve that attempts N steps succeeds with max_steps = N and fails with N - 1,
    in both loops."""
    z0, t = np.array([[1.0, 0.5]]), np.array([0.0, 1.0])
    n = int(np.max(rn.solve(decay, z0, t, batch=batch).stats["n_steps"]))
    assert n > 2
    rn.solve(decay, z0, t, batch=batch, control=rn.StepControl(max_steps=n))
    with pytest.raises(MaxStepsExceededError, match=f"max_steps = {n - 1} attempted"):
        rn.solve(decay, z0, t, batch=batch, control=rn.StepControl(max_steps=n - 1))


def rotation(t, z, theta):
    """A time-dependent, non-elementwise field: z' = (-z2, (1 + cos(t)/10) z1)."""
    return np.concatenate([-z[:, 1:2], z[:, 0:1] * (1.0 + 0.1 * np.cos(t))], axis=1)


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "dop853", "tsit5"])
@pytest.mark.parametrize("t", [[0.0, 3.0], [3.0, 0.0], [-4.0, -1.0], [1e8, 1e8 + 0.5],
                               [0.0, 1e-300], [1.0, np.nextafter(1.0, 2.0)],
                               [-1e10, -1e10 - 1.0]])
@pytest.mark.parametrize("f", [decay, rotation])
def test_a_sample_takes_the_shared_loops_steps_exactly(f, t, method):
    """Same step counts and the same final state bit for bit, alone or among copies."""
    z0 = np.array([[0.5, -1.25]])
    shared = rn.solve(f, z0, np.array(t), method=method)
    for B in (1, 3):
        alone = rn.solve(f, np.repeat(z0, B, axis=0), np.array(t), method=method,
                         batch="independent")
        assert alone.stats["n_steps"].tolist() == [shared.stats["n_steps"]] * B
        assert alone.stats["nfe"].tolist() == [shared.stats["nfe"]] * B
        np.testing.assert_array_equal(alone.z[-1], np.repeat(shared.z[-1], B, axis=0))


@pytest.mark.parametrize("batch", ["shared", "independent"])
@pytest.mark.parametrize("z0, t, singular", [(1.0, [2.0, 4.0], 3.0), (1.0, [-2.0, 0.0], -1.0),
                                             (-1.0, [4.0, 2.0], 3.0), (-1.0, [0.0, -2.0], -1.0)])
def test_blow_up_stops_at_the_singularity_whatever_the_sign_and_direction_of_t(batch, z0, t,
                                                                              singular):
    """dz/dt = z² blows up at t = ``singular``: underflow there in a few hundred steps.

    (At negative t the spacing test once had the wrong sign: h shrank to 1e-171 and the
    solve ground through max_steps.)
    """
    with pytest.raises(StepSizeUnderflowError) as info:
        rn.solve(square, np.array([[z0]]), np.array(t), batch=batch,
                 control=rn.StepControl(max_steps=2000))
    assert abs(info.value.t - singular) < 1e-6


def test_a_nan_in_one_sample_is_reported_as_non_finite_not_underflow():
    """Sample 1 reaches the NaN region first; every sample is told the real cause."""
    z0 = np.array([[1.0], [0.8], [1.0]])
    for batch in ("shared", "independent"):
        with np.errstate(invalid="ignore"), pytest.raises(NonFiniteStateError,
                                                          match="non-finite"):
            rn.solve(nan_below_half, z0, np.array([0.0, 1.0]), batch=batch)


def test_time_spacing_is_positive_for_negative_and_decreasing_time():
    for t in (-3.0, -1e15, 0.0, 2.0, 1e15):
        for h in (1e-3, -1e-3):
            gap = spacing(t, h)
            assert 0.0 < gap <= 2 * np.spacing(abs(t)) + 5e-324
    assert spacing(1e15, 1e-3) == 0.125
    np.testing.assert_array_equal(spacing(np.array([-2.0, 2.0]), np.array([1e-3, -1e-3])),
                                  [np.spacing(1.0), np.spacing(1.0)])


def test_each_rule_gives_the_same_answer_for_floats_and_per_sample_arrays():
    rng = np.random.default_rng(0)
    B = 64
    t = rng.choice([-1e15, -2.0, 0.0, 3.0, 1e15], B) + rng.uniform(0, 1, B)
    h = rng.choice([-1.0, 1.0], B) * 10.0 ** rng.uniform(-17, 0, B)
    h_proposed = h * rng.choice([1.0, 2.0], B)
    ratio = rng.choice([0.1, 0.9, 1.5, np.nan, np.inf, 0.0], B)
    rejected = rng.uniform(size=B) < 0.5
    counts = rng.integers(0, 15, B)
    t_end = np.where(h > 0, t + 0.5, t - 0.5)
    control = rn.StepControl(max_steps=10, min_step=1e-6)
    tableau = get_method("dopri5")
    rules = {
        "clip_step": lambda i: (t[i], h[i] * 1e6, t_end[i], np.sign(h[i])),
        "step_end": lambda i: (t[i], t_end[i] - t[i] - 1e-16 * h[i], t_end[i]),
        "next_step": lambda i: (h[i], ratio[i], 5.0, rejected[i]),
        "carried_step": lambda i: (h_proposed[i], h[i], h[i] * 0.7),
        "count_nonfinite": lambda i: (counts[i], ratio[i]),
        "evaluations": lambda i: (tableau, rejected[i], ratio[i] > 1),
        "failure": lambda i: (t[i], h[i], t_end[i], counts[i], counts[i] % 12, control),
    }
    for name, arguments in rules.items():
        rule = getattr(step_policy, name)
        everything = rule(*arguments(slice(None)))
        one_by_one = [rule(*[a.item() if isinstance(a, np.generic) else a
                             for a in arguments(i)]) for i in range(B)]
        np.testing.assert_array_equal(everything, np.array(one_by_one, dtype=float),
                                      err_msg=name)
