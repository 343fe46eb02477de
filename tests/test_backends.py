"""The array swap: the same solver, adjoints and layers on other array types.

Backends: ``numpy`` (always); ``strict`` (always): :mod:`refnode.strict`, NumPy data
behind CuPy's rules — no ``np.asarray`` of device data, no host arrays mixed in, no
implicit ``float()``/``bool()`` syncs — so these CPU runs catch the GPU's failure modes;
``cupy`` (marker ``gpu``) where CuPy imports and a GPU exists.

Agreement with NumPy: ``strict`` runs NumPy's own arithmetic, so it must agree exactly
(we allow 1e-13 for reductions). CuPy runs other kernels (cuBLAS, its own reductions),
which round differently; over a solve of ~100 steps that stays below PARITY_RTOL.
"""

import numpy as np
import pytest

import refnode as rn
from refnode import strict
from refnode.backend import array_module, to_numpy
from refnode.params import tree_leaves, tree_map

from problems import GPU


BACKENDS = ["numpy", "strict",
            pytest.param("cupy", marks=[pytest.mark.gpu,
                                        pytest.mark.skipif(not GPU, reason="needs CuPy and a GPU")])]
#: NumPy vs CuPy, float64 and float32: rounding of different kernels after a whole solve.
PARITY_RTOL = {np.float64: 1e-9, np.float32: 1e-3}
#: NumPy vs refnode.strict: the same arithmetic; reductions may be grouped differently.
SAME_RTOL = 1e-13

pytestmark = pytest.mark.batch


def to_backend(tree, backend):
    """Copy a tree of host arrays to ``backend``."""
    if backend == "numpy":
        return tree
    if backend == "strict":
        return strict.to_device(tree)
    import cupy
    return tree_map(cupy.asarray, tree)


def assert_agree(got, expected, rtol, atol=1e-13):
    for x, y in zip(tree_leaves(got), tree_leaves(expected)):
        np.testing.assert_allclose(to_numpy(x), to_numpy(y), rtol=rtol, atol=atol)


def rtol_for(backend, dtype=np.float64):
    return PARITY_RTOL[dtype] if backend == "cupy" else SAME_RTOL


def mlp_problem(dtype=np.float64, time_dependent=False, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    f = rn.nn.mlp_dynamics((3, 16, 3), "tanh", time_dependent=time_dependent)
    theta = tree_map(lambda p: p.astype(dtype), f.init(rng))
    z0 = rng.normal(size=(batch, 3)).astype(dtype)
    return f, theta, z0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method, options", [
    ("dopri5", {}), ("tsit5", {}), ("dop853", {}), ("bosh3", {}),
    ("rk4", dict(n_steps=5)), ("euler", dict(step_size=0.05)),
    ("dopri5", dict(batch="independent")), ("dop853", dict(batch="independent"))])
def test_solve_runs_on_the_backend(backend, method, options):
    f, theta, z0 = mlp_problem(time_dependent=True)
    t = np.array([0.0, 0.3, 0.7, 1.0])
    expected = rn.odeint(f, z0, t, theta, method=method, **options)
    got = rn.odeint(f, to_backend(z0, backend), t, to_backend(theta, backend), method=method,
                    **options)
    assert array_module(got) is array_module(to_backend(z0, backend))
    assert_agree(got, expected, rtol_for(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_output_on_the_backend(backend):
    f, theta, z0 = mlp_problem()
    expected = rn.solve(f, z0, [0.0, 1.0], theta, dense=True).dense([0.25, 0.5])
    got = rn.solve(f, to_backend(z0, backend), [0.0, 1.0], to_backend(theta, backend),
                   dense=True).dense([0.25, 0.5])
    assert_agree(got, expected, rtol_for(backend))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("gradient", ["adjoint", "discrete"])
@pytest.mark.parametrize("batch", ["shared", "independent"])
def test_gradients_run_on_the_backend(backend, gradient, batch):
    f, theta, z0 = mlp_problem(time_dependent=True)
    t = np.array([0.0, 0.5, 1.0])
    g = np.random.default_rng(1).normal(size=(len(t),) + z0.shape)
    options = dict(gradient=gradient, batch=batch, rtol=1e-7, atol=1e-9)
    _, vjp = rn.odeint_vjp(f, z0, t, theta, **options)
    expected = vjp(g)
    _, vjp = rn.odeint_vjp(f, to_backend(z0, backend), t, to_backend(theta, backend), **options)
    got = vjp(to_backend(g, backend))
    assert_agree(got, expected, rtol_for(backend), atol=1e-12)


LAYERS = [
    ((5, 4), rn.nn.Linear(4, 3)), ((5, 4), rn.nn.ConcatLinear(4, 3)),
    ((5, 4), rn.nn.ConcatSquashLinear(4, 3)), ((5, 4), rn.nn.Tanh()), ((5, 4), rn.nn.Softplus()),
    ((5, 4), rn.nn.Sigmoid()), ((5, 4), rn.nn.ReLU()), ((5, 4), rn.nn.ELU()), ((5, 4), rn.nn.Cube()),
    ((2, 4, 6, 6), rn.nn.Conv2d(4, 4, 3, padding=1)),
    ((2, 4, 6, 6), rn.nn.Conv2d(4, 4, 4, stride=2, padding=1)),
    ((2, 4, 6, 6), rn.nn.ConcatConv2d(4, 4, 3, padding=1)), ((2, 4, 6, 6), rn.nn.GroupNorm(2, 4)),
    ((2, 4, 6, 6), rn.nn.GlobalAvgPool2d()), ((2, 4, 6, 6), rn.nn.Flatten()),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, layer", LAYERS, ids=[repr(layer) for _, layer in LAYERS])
def test_layers_run_on_the_backend(backend, shape, layer):
    rng = np.random.default_rng(2)
    theta, x = layer.init(rng), rng.normal(size=shape)
    y, cache = layer.forward(theta, 0.3, x)
    g = rng.normal(size=y.shape)
    expected = (y,) + tuple(layer.vjp(theta, cache, g))
    theta_d = to_backend(theta, backend)
    y_d, cache_d = layer.forward(theta_d, 0.3, to_backend(x, backend))
    got = (y_d,) + tuple(layer.vjp(theta_d, cache_d, to_backend(g, backend)))
    assert_agree([v for v in got if not isinstance(v, float)],
                 [v for v in expected if not isinstance(v, float)], rtol_for(backend), 1e-12)


def test_strict_arrays_refuse_the_gpu_hazards():
    x = strict.to_device(np.arange(3.0))
    xp = array_module(x)
    hazards = [lambda: np.asarray(x), lambda: x + np.ones(3), lambda: np.ones(3) * x,
               lambda: np.exp(x), lambda: xp.stack([x, np.ones(3)]), lambda: float(x[0]),
               lambda: bool(x[0] > 0), lambda: x.item(), lambda: x[np.array([0, 1])],
               # a scalar where CuPy's reductions and where() need an array
               lambda: xp.any(False), lambda: xp.sum(np.float64(1.0)),
               lambda: xp.where(True, x, 0.0), lambda: xp.max(1)]
    for hazard in hazards:
        with pytest.raises(TypeError):
            hazard()
    with pytest.raises(TypeError):                        # a host value written in
        x[0:1] = np.ones(1)
    window = x[1:3]                                       # += on a view writes through
    window += xp.asarray(np.array([10.0, 20.0]))
    assert np.array_equal(x.get(), [0.0, 11.0, 22.0])
    with pytest.raises(TypeError):
        window += np.ones(2)
    x[1:3] = xp.asarray(np.array([1.0, 2.0]))
    assert rn.backend.to_float(xp.sum(x)) == 3.0          # the explicit sync is fine
    assert rn.backend.to_float(xp.where(x > 0, 1.0, 0.0).sum()) == 2.0    # scalars after it
    assert np.shape(x) == (3,) and float(2.0 * np.float64(1.5)) == 3.0


@pytest.mark.parametrize("batch", ["shared", "independent"])
def test_one_host_sync_per_step(batch):
    """The loop waits for the device once per step (the accept/reject decision) and no more."""
    f, theta, z0 = mlp_problem()
    z0_d, theta_d = strict.to_device(z0), strict.to_device(theta)
    before = strict.TRANSFERS[0]
    sol = rn.solve(f, z0_d, np.linspace(0.0, 1.0, 5), theta_d, batch=batch)
    syncs = strict.TRANSFERS[0] - before
    loop_turns = sol.stats["iterations"] if batch == "independent" else sol.stats["n_steps"]
    setup = 12        # input checks, the starting step's norms, stats and grid at the end
    assert syncs <= loop_turns + setup, (syncs, loop_turns)


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="needs CuPy and a GPU")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_cupy_parity(dtype):
    """Same seed, same problem: CuPy's forward and adjoint agree with NumPy's."""
    f, theta, z0 = mlp_problem(dtype=dtype, batch=64, seed=3)
    t = np.array([0.0, 1.0])
    g = np.random.default_rng(4).normal(size=(2,) + z0.shape).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-8
    results = {}
    for backend in ("numpy", "cupy"):
        z, vjp = rn.odeint_vjp(f, to_backend(z0, backend), t, to_backend(theta, backend),
                               rtol=tol, atol=tol)
        results[backend] = (z,) + tuple(vjp(to_backend(g, backend))[:2])
    assert_agree(results["cupy"], results["numpy"], PARITY_RTOL[dtype], atol=10 * tol)


def test_adjoint_one_host_sync_per_reverse_step():
    f, theta, z0 = mlp_problem(time_dependent=True)
    _, vjp = rn.odeint_vjp(f, strict.to_device(z0), np.array([0.0, 1.0]), strict.to_device(theta))
    before = strict.TRANSFERS[0]
    vjp(strict.to_device(np.ones((2,) + z0.shape)))
    setup = 8         # the cotangent check, the VJP probe, ∂L/∂t_i, the starting step's norms,
                      # dt[0], the final finiteness check
    assert strict.TRANSFERS[0] - before <= vjp.backward_stats["n_steps"] + setup


def test_strict_arrays_accept_in_place_writes_of_device_values():
    """CuPy allows ``x[i:j] += y`` (col2im accumulates so); the strict array does too."""
    x = strict.to_device(np.zeros(4))
    x[1:3] += strict.to_device(np.ones(2))
    x[3] = 2.0
    assert rn.backend.to_numpy(x).tolist() == [0.0, 1.0, 1.0, 2.0]
