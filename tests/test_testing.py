"""refnode.testing is the autograder: it must pass right VJPs and catch planted bugs."""

import numpy as np
import pytest

from refnode.errors import InputError
from refnode.testing import (central_difference, check_vjp, compare_gradients,
                             relative_error)

pytestmark = pytest.mark.vjp

RNG = np.random.default_rng(7)
X = RNG.standard_normal((4, 3))      # a batch of 4 inputs
W = RNG.standard_normal((2, 3))      # a non-square weight
W_SQUARE = RNG.standard_normal((3, 3))
B = RNG.standard_normal(2)


def layer(x, theta):
    """y = tanh(x Wᵀ + b), theta = {"W", "b"}."""
    return np.tanh(x @ theta["W"].T + theta["b"])


def layer_vjp(g, x, theta, bug=None):
    """The right VJP, or one with a planted bug."""
    g_pre = g * (1.0 - layer(x, theta) ** 2)
    g_x = g_pre @ theta["W"]
    g_W = g_pre.T @ x
    g_b = g_pre.sum(axis=0)
    if bug == "sign":
        g_x = -g_x
    elif bug == "no batch sum":
        g_b = g_pre                    # shape (4, 2) instead of (2,)
    elif bug == "mean instead of sum":
        g_b = g_pre.mean(axis=0)
    elif bug == "transposed weight":
        g_W = g_W.T
    return g_x, {"W": g_W, "b": g_b}


def test_central_difference_is_exact_on_quadratics_up_to_rounding():
    a = RNG.standard_normal((3, 3))
    fun = lambda args: args[0] @ a @ args[1]  # noqa: E731
    x, y, u, v = (RNG.standard_normal(3) for _ in range(4))
    jv = central_difference(fun, (x, y), (u, v), eps=1e-3)
    assert np.isclose(jv, u @ a @ y + x @ a @ v, rtol=1e-10)


def test_check_vjp_passes_a_correct_vjp_and_reports():
    report = check_vjp(layer, layer_vjp, (X, {"W": W, "b": B}))
    assert report.names == ("x", "theta")
    assert report.rel_err < 1e-7
    assert np.isclose(report.got, report.expected, rtol=1e-7)


def test_check_vjp_catches_a_sign_error_and_names_the_argument():
    with pytest.raises(AssertionError) as info:
        check_vjp(layer, lambda g, x, th: layer_vjp(g, x, th, bug="sign"), (X, {"W": W, "b": B}))
    message = str(info.value)
    assert "x: expected" in message and "<-- wrong" in message
    wrong = [line for line in message.splitlines() if "<-- wrong" in line]
    assert len(wrong) == 1 and wrong[0].strip().startswith("x:")
    assert "sign error" in message
    assert "central differences" in message  # the reference used is stated


def test_check_vjp_catches_a_missing_batch_sum_by_shape():
    with pytest.raises(AssertionError, match=r"theta\['b'\].*shape \(4, 2\).*sum over the batch"):
        check_vjp(layer, lambda g, x, th: layer_vjp(g, x, th, bug="no batch sum"),
                  (X, {"W": W, "b": B}))


def test_check_vjp_catches_a_mean_where_a_sum_belongs():
    with pytest.raises(AssertionError) as info:
        check_vjp(layer, lambda g, x, th: layer_vjp(g, x, th, bug="mean instead of sum"),
                  (X, {"W": W, "b": B}))
    message = str(info.value)
    wrong = [line for line in message.splitlines() if "<-- wrong" in line]
    assert len(wrong) == 1 and wrong[0].strip().startswith("theta['b']:")
    assert "expected / 4" in message
    assert "worst entry: theta['b']" in message


def test_check_vjp_catches_a_transposed_weight_and_points_at_it():
    theta = {"W": W_SQUARE, "b": RNG.standard_normal(3)}
    with pytest.raises(AssertionError) as info:
        check_vjp(layer, lambda g, x, th: layer_vjp(g, x, th, bug="transposed weight"),
                  (X, theta), names=("input", "params"))
    message = str(info.value)
    wrong = [line for line in message.splitlines() if "<-- wrong" in line]
    assert len(wrong) == 1 and wrong[0].strip().startswith("params['W']:")
    assert "worst entry: params['W']" in message
    assert "expected one transposed" in message


def test_check_vjp_rejects_a_wrong_number_of_gradients():
    with pytest.raises(AssertionError, match="one gradient per argument"):
        check_vjp(layer, lambda g, x, th: layer_vjp(g, x, th)[:1], (X, {"W": W, "b": B}))


def test_check_vjp_accepts_scalar_arguments_and_a_given_cotangent():
    fun = lambda x, t: np.sin(t * x)  # noqa: E731
    vjp = lambda g, x, t: (g * t * np.cos(t * x), np.sum(g * x * np.cos(t * x)))  # noqa: E731
    report = check_vjp(fun, vjp, (X[0], 0.7), cotangent=np.ones(3))
    assert report.names == ("x", "t")
    assert report.rel_err < 1e-8
    with pytest.raises(AssertionError, match=r"t: expected"):
        check_vjp(fun, lambda g, x, t: (vjp(g, x, t)[0], 2.0 * vjp(g, x, t)[1]), (X[0], 0.7))


def test_check_vjp_refuses_float32_arguments():
    with pytest.raises(InputError, match=r"theta\['W'\].*float32"):
        check_vjp(layer, layer_vjp, (X, {"W": W.astype(np.float32), "b": B}))


def test_relative_error_on_pytrees():
    y = {"a": np.array([1.0, -4.0]), "b": [np.array(2.0)]}
    x = {"a": np.array([1.0, -4.2]), "b": [np.array(2.1)]}
    assert np.isclose(relative_error(x, y), 0.2 / 4.0)
    assert relative_error(y, y) == 0.0
    assert relative_error(np.ones(2), np.zeros(2)) == np.inf


def gradient_sets():
    exact = {"z0": np.array([1.0, 2.0, 3.0]), "theta": [{"W": np.eye(2)}], "t": np.array([0.5, -0.5])}
    close = {"z0": exact["z0"] + 1e-10, "theta": [{"W": np.eye(2) + 1e-11}], "t": exact["t"]}
    off = {"z0": exact["z0"], "theta": [{"W": np.array([[1.0, 0.0], [0.3, 1.0]])}], "t": exact["t"]}
    return {"autograd": exact, "adjoint": close, "discrete": off}


def test_compare_gradients_table_rows_and_text():
    table = compare_gradients(gradient_sets(), reference="autograd", rtol=1e-8, atol=0.0)
    rows = {(r.method, r.quantity): r for r in table}
    assert len(table) == 6
    assert rows["adjoint", "z0"].passed and np.isclose(rows["adjoint", "z0"].max_abs_err, 1e-10)
    assert not rows["discrete", "theta[0]['W']"].passed
    assert np.isclose(rows["discrete", "theta[0]['W']"].rel_err, 0.3)
    assert not table.passed and len(table.failures) == 1
    text = str(table).splitlines()
    assert text[1].split() == ["method", "quantity", "max", "abs", "err", "rel", "err", "pass"]
    assert set(text[2]) == {"-", " "}
    assert any("discrete" in line and "FAIL" in line for line in text)
    starts = [text[1].index(h) for h in ("quantity", "max abs err", "rel err", "pass")]
    for line in text[3:]:  # every cell starts under its header, after a two-space gap
        assert all(line[k - 2:k] == "  " and line[k] != " " for k in starts)


def test_compare_gradients_raises_naming_quantity_and_index():
    with pytest.raises(AssertionError, match=r"discrete, theta\[0\]\['W'\]\[1, 0\]: got 0\.3, expected 0\.0"):
        compare_gradients(gradient_sets(), rtol=1e-8, atol=0.0, raise_on_failure=True)


def test_compare_gradients_fails_on_nan_and_on_structure_mismatch():
    table = compare_gradients({"ref": np.ones(3), "nan": np.array([1.0, np.nan, 1.0])})
    assert not table.passed
    with pytest.raises(AssertionError, match="quantities"):
        compare_gradients({"ref": (np.ones(2), np.ones(2)), "other": (np.ones(2),)})
