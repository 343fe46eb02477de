"""Optimizers and schedules: hand-computed steps, a quadratic, pytrees, state round trip."""

import math

import numpy as np
import pytest

pytestmark = pytest.mark.training

from refnode.checkpoint import load_checkpoint, save_checkpoint
from refnode.errors import InputError
from refnode.optim import SGD, Adam, constant, odenet_schedule, step_schedule


def run(opt, theta, grads, lr=None):
    state = opt.init(theta)
    for g in grads:
        theta, state = opt.update(theta, g, state, lr=lr)
    return theta, state


# --- single steps against hand arithmetic -------------------------------------------------


def test_sgd_plain_step_is_theta_minus_lr_grad():
    theta, _ = run(SGD(lr=0.1), np.array([1.0, -2.0]), [np.array([0.5, 4.0])])
    np.testing.assert_allclose(theta, [1.0 - 0.05, -2.0 - 0.4], rtol=0, atol=1e-15)


def test_sgd_momentum_two_steps():
    # v1 = 2, theta1 = 1 - 0.1*2 = 0.8; v2 = 0.9*2 - 1 = 0.8, theta2 = 0.8 - 0.08 = 0.72
    theta, state = run(SGD(lr=0.1, momentum=0.9), np.array(1.0), [np.array(2.0), np.array(-1.0)])
    assert theta == pytest.approx(0.72, abs=1e-15)
    assert state["velocity"] == pytest.approx(0.8, abs=1e-15)
    assert state["step"] == 2


def test_sgd_nesterov_two_steps():
    # d1 = 2 + 0.9*2 = 3.8, theta1 = 0.62; v2 = 0.8, d2 = -1 + 0.72 = -0.28, theta2 = 0.648
    opt = SGD(lr=0.1, momentum=0.9, nesterov=True)
    theta, _ = run(opt, np.array(1.0), [np.array(2.0), np.array(-1.0)])
    assert theta == pytest.approx(0.648, abs=1e-15)


def test_sgd_weight_decay_adds_l2_gradient():
    # g = 0.5 + 0.01 * 3 = 0.53; theta = 3 - 0.1 * 0.53 = 2.947
    theta, _ = run(SGD(lr=0.1, weight_decay=0.01), np.array(3.0), [np.array(0.5)])
    assert theta == pytest.approx(2.947, abs=1e-15)


def test_adam_two_steps():
    # Step 1: m = 0.02, v = 4e-5, m_hat = 0.2, v_hat = 0.04 -> theta = 0.5 - 0.01*0.2/(0.2+1e-8)
    # Step 2 (g = -0.1): m = 0.008, v = 4.996e-5, m_hat = 0.008/0.19, v_hat = 4.996e-5/0.001999
    opt = Adam(lr=0.01)
    theta1, state = run(opt, np.array(0.5), [np.array(0.2)])
    assert theta1 == pytest.approx(0.5 - 0.01 * 0.2 / (0.2 + 1e-8), abs=1e-15)
    theta2, state = opt.update(theta1, np.array(-0.1), state)
    m_hat, v_hat = 0.008 / 0.19, 4.996e-5 / 0.001999
    assert state["m"] == pytest.approx(0.008, abs=1e-15)
    assert state["v"] == pytest.approx(4.996e-5, abs=1e-15)
    assert theta2 == pytest.approx(theta1 - 0.01 * m_hat / (math.sqrt(v_hat) + 1e-8), abs=1e-14)


def test_adam_first_step_has_length_lr_per_coordinate():
    # After bias correction m_hat = g and v_hat = g**2: the first step is lr * g / (|g| + eps),
    # i.e. length lr in every coordinate whatever the scale of g.
    g = np.array([1e-3, -5.0, 200.0])
    theta, _ = run(Adam(lr=0.05, eps=1e-12), np.zeros(3), [g])
    np.testing.assert_allclose(theta, -0.05 * g / (np.abs(g) + 1e-12), rtol=1e-14)
    np.testing.assert_allclose(np.abs(theta), 0.05, rtol=1e-8)


def test_update_overrides_lr_for_one_step():
    opt = SGD(lr=1.0)
    theta, _ = opt.update(np.array(1.0), np.array(1.0), opt.init(np.array(1.0)), lr=0.25)
    assert theta == 0.75
    assert opt.lr == 1.0


# --- pytrees and purity ---------------------------------------------------------------------


@pytest.mark.parametrize("opt", [SGD(lr=0.1, momentum=0.9, weight_decay=1e-3), Adam(lr=0.1)])
def test_pytree_structure_kept_and_inputs_untouched(opt):
    rng = np.random.default_rng(0)
    theta = {"W": rng.normal(size=(3, 2)), "layers": (rng.normal(size=4), [rng.normal(size=())])}
    grad = {"W": rng.normal(size=(3, 2)), "layers": (rng.normal(size=4), [rng.normal(size=())])}
    copies = [x.copy() for x in (theta["W"], grad["W"], theta["layers"][0])]
    state = opt.init(theta)
    new_theta, new_state = opt.update(theta, grad, state)
    assert set(new_theta) == {"W", "layers"}
    assert isinstance(new_theta["layers"], tuple) and isinstance(new_theta["layers"][1], list)
    assert new_theta["W"].shape == (3, 2) and new_theta["layers"][1][0].shape == ()
    np.testing.assert_array_equal(theta["W"], copies[0])
    np.testing.assert_array_equal(grad["W"], copies[1])
    np.testing.assert_array_equal(theta["layers"][0], copies[2])
    assert state["step"] == 0 and new_state["step"] == 1
    assert not np.array_equal(new_theta["W"], theta["W"])


# --- minimising a quadratic ------------------------------------------------------------------


def quadratic():
    """f(theta) = 1/2 theta^T A theta - b^T theta, minimiser A^{-1} b; grad = A theta - b."""
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    b = np.array([1.0, -1.0])
    return A, b, np.linalg.solve(A, b)


@pytest.mark.parametrize("opt", [SGD(lr=0.1), SGD(lr=0.05, momentum=0.9),
                                 SGD(lr=0.05, momentum=0.9, nesterov=True)])
def test_sgd_minimises_quadratic(opt):
    A, b, minimiser = quadratic()
    theta = np.array([5.0, 5.0])
    state = opt.init(theta)
    for _ in range(500):
        theta, state = opt.update(theta, A @ theta - b, state)
    np.testing.assert_allclose(theta, minimiser, atol=1e-10)


def test_adam_minimises_quadratic_with_decaying_lr():
    A, b, minimiser = quadratic()
    opt = Adam(lr=0.1)
    schedule = step_schedule(0.1, boundaries=(1000, 2000, 3000), factor=0.1)
    theta = np.array([5.0, 5.0])
    state = opt.init(theta)
    for k in range(4000):
        theta, state = opt.update(theta, A @ theta - b, state, lr=schedule(k))
    np.testing.assert_allclose(theta, minimiser, atol=1e-6)


# --- state round trip through a checkpoint ---------------------------------------------------


@pytest.mark.parametrize("opt", [SGD(lr=0.1, momentum=0.9), Adam(lr=0.05)])
def test_state_round_trip_resumes_identically(opt, tmp_path):
    A, b, _ = quadratic()
    theta = {"w": np.array([5.0, 5.0])}
    state = opt.init(theta)
    for _ in range(7):
        theta, state = opt.update(theta, {"w": A @ theta["w"] - b}, state)
    save_checkpoint(tmp_path / "opt.npz", {"theta": theta, "state": state})
    loaded, _ = load_checkpoint(tmp_path / "opt.npz")
    theta2, state2 = loaded["theta"], loaded["state"]
    assert type(state2["step"]) is int and state2["step"] == 7
    for _ in range(5):
        theta, state = opt.update(theta, {"w": A @ theta["w"] - b}, state)
        theta2, state2 = opt.update(theta2, {"w": A @ theta2["w"] - b}, state2)
    np.testing.assert_array_equal(theta["w"], theta2["w"])


# --- schedules ---------------------------------------------------------------------------------


def test_step_schedule_odenet_values():
    schedule = step_schedule(0.1, boundaries=(60, 100, 140), factor=0.1)
    got = [schedule(e) for e in (0, 59.99, 60, 99, 100, 140, 159)]
    want = [0.1, 0.1, 0.01, 0.01, 0.001, 0.0001, 0.0001]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_odenet_schedule_scales_with_batch():
    assert odenet_schedule(128)(0) == pytest.approx(0.1)
    assert odenet_schedule(256)(0) == pytest.approx(0.2)
    assert odenet_schedule(256)(100.5) == pytest.approx(0.002)


def test_constant_schedule():
    schedule = constant(3e-3)
    assert schedule(0) == schedule(1e6) == 3e-3


@pytest.mark.parametrize("make", [
    lambda: SGD(lr=0.0), lambda: SGD(lr=float("nan")), lambda: SGD(lr=0.1, momentum=1.0),
    lambda: SGD(lr=0.1, nesterov=True), lambda: SGD(lr=0.1, weight_decay=-1.0),
    lambda: Adam(betas=(0.9, 1.0)), lambda: Adam(eps=0.0),
    lambda: step_schedule(0.1, (100, 60), 0.1), lambda: step_schedule(0.1, (60,), 0.0),
    lambda: odenet_schedule(0),
])
def test_bad_settings_raise_input_error(make):
    with pytest.raises(InputError):
        make()
