"""Convolutional layers, GroupNorm, pooling and losses (the ODE-Net of Table 1).

Every hand-derived VJP is checked twice: against autograd differentiating the same
forward pass (~1e-12 relative), and by the dot-product test against central
differences (~1e-6). The convolution's forward pass is checked against a direct
quadruple loop, so the im2col indexing has an independent reference.
"""

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refnode.errors import InputError
from refnode.nn.base import NetworkDynamics, Sequential
from refnode.nn import conv as conv_module
from refnode.nn.conv import ConcatConv2d, Conv2d, col2im, im2col, output_size, sample_blocks
from refnode.nn.losses import accuracy, log_softmax, mean_squared_error, softmax_cross_entropy
from refnode.nn.norm import GroupNorm
from refnode.nn.pool import Flatten, GlobalAvgPool2d
from refnode.strict import to_device
from refnode.testing import check_vjp, compare_gradients

pytestmark = [pytest.mark.vjp, pytest.mark.odenet]

# Reasons: docs/design.md, "Tolerances in the tests".
AUTOGRAD_RTOL = 1e-12   # layer VJP vs autograd: the same computation, rounded differently
DOT_RTOL = 1e-6         # dot-product test vs central differences (ε = 1e-6)


# ----------------------------------------------------------------------------- helpers

def naive_conv2d(x, W, b, stride, padding):
    """y[n,o,p,q] = b[o] + Σ_{c,i,j} W[o,c,i,j] x_pad[n,c,s·p+i,s·q+j], one output at a time."""
    n, c_in, h, w = x.shape
    c_out, _, k, _ = W.shape
    x_pad = np.zeros((n, c_in, h + 2 * padding, w + 2 * padding))
    x_pad[:, :, padding:padding + h, padding:padding + w] = x
    h_out = (h + 2 * padding - k) // stride + 1
    w_out = (w + 2 * padding - k) // stride + 1
    y = np.zeros((n, c_out, h_out, w_out))
    for m in range(n):
        for o in range(c_out):
            for p in range(h_out):
                for q in range(w_out):
                    window = x_pad[m, :, stride * p:stride * p + k, stride * q:stride * q + k]
                    y[m, o, p, q] = b[o] + np.sum(W[o] * window)
    return y


def check_layer_vjp(layer, theta, t, x, seed=0, g=None, atol=0.0):
    """The layer's hand VJP vs autograd (1e-12) and the dot-product test (1e-6).

    ``g`` is the cotangent (standard normal from ``seed`` if not given); ``atol`` is
    for gradients computed by cancellation, whose rounding error is relative to the
    cancelling terms rather than to the result (see test_group_norm_vjp).
    """
    y, cache = layer.forward(theta, t, x)
    if g is None:
        g = np.random.default_rng(seed).standard_normal(y.shape)
    g_x, g_theta, g_t = layer.vjp(theta, cache, g)
    assert g_x.shape == x.shape

    def inner_product(args):
        x_, theta_, t_ = args
        return anp.sum(layer.forward(theta_, t_, x_)[0] * g)

    a_x, a_theta, a_t = autograd.grad(inner_product)((x, theta, t))
    compare_gradients({"autograd": {"x": a_x, "theta": a_theta, "t": np.asarray(a_t)},
                       "hand VJP": {"x": g_x, "theta": g_theta, "t": np.asarray(g_t)}},
                      rtol=AUTOGRAD_RTOL, atol=atol, raise_on_failure=True)

    def vjp(g_, x_, theta_, t_):
        g_x_, g_theta_, g_t_ = layer.vjp(theta_, layer.forward(theta_, t_, x_)[1], g_)
        return g_x_, g_theta_, np.asarray(g_t_)

    check_vjp(lambda x_, theta_, t_: layer.forward(theta_, t_, x_)[0], vjp,
              (x, theta, np.asarray(t)), cotangent=g, rtol=DOT_RTOL, seed=seed,
              names=("x", "theta", "t"))


def random_theta(layer, rng):
    """Parameters with every entry random (GroupNorm's default γ = 1, β = 0 would hide errors)."""
    return {k: rng.standard_normal(v.shape) for k, v in layer.init(rng).items()}


@st.composite
def conv_cases(draw):
    """A small convolution: kernel 1–4, stride 1–2, padding 0–2, images up to 7×7."""
    k = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 2))
    padding = draw(st.integers(0, 2))
    smallest = max(1, k - 2 * padding)           # the output must be at least 1×1
    return dict(n=draw(st.integers(1, 2)), c_in=draw(st.integers(1, 3)),
                c_out=draw(st.integers(1, 3)), k=k, stride=stride, padding=padding,
                h=draw(st.integers(smallest, 7)), w=draw(st.integers(smallest, 7)),
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)))


def make_conv(case):
    layer = Conv2d(case["c_in"], case["c_out"], case["k"], stride=case["stride"],
                   padding=case["padding"], bias=case["bias"])
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c_in"], case["h"], case["w"]))
    return layer, layer.init(rng), x


# ------------------------------------------------------------------------------ Conv2d

@given(conv_cases())
def test_conv2d_forward_matches_direct_loop(case):
    layer, theta, x = make_conv(case)
    y, _ = layer.forward(theta, 0.0, x)
    b = theta.get("b", np.zeros(case["c_out"]))
    expected = naive_conv2d(x, theta["W"], b, case["stride"], case["padding"])
    assert y.shape == expected.shape == layer.output_shape(x.shape)
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13)


@given(conv_cases())
def test_conv2d_vjp(case):
    layer, theta, x = make_conv(case)
    check_layer_vjp(layer, theta, 0.3, x, seed=case["seed"])


@pytest.mark.parametrize("block_bytes", [1, 3000, 10 ** 9])   # 1, 2 or 5 samples a block
def test_conv2d_in_blocks_of_samples_is_the_same_convolution(monkeypatch, block_bytes):
    """One sample per block, a few per block, one block: the same forward pass (against the
    direct loop) and the same VJP (against autograd and the dot-product test)."""
    monkeypatch.setattr(conv_module, "CPU_BLOCK_BYTES", block_bytes)
    case = dict(c_in=2, c_out=3, k=3, stride=2, padding=1, bias=True, n=5, h=6, w=5, seed=4)
    layer, theta, x = make_conv(case)
    y, cache = layer.forward(theta, 0.0, x)
    expected = naive_conv2d(x, theta["W"], theta["b"], case["stride"], case["padding"])
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13)
    check_layer_vjp(layer, theta, 0.3, x, seed=case["seed"])


def test_sample_blocks_cover_the_batch_in_order():
    """Blocks of CPU_BLOCK_BYTES // (bytes per sample) samples, at least one, in order; an
    array of another module (the strict device array, as CuPy) is one block."""
    x = np.zeros((10, 4, 4, 3))
    blocks = sample_blocks(x, sample_bytes=conv_module.CPU_BLOCK_BYTES // 3)
    assert blocks == [slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10)]
    assert sample_blocks(x, sample_bytes=10 * conv_module.CPU_BLOCK_BYTES) == [
        slice(i, i + 1) for i in range(10)]
    assert sample_blocks(to_device(x), sample_bytes=1) == [slice(0, 10)]
    assert sample_blocks(x[:0], sample_bytes=1) == [slice(0, 0)]


def test_conv2d_takes_an_empty_batch():
    layer = Conv2d(2, 3, 3, stride=2, padding=1)
    theta = layer.init(np.random.default_rng(0))
    y, cache = layer.forward(theta, 0.0, np.zeros((0, 2, 5, 5)))
    g_x, g_theta, _ = layer.vjp(theta, cache, np.zeros(y.shape))
    assert y.shape == (0, 3, 3, 3) and g_x.shape == (0, 2, 5, 5)
    assert np.array_equal(g_theta["W"], np.zeros((3, 2, 3, 3))) and np.all(g_theta["b"] == 0)


@given(conv_cases())
def test_col2im_is_the_transpose_of_im2col(case):
    """⟨im2col(x), C⟩ = ⟨x, col2im(C)⟩ for every x and C: col2im is im2col's adjoint."""
    k, s = case["k"], case["stride"]
    h_pad, w_pad = case["h"] + 2 * case["padding"], case["w"] + 2 * case["padding"]
    h_out = output_size(case["h"], k, s, case["padding"])
    w_out = output_size(case["w"], k, s, case["padding"])
    rng = np.random.default_rng(case["seed"])
    x_pad = rng.standard_normal((case["n"], h_pad, w_pad, case["c_in"]))
    cols = rng.standard_normal((case["n"] * h_out * w_out, case["c_in"] * k * k))
    lhs = np.sum(im2col(x_pad, k, s, h_out, w_out) * cols)
    rhs = np.sum(x_pad * col2im(cols, x_pad.shape, k, s, h_out, w_out))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer", [GroupNorm(1, 2)], ids=repr)
def test_hand_vjp_runs_under_autograd(layer):
    """No in-place writes in the GroupNorm VJP: autograd can trace it (a second derivative).

    (The convolutions' VJPs are not traceable: col2im accumulates into one buffer in
    place, which is faster; see refnode/nn/conv.py.)

    g ↦ ⟨vjp_x(g), v⟩ is linear with gradient J v, which central differences also give.
    """
    rng = np.random.default_rng(10)
    theta, x = layer.init(rng), rng.standard_normal((2, 2, 5, 5))
    y, cache = layer.forward(theta, 0.3, x)
    v = rng.standard_normal(x.shape)
    J_v = autograd.grad(lambda g: anp.sum(layer.vjp(theta, cache, g)[0] * v))(np.zeros(y.shape))
    eps = 1e-6
    fd = (layer.forward(theta, 0.3, x + eps * v)[0]
          - layer.forward(theta, 0.3, x - eps * v)[0]) / (2 * eps)
    np.testing.assert_allclose(J_v, fd, rtol=DOT_RTOL, atol=1e-8)


def test_conv2d_init_is_pytorch_default():
    layer = Conv2d(4, 8, 3)
    theta = layer.init(np.random.default_rng(0))
    bound = 1.0 / np.sqrt(4 * 3 * 3)
    assert theta["W"].shape == (8, 4, 3, 3) and theta["b"].shape == (8,)
    assert np.all(np.abs(theta["W"]) <= bound) and np.all(np.abs(theta["b"]) <= bound)
    assert np.abs(theta["W"]).max() > 0.9 * bound         # uniform up to the bound, not smaller
    assert "b" not in Conv2d(4, 8, 3, bias=False).init(np.random.default_rng(0))


def test_conv2d_rejects_bad_input():
    with pytest.raises(InputError, match="kernel_size"):
        Conv2d(1, 1, 0)
    layer = Conv2d(2, 3, 4)
    theta = layer.init(np.random.default_rng(0))
    with pytest.raises(InputError, match=r"\(N, 2, H, W\)"):
        layer.forward(theta, 0.0, np.zeros((1, 3, 6, 6)))
    with pytest.raises(InputError, match="smaller than the kernel"):
        layer.forward(theta, 0.0, np.zeros((1, 2, 3, 6)))


# ------------------------------------------------------------------------ ConcatConv2d

@pytest.mark.parametrize("stride, padding", [(1, 1), (1, 0), (2, 1)])
def test_concat_conv2d_time_is_channel_zero(stride, padding):
    """By linearity: y = conv(x, W[:, 1:]) + t · conv(ones, W[:, :1]) + b.

    The time channel is zero-padded like x, so near the border it contributes less.
    """
    rng = np.random.default_rng(1)
    layer = ConcatConv2d(2, 3, ksize=3, stride=stride, padding=padding)
    theta = layer.init(rng)
    x, t = rng.standard_normal((2, 2, 6, 5)), 0.7
    y, _ = layer.forward(theta, t, x)
    W, b = theta["W"], theta["b"]
    expected = (naive_conv2d(x, W[:, 1:], b, stride, padding)
                + t * naive_conv2d(np.ones((2, 1, 6, 5)), W[:, :1], 0.0 * b, stride, padding))
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13)


@given(conv_cases(), st.floats(-2.0, 2.0))
def test_concat_conv2d_vjp(case, t):
    layer = ConcatConv2d(case["c_in"], case["c_out"], ksize=case["k"], stride=case["stride"],
                         padding=case["padding"])
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c_in"], case["h"], case["w"]))
    check_layer_vjp(layer, layer.init(rng), t, x, seed=case["seed"])


# --------------------------------------------------------------------------- GroupNorm

@st.composite
def group_norm_cases(draw):
    groups = draw(st.integers(1, 3))
    per_group = draw(st.integers(1, 3))
    spatial = draw(st.sampled_from([(), (3,), (2, 3), (4, 4)]))
    return dict(groups=groups, channels=groups * per_group, n=draw(st.integers(1, 3)),
                spatial=spatial, seed=draw(st.integers(0, 2 ** 16)))


@given(group_norm_cases())
def test_group_norm_vjp(case):
    layer = GroupNorm(case["groups"], case["channels"])
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["channels"]) + case["spatial"])
    theta = random_theta(layer, rng)
    y, cache = layer.forward(theta, 0.0, x)
    g = rng.standard_normal(y.shape)
    # g_x = (ĝ − mean ĝ − x̂·mean(ĝx̂))/σ cancels: in a group of m entries it lies in an
    # (m − 2)-dimensional subspace and can be far smaller than ĝ/σ, the size of the terms
    # whose rounding it inherits. So the error is measured against that size.
    cancelling_terms = np.max(np.abs(g * theta["weight"].reshape((1, -1) + (1,) * len(case["spatial"]))))
    atol = AUTOGRAD_RTOL * cancelling_terms / np.min(cache["sigma"])
    check_layer_vjp(layer, theta, 0.0, x, seed=case["seed"], g=g, atol=atol)


def test_group_norm_normalises_each_group():
    rng = np.random.default_rng(2)
    layer = GroupNorm(2, 6, eps=1e-5)
    x = 3.0 + 5.0 * rng.standard_normal((4, 6, 5, 5))
    y, _ = layer.forward(layer.init(rng), 0.0, x)         # γ = 1, β = 0: y = x̂
    x_g, y_g = x.reshape(4, 2, -1), y.reshape(4, 2, -1)
    var = x_g.var(axis=-1)
    np.testing.assert_allclose(y_g.mean(axis=-1), 0.0, atol=1e-14)
    np.testing.assert_allclose(y_g.var(axis=-1), var / (var + layer.eps), rtol=1e-13)
    # the affine part acts per channel, after normalising
    theta = random_theta(layer, rng)
    y_affine, _ = layer.forward(theta, 0.0, x)
    np.testing.assert_allclose(y_affine, y * theta["weight"][None, :, None, None]
                               + theta["bias"][None, :, None, None], rtol=1e-13, atol=1e-13)


def test_group_norm_rejects_bad_groups():
    with pytest.raises(InputError, match="divide"):
        GroupNorm(4, 6)
    with pytest.raises(InputError, match=r"\(N, 6, \.\.\.\)"):
        GroupNorm(2, 6).forward(GroupNorm(2, 6).init(None), 0.0, np.zeros((1, 4, 2, 2)))


# ---------------------------------------------------------------------- pool, flatten

def test_global_avg_pool_and_flatten():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 5))
    y, _ = GlobalAvgPool2d().forward({}, 0.0, x)
    np.testing.assert_allclose(y, [[x[n, c].sum() / 20 for c in range(3)] for n in range(2)],
                               rtol=1e-14)
    z, _ = Flatten().forward({}, 0.0, x)
    assert z.shape == (2, 60) and z[1, 21] == x[1, 1, 0, 1]
    check_layer_vjp(GlobalAvgPool2d(), {}, 0.0, x)
    check_layer_vjp(Flatten(), {}, 0.0, x)


# ------------------------------------------------------------------------------ losses

def test_softmax_cross_entropy_matches_direct_formula():
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((6, 4)), np.array([0, 3, 1, 1, 2, 3])
    loss, grad = softmax_cross_entropy(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss, -np.mean(np.log(p[np.arange(6), labels])), rtol=1e-14)
    a_grad = autograd.grad(lambda z: softmax_cross_entropy(z, labels)[0])(logits)
    compare_gradients({"autograd": a_grad, "hand": grad}, rtol=AUTOGRAD_RTOL, atol=0.0,
                      raise_on_failure=True)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-16)   # softmax rows sum to 1


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    rng = np.random.default_rng(5)
    logits, labels = rng.standard_normal((3, 5)), np.array([4, 0, 2])
    loss, grad = softmax_cross_entropy(logits, labels)
    loss_big, grad_big = softmax_cross_entropy(logits + 1e4, labels)   # exp(1e4) overflows
    assert np.isfinite(loss_big)
    np.testing.assert_allclose(loss_big, loss, rtol=1e-10)
    np.testing.assert_allclose(grad_big, grad, atol=1e-12)
    np.testing.assert_allclose(np.exp(log_softmax(logits + 1e4)).sum(axis=1), 1.0, rtol=1e-14)


def test_loss_input_checks():
    logits = np.zeros((3, 4))
    with pytest.raises(InputError, match=r"\[0, 4\)"):
        softmax_cross_entropy(logits, np.array([0, 4, 1]))
    with pytest.raises(InputError, match="integer"):
        softmax_cross_entropy(logits, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="same shape"):
        mean_squared_error(np.zeros(3), np.zeros(4))


def test_mean_squared_error_and_accuracy():
    rng = np.random.default_rng(6)
    prediction, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss, grad = mean_squared_error(prediction, target)
    np.testing.assert_allclose(loss, np.sum((prediction - target) ** 2) / 12, rtol=1e-14)
    a_grad = autograd.grad(lambda p: mean_squared_error(p, target)[0])(prediction)
    compare_gradients({"autograd": a_grad, "hand": grad}, rtol=AUTOGRAD_RTOL, atol=0.0,
                      raise_on_failure=True)
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [0.0, 1.0, 0.5]])
    assert accuracy(logits, np.array([0, 1, 1, 2])) == 0.5


# ------------------------------------------------------------------ composed networks

def ode_function(channels, groups):
    """The ODE-Net's f without its ReLUs: GN → ConcatConv → GN → ConcatConv → GN.

    With one channel per group a conv bias followed by GroupNorm has gradient exactly
    zero (the group mean removes it), which no relative comparison can check; the paper's
    GN(min(32, 64)) has two channels per group, and so do the tests.
    """
    return Sequential(GroupNorm(groups, channels), ConcatConv2d(channels, channels),
                      GroupNorm(groups, channels), ConcatConv2d(channels, channels),
                      GroupNorm(groups, channels))


def test_ode_function_dynamics_vjp_matches_autograd():
    rng = np.random.default_rng(7)
    f = NetworkDynamics(ode_function(4, groups=2))
    theta = [random_theta(layer, rng) for layer in f.net.layers]
    t, z = 0.4, rng.standard_normal((2, 4, 5, 5))
    a = rng.standard_normal(z.shape)
    a_z, a_theta, a_t = f.vjp(t, z, theta, a)
    ref = autograd.grad(lambda args: anp.sum(f(args[0], args[1], args[2]) * a))((t, z, theta))
    compare_gradients({"autograd": {"t": np.asarray(ref[0]), "z": ref[1], "theta": ref[2]},
                       "hand": {"t": a_t, "z": a_z, "theta": a_theta}},
                      rtol=AUTOGRAD_RTOL, atol=0.0, raise_on_failure=True)


def test_float32_smoke():
    """A small downsampling stack in float32: dtypes kept, values close to float64."""
    net = Sequential(Conv2d(1, 4, 3), GroupNorm(2, 4), Conv2d(4, 4, 4, stride=2, padding=1),
                     ConcatConv2d(4, 4), GroupNorm(2, 4), GlobalAvgPool2d())
    rng = np.random.default_rng(8)
    theta64 = [random_theta(layer, rng) for layer in net.layers]
    theta32 = [{k: v.astype(np.float32) for k, v in th.items()} for th in theta64]
    x64 = rng.standard_normal((3, 1, 8, 8))
    g = rng.standard_normal((3, 4))
    results = {}
    for name, theta, x in (("64", theta64, x64), ("32", theta32, x64.astype(np.float32))):
        y, cache = net.forward(theta, 0.5, x)
        results[name] = (y,) + net.vjp(theta, cache, g.astype(y.dtype))
    y32, g_x32, g_theta32, g_t32 = results["32"]
    assert y32.dtype == g_x32.dtype == np.float32
    assert all(v.dtype == np.float32 for th in g_theta32 for v in th.values())
    assert np.asarray(g_t32).dtype == np.float32
    float32_tol = 1e-4     # a few hundred roundings of u = 6e-8 through GN's 1/σ
    compare_gradients({"float64": results["64"][:3], "float32": results["32"][:3]},
                      rtol=float32_tol, atol=0.0, raise_on_failure=True)
