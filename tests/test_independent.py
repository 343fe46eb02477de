"""batch="independent": every sample its own steps, equal to solving it alone.

The batch has one hard sample (its dynamics 10x faster) among easy ones. Each sample's
states, step points and statistics must equal its own single solve (the per-sample
arithmetic is the single solve's; only batched reductions round differently), shared
mode must agree within the tolerance, and the gradients must equal the sum of the
single-sample gradients.
"""

import numpy as np
import pytest

import refnode as rn
from refnode.errors import InputError, MaxStepsExceededError
from refnode.methods import ADAPTIVE_METHODS

pytestmark = pytest.mark.batch

#: Agreement of a batched sample with its single solve: rounding of batched reductions
#: (dense output as a matmul, RMS over a row) amplified over ~100 steps.
SAME_SOLVE = 1e-12


class SpeedScaledMLP:
    """dx/dt = ω · MLP_θ(t, x), dω/dt = 0: the last state component ω sets the speed.

    Putting the speed into the state makes each sample's dynamics its own while f stays
    one batched function; a single sample (shape (D+1,)) runs the same code.
    """

    def __init__(self, dim, hidden, time_dependent=False):
        self.net = rn.nn.mlp((dim, hidden, dim), "tanh", time_dependent=time_dependent)

    def init(self, rng):
        return self.net.init(rng)

    def __call__(self, t, z, theta):
        return self.value_and_vjp(t, z, theta, None)[0]

    def vjp(self, t, z, theta, a):
        return self.value_and_vjp(t, z, theta, a)[1:]

    def value_and_vjp(self, t, z, theta, a):
        x, omega = z[..., :-1], z[..., -1:]
        y, cache = self.net.forward(theta, t, x)
        dz = np.concatenate([omega * y, 0.0 * omega], axis=-1)
        if a is None:
            return dz, None, None, None
        a_x, a_theta, a_t = self.net.vjp(theta, cache, omega * a[..., :-1])
        a_omega = np.sum(a[..., :-1] * y, axis=-1, keepdims=True)
        return dz, np.concatenate([a_x, a_omega], axis=-1), a_theta, a_t


def problem(batch=4, dim=2, hidden=16, hard=1, time_dependent=False, seed=0):
    rng = np.random.default_rng(seed)
    f = SpeedScaledMLP(dim, hidden, time_dependent)
    theta = f.init(rng)
    omega = np.ones((batch, 1))
    omega[hard] = 10.0
    z0 = np.concatenate([rng.normal(size=(batch, dim)), omega], axis=1)
    return f, theta, z0


@pytest.mark.parametrize("method", sorted(ADAPTIVE_METHODS))
def test_each_sample_equals_its_own_solve(method):
    f, theta, z0 = problem()
    t = np.array([0.0, 0.37, 1.0, 2.0])
    tol = 1e-4 if method in ("heun_euler", "bosh3") else 1e-7
    sol = rn.solve(f, z0, t, theta, method=method, rtol=tol, atol=tol, batch="independent")
    assert sol.z.shape == (len(t),) + z0.shape
    for b in range(len(z0)):
        single = rn.solve(f, z0[b], t, theta, method=method, rtol=tol, atol=tol)
        np.testing.assert_allclose(sol.z[:, b], single.z, rtol=0, atol=SAME_SOLVE)
        for key in ("nfe", "n_accepted", "n_rejected", "n_steps"):
            assert sol.stats[key][b] == single.stats[key], (b, key)
        # The same steps, up to rounding: f's batched matmul rounds differently from the
        # single one (~1e-16), and the error estimate, a small difference of large stage
        # sums, amplifies that to ~1e-10 (tsit5: ~1e-7) in the error ratio and so in h.
        grid = sol.grid[b, :single.stats["n_accepted"] + 1]
        np.testing.assert_allclose(grid, single.grid, rtol=1e-6, atol=0)
        assert np.all(sol.grid[b, single.stats["n_accepted"]:] == t[-1])  # padding
    assert sol.stats["batch_nfe"] == max(sol.stats["nfe"]) or method == "dop853"


def test_easy_samples_stop_paying_for_the_hard_one():
    f, theta, z0 = problem(batch=6, hard=2)
    t = np.linspace(0.0, 2.0, 5)
    ind = rn.solve(f, z0, t, theta, rtol=1e-7, atol=1e-7, batch="independent")
    shared = rn.solve(f, z0, t, theta, rtol=1e-7, atol=1e-7)
    easy = np.arange(len(z0)) != 2
    assert np.all(ind.stats["nfe"][easy] < 0.5 * shared.stats["nfe"])
    assert ind.stats["nfe"][2] > 3 * np.max(ind.stats["nfe"][easy])
    # shared mode is held to the tolerance on the whole batch: it agrees within it
    scale = 1e-7 * (1 + np.abs(ind.z))
    assert np.all(np.abs(shared.z - ind.z) <= 100 * scale)


def test_decreasing_times_and_outputs_inside_steps():
    f, theta, z0 = problem(batch=3, hard=0)
    t = np.linspace(1.0, -1.0, 23)                  # many outputs per step, backwards
    sol = rn.solve(f, z0, t, theta, method="tsit5", rtol=1e-8, atol=1e-8, batch="independent")
    for b in range(len(z0)):
        single = rn.solve(f, z0[b], t, theta, method="tsit5", rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(sol.z[:, b], single.z, rtol=0, atol=SAME_SOLVE)
        assert sol.stats["nfe"][b] == single.stats["nfe"]


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "dop853"])
@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_many_outputs_per_step_are_made_in_blocks_as_each_alone(method, direction, monkeypatch):
    """Hundreds of outputs inside each step come as blocks of m rows (m times × B samples):
    blocks of one row, of at most 7 rows (ragged) and the default bound give the same
    numbers bit for bit, and each sample its own solve's."""
    from refnode.independent import loop
    from refnode.step_policy import n_extra_stages
    f, theta, z0 = problem(batch=3, time_dependent=True)
    t = direction * np.linspace(0.0, 1.0, 601)
    tableau = rn.methods.get_method(method)
    per_entry = 8 * (tableau.stages + n_extra_stages(tableau) + 3)     # states and stages
    unstack, blocks, results = loop.unstack, {}, {}
    for bound in (0, 7 * per_entry * z0.size, loop.PENDING_BYTES):
        shapes = blocks.setdefault(bound, [])
        monkeypatch.setattr(loop, "PENDING_BYTES", bound)
        monkeypatch.setattr(loop, "unstack",
                            lambda block, m: shapes.append(block.shape) or unstack(block, m))
        results[bound] = rn.solve(f, z0, t, theta, method=method, rtol=1e-6, atol=1e-8,
                                  batch="independent")
        # a block (m, B, ...) of the working batch B holds at most the bound, or one row
        assert all(m == 1 or m * per_entry * np.prod(rest) <= bound for m, *rest in shapes)
    assert {m for m, *_ in blocks[0]} == {1}
    assert (7,) + z0.shape in blocks[7 * per_entry * z0.size]        # 7 rows of all 3 samples
    sol = results[loop.PENDING_BYTES]
    assert max(m for m, *_ in blocks[loop.PENDING_BYTES]) > 40   # many outputs a step
    for other in results.values():
        np.testing.assert_array_equal(other.z, sol.z)
    for b in range(len(z0)):
        single = rn.solve(f, z0[b], t, theta, method=method, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(sol.z[:, b], single.z, rtol=0, atol=SAME_SOLVE)
        assert sol.stats["nfe"][b] == single.stats["nfe"]


def test_per_sample_times_reach_time_dependent_layers():
    f, theta, z0 = problem(batch=3, time_dependent=True)
    t = np.array([0.0, 0.5, 1.5])
    sol = rn.solve(f, z0, t, theta, rtol=1e-8, atol=1e-8, batch="independent")
    for b in range(len(z0)):
        single = rn.solve(f, z0[b], t, theta, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(sol.z[:, b], single.z, rtol=0, atol=SAME_SOLVE)


def test_float32_state_stays_float32():
    f, theta, z0 = problem(batch=3)
    theta32 = [{k: v.astype(np.float32) for k, v in layer.items()} for layer in theta]
    sol = rn.solve(f, z0.astype(np.float32), [0.0, 1.0], theta32, rtol=1e-4, atol=1e-4,
                   batch="independent")
    assert sol.z.dtype == np.float32
    reference = rn.odeint(f, z0, [0.0, 1.0], theta, rtol=1e-8, atol=1e-8)
    assert np.max(np.abs(sol.z - reference)) < 1e-3


def test_f_sees_the_loops_float64_times_rounded_to_the_states_dtype():
    """The loop keeps times in float64; f's copy is cast to the state's dtype, so a
    float32 state sees each time rounded by at most half its float32 spacing, and a
    float64 state the times exactly (the output times themselves among them)."""
    for dtype in (np.float64, np.float32):
        seen = []

        def f(t, z, theta):
            seen.append(t)
            return -z

        t = np.array([1e5, 1e5 + 1.0])
        rn.solve(f, np.ones((2, 1), dtype=dtype), t, rtol=1e-4, atol=1e-4, batch="independent")
        assert all(s.dtype == dtype and s.shape == (2, 1) for s in seen)
        times = np.concatenate([s.ravel() for s in seen]).astype(np.float64)
        assert times.min() == t[0]
        if dtype == np.float64:
            assert times.max() == t[-1]
            assert len(np.unique(times)) > 3              # stage times between the outputs
        else:
            half_spacing = np.spacing(np.float32(1e5)) / 2
            assert half_spacing == 2.0 ** -8              # 0.004 at t = 1e5 (docs/design.md)
            assert np.all(np.abs(times - t[0]) <= 1.0 + half_spacing)
            assert np.all(times == times.astype(np.float32))


def single_gradients(f, theta, z0, t, g, **options):
    """Per-sample gradients from single solves, summed as a batch would sum them."""
    dz0, dtheta, dt = [], None, 0.0
    for b in range(len(z0)):
        _, vjp = rn.odeint_vjp(f, z0[b], t, theta, **options)
        a, th, tt = vjp(g[:, b])
        dz0.append(a)
        dt = dt + tt
        dtheta = th if dtheta is None else rn.params.tree_add(dtheta, th)
    return np.stack(dz0), dtheta, dt


def assert_gradients_close(got, expected, rtol, atol):
    for x, y in zip(rn.params.tree_leaves(got), rn.params.tree_leaves(expected)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "dop853"])
def test_discrete_gradient_equals_per_sample_gradients(method):
    f, theta, z0 = problem(batch=3, time_dependent=True)
    t = np.array([0.0, 0.3, 1.0])
    g = np.random.default_rng(5).normal(size=(len(t),) + z0.shape)
    options = dict(method=method, rtol=1e-6, atol=1e-6, gradient="discrete")
    _, vjp = rn.odeint_vjp(f, z0, t, theta, batch="independent", **options)
    got = vjp(g)
    assert_gradients_close(got, single_gradients(f, theta, z0, t, g, **options), 1e-10, 1e-10)


def test_adjoint_gradient_equals_per_sample_adjoints():
    """With the seminorm both take the same per-sample reverse steps: agreement to rounding."""
    f, theta, z0 = problem(batch=3, time_dependent=True)
    t = np.array([0.0, 0.6, 1.0])
    g = np.random.default_rng(6).normal(size=(len(t),) + z0.shape)
    options = dict(rtol=1e-7, atol=1e-7, gradient=rn.Adjoint(seminorm=True))
    _, vjp = rn.odeint_vjp(f, z0, t, theta, batch="independent", **options)
    got = vjp(g)
    assert_gradients_close(got, single_gradients(f, theta, z0, t, g, **options), 1e-9, 1e-9)
    assert vjp.backward_stats["nfe"].shape == (len(z0),)


def test_adjoint_gradient_within_tolerance_of_discrete():
    f, theta, z0 = problem(batch=3)
    t = np.array([0.0, 1.0])
    g = np.random.default_rng(7).normal(size=(len(t),) + z0.shape)
    results = {}
    for gradient in ("adjoint", "discrete"):
        _, vjp = rn.odeint_vjp(f, z0, t, theta, rtol=1e-9, atol=1e-9, gradient=gradient,
                               batch="independent")
        results[gradient] = vjp(g)
    assert_gradients_close(results["adjoint"], results["discrete"], 1e-6, 1e-6)


def test_invalid_uses_are_refused_before_work():
    f, theta, z0 = problem(batch=2)
    for options in (dict(method="rk4", n_steps=4), dict(control=rn.StepControl(trace=True)),
                    dict(dense=True),
                    dict(batch="per-sample")):
        options.setdefault("batch", "independent")
        with pytest.raises(InputError):
            rn.solve(f, z0, [0.0, 1.0], theta, **options)
    with pytest.raises(InputError):
        rn.solve(f, z0[0, 0], [0.0, 1.0], theta, batch="independent")
    with pytest.raises(InputError):
        rn.odeint_vjp(f, z0, [0.0, 1.0], theta, gradient="autograd", batch="independent")


def test_max_steps_names_the_sample():
    f, theta, z0 = problem(batch=3, hard=1)
    with pytest.raises(MaxStepsExceededError, match="sample 1"):
        rn.solve(f, z0, [0.0, 5.0], theta, rtol=1e-10, atol=1e-10, control=rn.StepControl(max_steps=60),
                 batch="independent")


@pytest.mark.parametrize("name", ["rtol", "atol"])
def test_a_tolerance_per_row_is_refused_and_one_per_component_is_kept(name):
    """The samples that finish leave the batch, so a tolerance array with the batch axis
    would no longer line up with the rows (it raised a raw IndexError mid-solve)."""
    f = lambda t, z, theta: -theta * z                                      # noqa: E731
    z0 = np.array([[1.0, 2.0], [3.0, 4.0]])
    per_row = {name: np.array([[1e-6], [1e-3]])}
    with pytest.raises(InputError, match=f"{name} has shape \\(2, 1\\), one tolerance per sample"):
        rn.solve(f, z0, [0.0, 1.0], 0.7, batch="independent", **per_row)
    with pytest.raises(InputError, match="one tolerance per sample"):
        rn.solve(f, z0[:, 0], [0.0, 0.5, 1.0], 0.7, batch="independent", **{name: z0[:, 0] * 1e-6})
    per_component = {name: np.array([1e-8, 1e-6])}
    together = rn.solve(f, z0, [0.0, 1.0], 0.7, batch="independent", **per_component).z
    alone = [rn.solve(f, z, [0.0, 1.0], 0.7, **per_component).z for z in z0]
    np.testing.assert_allclose(together, np.stack(alone, axis=1), rtol=1e-12)
