"""One solver core: both batch modes on one step arithmetic, options as objects.

Claims checked here:

* per-sample data in theta (a rate per row) works in ``batch="independent"``: each row
  equals its own single solve to 1e-12 with the same NFE, also after the running batch
  would have shrunk, for states, discrete and adjoint gradients;
* a closure of fixed batch size that cannot follow the rows gets an InputError saying
  what to do;
* a user error norm has one signature for every method, dop853 included;
* ``Adjoint(max_steps=...)`` reaches the reverse solve; flat option keywords are unknown
  keywords; ``solve`` and ``odeint_vjp`` take at most 12 parameters;
* the package has no import cycles, and the drivers no per-method branches.
"""

import ast
import inspect
import pathlib

import numpy as np
import pytest

import refnode as rn
from refnode.errors import InputError, MaxStepsExceededError

pytestmark = pytest.mark.batch

#: Agreement of a batched sample with its single solve: rounding of batched reductions.
SAME_SOLVE = 1e-12
PACKAGE = pathlib.Path(rn.__file__).parent


def decay(t, z, theta):
    """dz/dt = -k_b (1 + 0.1 sin t) z with a per-row rate k = theta[0], shape (B,).

    Per sample, t has shape (B, 1): one time per row, broadcast along z's other axes."""
    k, = theta
    return -(k[:, None] * (1.0 + 0.1 * np.sin(t))) * z


def decay_single(t, z, theta):
    k, = theta
    return -(k * (1.0 + 0.1 * np.sin(t))) * z


RATES = np.array([1.0, 1.3, 0.7, 60.0])      # one stiff row: the others finish first


@pytest.mark.parametrize("method", ["dopri5", "dop853", "bosh3"])
def test_per_sample_theta_matches_single_solves(method):
    """The issue's example: rows with their own rate, one much faster; the batch shrinks."""
    z0, t = np.ones((4, 2)), np.array([0.0, 0.5, 2.0])
    sol = rn.solve(decay, z0, t, (RATES,), method=method, rtol=1e-8, atol=1e-10,
                   batch="independent")
    for b in range(4):
        single = rn.solve(decay_single, z0[b], t, (RATES[b],), method=method, rtol=1e-8,
                          atol=1e-10)
        np.testing.assert_allclose(sol.z[:, b], single.z, rtol=0, atol=SAME_SOLVE)
        assert sol.stats["nfe"][b] == single.stats["nfe"]
        assert sol.stats["n_accepted"][b] == single.stats["n_accepted"]


@pytest.mark.parametrize("gradient", ["discrete", rn.Adjoint(seminorm=True)])
def test_per_sample_theta_gradients_match_single_solves(gradient):
    """dθ of a per-row rate is per row: each entry is that row's own single gradient.

    The adjoint runs with the seminorm: per sample, θ̄ is a quadrature outside the state
    (refnode.independent.adjoint), so only with z and a controlling the step do the
    reverse steps, and hence the numbers, equal the single solves'.
    """
    z0, t = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.3]]), np.array([0.0, 0.7, 1.5])
    rates = np.array([0.8, 1.5, 25.0])
    g = np.random.default_rng(0).normal(size=(3, 3, 2))
    z, vjp = rn.odeint_vjp(decay, z0, t, (rates,), rtol=1e-9, atol=1e-11, gradient=gradient,
                           batch="independent")
    dz0, (dk,), dt = vjp(g)
    dt_total = np.zeros(3)
    for b in range(3):
        zb, vjp_b = rn.odeint_vjp(decay_single, z0[b], t, (rates[b],), rtol=1e-9, atol=1e-11,
                                  gradient=gradient)
        dz0_b, (dk_b,), dt_b = vjp_b(g[:, b])
        np.testing.assert_allclose(dz0[b], dz0_b, rtol=0, atol=SAME_SOLVE)
        np.testing.assert_allclose(dk[b], dk_b, rtol=0, atol=SAME_SOLVE)
        dt_total += dt_b
    np.testing.assert_allclose(dt, dt_total, rtol=0, atol=SAME_SOLVE)


def test_closure_of_fixed_batch_size_is_explained():
    """Per-row data captured in a closure cannot follow the rows: a clear InputError."""
    k = RATES
    f = lambda t, z, theta: -k[:, None] * z        # noqa: E731 (k is not in theta)
    with pytest.raises(InputError, match="per-sample constants in theta"):
        rn.solve(f, np.ones((4, 1)), np.array([0.0, 0.5, 2.0]), batch="independent")


def test_user_norm_has_one_signature_for_every_method():
    """norm(error, y0, y1), as documented, with dop853's two estimates too."""
    calls = []

    def max_norm(error, y0, y1):
        calls.append(error.shape)
        return float(np.max(np.abs(error) / (1e-9 + 1e-7 * np.maximum(np.abs(y0), np.abs(y1)))))

    f = lambda t, z, theta: -z                      # noqa: E731
    for method in rn.methods.ADAPTIVE_METHODS:
        sol = rn.solve(f, np.ones(3), [0.0, 1.0], method=method,
                       control=rn.StepControl(norm=max_norm))
        np.testing.assert_allclose(sol.z[-1], np.exp(-1.0), rtol=1e-5)
    assert calls and all(shape == (3,) for shape in calls)


def test_adjoint_max_steps_reaches_the_reverse_solve():
    f = lambda t, z, theta: -theta * z              # noqa: E731
    z, vjp = rn.odeint_vjp(f, np.ones(2), [0.0, 5.0], 1.0, gradient=rn.Adjoint(max_steps=3))
    with pytest.raises(MaxStepsExceededError, match="max_steps = 3"):
        vjp(np.ones_like(z))


def test_adjoint_object_is_validated_when_built():
    with pytest.raises(InputError, match="rtol"):
        rn.Adjoint(rtol=-1.0)
    with pytest.raises(InputError, match="method"):
        rn.Adjoint(method="no-such-method")
    with pytest.raises(InputError, match="seminorm"):
        rn.Adjoint(seminorm="yes")


def test_fixed_step_adjoint_without_a_grid_is_refused_before_the_forward_solve():
    calls = []

    def f(t, z, theta):
        calls.append(t)
        return -z

    with pytest.raises(InputError, match="no error estimate"):
        rn.odeint_vjp(f, np.ones(2), [0.0, 1.0], gradient=rn.Adjoint(method="euler"))
    assert not calls


@pytest.mark.parametrize("entry", ["solve", "odeint", "odeint_vjp"])
@pytest.mark.parametrize("keyword", ["first_step", "max_steps", "min_step", "trace",
                                     "adjoint_method", "adjoint_rtol", "adjoint_atol",
                                     "seminorm", "reset", "max_step"])
def test_flat_option_keywords_are_unknown(entry, keyword):
    """The options live in StepControl and Adjoint only: a flat spelling is an unknown
    keyword, refused by Python before any work."""
    calls = []
    f = lambda t, z, theta: calls.append(t) or -z          # noqa: E731
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{keyword}'"):
        getattr(rn, entry)(f, np.ones(2), [0.0, 1.0], **{keyword: 1})
    assert not calls


def test_entry_points_take_at_most_twelve_named_parameters():
    for fn in (rn.solve, rn.odeint_vjp):
        named = [p for p in inspect.signature(fn).parameters.values()
                 if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        assert len(named) <= 12, fn.__name__


def import_graph():
    """{module: set of refnode modules it imports at module level}."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if parts[-1] == "__init__" else name.rpartition(".")[0]
        deps = set()
        for node in ast.parse(path.read_text()).body:            # module level only
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                deps |= {f"{target}.{a.name}" for a in node.names} | {target}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d.startswith("refnode")}
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def test_the_package_has_no_import_cycles():
    graph, state, cycles = import_graph(), {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in graph[m]:
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])
    # A package importing its own submodules is not a cycle (refnode -> refnode.x -> ...).
    real = [c for c in cycles if not all(c[0].startswith(x) or x.startswith(c[0]) for x in c)]
    assert not real, real


@pytest.mark.parametrize("module", ["drivers.py", "independent/loop.py", "adjoint.py",
                                    "discrete_adjoint.py", "odeint.py", "gradients.py"])
def test_drivers_have_no_per_method_branches(module):
    source = (PACKAGE / module).read_text()
    for marker in ("dop853", "e3_float", "error3", "q == 8"):
        assert marker not in source, f"{module} mentions {marker}"


@pytest.mark.parametrize("layer", ["ConcatLinear", "ConcatConv2d"])
def test_time_dependent_layers_take_one_time_per_row(layer):
    """The layer contract's time rule: t of shape (B,), or (B, 1, ..., 1) as the per-sample
    solver passes it, gives a_t of shape (B,), row by row."""
    rng = np.random.default_rng(3)
    if layer == "ConcatLinear":
        net, x = rn.nn.ConcatLinear(3, 2), rng.normal(size=(4, 3))
    else:
        net, x = rn.nn.ConcatConv2d(2, 3), rng.normal(size=(4, 2, 5, 5))
    theta, t = net.init(rng), np.array([0.1, 0.2, 0.3, 0.4])
    y, cache = net.forward(theta, t, x)
    g = rng.normal(size=y.shape)
    g_t = net.vjp(theta, cache, g)[2]
    assert np.shape(g_t) == (4,)
    column = t.reshape((4,) + (1,) * (x.ndim - 1))
    y_column, cache_column = net.forward(theta, column, x)
    np.testing.assert_array_equal(y_column, y)
    np.testing.assert_array_equal(net.vjp(theta, cache_column, g)[2], g_t)
    for b in range(4):                    # row b alone, at its own scalar time
        y_b, cache_b = net.forward(theta, float(t[b]), x[b:b + 1])
        np.testing.assert_allclose(y[b:b + 1], y_b, rtol=0, atol=1e-13)
        np.testing.assert_allclose(g_t[b], net.vjp(theta, cache_b, g[b:b + 1])[2], rtol=1e-12)


def test_one_interpolant_per_kind():
    """Hermite and the methods' own extensions are each written once (dense_output); the
    discrete gradient's replay and the per-sample loop call the same functions, the block
    form for many θ is the same polynomials, and the dense solutions live in solution.py."""
    import refnode.dense_output as dense_output
    import refnode.discrete_adjoint as discrete_adjoint
    assert not hasattr(discrete_adjoint, "dense_value")
    assert not hasattr(dense_output, "float_P") and not hasattr(dense_output, "_FLOAT_P")
    assert rn.solution.DenseSolution and not hasattr(dense_output, "DenseSolution")
    rng = np.random.default_rng(8)
    y0, y1 = rng.normal(size=3), rng.normal(size=3)
    for name, tableau in rn.methods.METHODS.items():
        if not tableau.adaptive:
            continue
        n_stages = len(tableau.dense.P) if tableau.dense is not None else tableau.stages
        k = [rng.normal(size=3) for _ in range(n_stages)]
        f1, h, thetas = rng.normal(size=3), 0.3, [0.1, 0.5, 0.9]
        block = dense_output.interpolate(tableau, thetas, h, y0, y1, k, f1)
        for th, row in zip(thetas, block):
            one = dense_output.interpolate_one(tableau, th, h, y0, y1, k, f1)
            np.testing.assert_allclose(row, one, rtol=1e-14, atol=1e-14, err_msg=name)
