"""Grading: the augmented dynamics and the reverse sweep of Algorithm 2 (Chen et al. 2018),
checked against refnode's own gradients: ``odeint_vjp(gradient="adjoint")`` and the
discrete adjoint (the exact gradient of a tightly solved forward pass)."""

import numpy as np

import refnode as rn
from refnode.adjoint import AugmentedState
from refnode.adjoint import augmented_dynamics as refnodes_augmented_dynamics

#: The solves of the grader: Dormand–Prince at tight tolerances, so that every answer is
#: the ODE's gradient to ~1e-9 and a wrong one is off by far more than TOL.
SOLVER = dict(method="dopri5", rtol=1e-10, atol=1e-12)
#: The same settings for the reverse solves of adjoint_sweep.
SETTINGS = rn.Adjoint(method="dopri5", rtol=1e-10, atol=1e-12, max_steps=100_000)
TOL = 1e-6


class Field:
    """f(t, z, θ) = tanh(W z + b t), θ = [W (D×D, row by row), b (D)]: nonlinear, time
    dependent, and with a non-symmetric Jacobian ∂f/∂z = diag(1 − f²) W."""

    def __init__(self, D=3):
        self.D = D

    def split(self, theta):
        return theta[:self.D ** 2].reshape(self.D, self.D), theta[self.D ** 2:]

    def __call__(self, t, z, theta):
        W, b = self.split(theta)
        return np.tanh(W @ z + b * t)

    def jacobian(self, t, z, theta):
        W, _ = self.split(theta)
        return (1.0 - self(t, z, theta) ** 2)[:, None] * W

    def vjp(self, t, z, theta, a):
        W, b = self.split(theta)
        u = (1.0 - self(t, z, theta) ** 2) * a
        return W.T @ u, np.concatenate([np.outer(u, z).ravel(), u * t]), float(u @ b)


def problem(seed=0, D=3):
    rng = np.random.default_rng(seed)
    f = Field(D)
    theta = np.concatenate([rng.standard_normal(D * D) / np.sqrt(D), rng.standard_normal(D)])
    return f, theta, rng


def rel_err(x, ref):
    x, ref = np.asarray(x, dtype=float), np.asarray(ref, dtype=float)
    if x.shape != ref.shape:
        return np.inf
    return float(np.max(np.abs(x - ref)) / max(np.max(np.abs(ref)), 1e-300))


def augmented_state(seed=0):
    f, theta, rng = problem(seed)
    z, a = rng.standard_normal(3), rng.standard_normal(3)
    s = AugmentedState(z, a, rng.standard_normal(len(theta)), np.array(0.3))
    return f, theta, 0.7, s, z, a


def channels(submission, seed=0):
    """The student's ds/dt split into (z, a, θ̄, t̄), and the expected ones."""
    f, theta, t, s, z, a = augmented_state(seed)
    ds = submission.augmented_dynamics(f)(t, s, theta)
    assert isinstance(ds, tuple) and len(ds) == 4, (
        f"aug_dynamics returned {type(ds).__name__}; ds/dt is an AugmentedState(dz, da, dθ̄, dt̄) "
        "like the state s")
    a_z, a_theta, a_t = f.vjp(t, z, theta, a)
    got = tuple(np.asarray(channel, dtype=float) for channel in ds)
    expected = (f(t, z, theta), -a_z, -a_theta, -a_t)
    return got, expected, f.jacobian(t, z, theta) @ a


def test_the_state_channel_is_f(submission):
    (dz, *_), (f_value, *_), _ = channels(submission)
    assert rel_err(dz, f_value) < 1e-12, (
        f"dz/dt = {dz}, expected f(t, z, θ) = {f_value}: the first D entries of ds/dt are f "
        "(the state is solved backwards alongside the adjoint)")


def test_the_adjoint_channel_is_minus_a_transposed_jacobian(submission):
    for seed in range(3):
        (_, da, *_), (_, expected, *_), J_a = channels(submission, seed)
        if rel_err(da, -expected) < 1e-10:
            raise AssertionError("da/dt has the wrong sign: da/dt = −aᵀ ∂f/∂z (a sign error)")
        if rel_err(da, -J_a) < 1e-10:
            raise AssertionError("da/dt = −(∂f/∂z) a uses the Jacobian, not its transpose: "
                                 "da/dt = −aᵀ ∂f/∂z (the vector-Jacobian product f.vjp gives)")
        assert rel_err(da, expected) < 1e-12, f"da/dt = {da}, expected −aᵀ ∂f/∂z = {expected}"


def test_the_parameter_and_time_channels(submission):
    (_, _, da_theta, da_t), (_, _, expected_theta, expected_t), _ = channels(submission)
    if rel_err(da_theta, -expected_theta) < 1e-10:
        raise AssertionError("da_θ/dt has the wrong sign: da_θ/dt = −aᵀ ∂f/∂θ (a sign error)")
    assert rel_err(da_theta, expected_theta) < 1e-12, (
        f"da_θ/dt = {da_theta}, expected −aᵀ ∂f/∂θ = {expected_theta}")
    if np.allclose(da_t, -expected_t, rtol=1e-10):
        raise AssertionError("da_t/dt has the wrong sign: da_t/dt = −aᵀ ∂f/∂t (a sign error)")
    assert np.allclose(da_t, expected_t, rtol=1e-12), (
        f"da_t/dt = {da_t}, expected −aᵀ ∂f/∂t = {expected_t}")


def output_time_case(at_output_time, seed, reset):
    """The student's at_output_time at t_i = 0.7 on a state whose z differs from the
    forward z(t_i), and what it should give."""
    f, theta, t_i, s, _, _ = augmented_state(seed)
    rng = np.random.default_rng(seed + 10)
    z_i, g_i = rng.standard_normal(3), rng.standard_normal(3)
    aug = refnodes_augmented_dynamics(f)
    got = at_output_time(aug, s, z_i, g_i, t_i, theta, reset)
    z = z_i if reset else s.z
    return got, (s, z_i, g_i, float(g_i @ f(t_i, z, theta)), float(g_i @ f(t_i, s.z, theta)),
                 aug(t_i, s._replace(z=z), theta))


def check_output_time(submission, seed, reset):
    got, (s, z_i, g_i, dL, dL_unreset, k1_ref) = output_time_case(submission.at_output_time,
                                                                   seed, reset)
    assert len(got) == 3, "at_output_time returns (s, ∂L/∂t_i, k1)"
    s_new, dL_dti, k1 = got
    if reset and np.isclose(dL_dti, dL_unreset, rtol=1e-12) and not np.isclose(dL, dL_unreset):
        raise AssertionError("with reset, ∂L/∂t_i used the backwards-reconstructed z, not the forward "
                             "z(t_i): restart the state channel first, s = s._replace(z=z_i) (the reset)")
    if np.isclose(dL_dti, -dL, rtol=1e-10):
        raise AssertionError("∂L/∂t_i has the wrong sign: ∂L/∂t_i = +g_iᵀ f(t_i, z(t_i)) (a sign error)")
    assert np.isclose(dL_dti, dL, rtol=1e-12), (
        f"∂L/∂t_i = {dL_dti}, expected g_iᵀ f(t_i, z(t_i)) = {dL}")
    t_bar = float(np.asarray(s_new.t_bar))
    if np.isclose(t_bar, float(s.t_bar)):
        raise AssertionError("t̄ did not jump at t_i: t̄ ← t̄ − ∂L/∂t_i (the dL/dt_i jump)")
    if np.isclose(t_bar, float(s.t_bar) + dL, rtol=1e-12):
        raise AssertionError("t̄ ← t̄ + ∂L/∂t_i: a sign error; t̄ ← t̄ − ∂L/∂t_i")
    assert np.isclose(t_bar, float(s.t_bar) - dL, rtol=1e-12), (
        f"t̄ after the jump = {t_bar}, expected t̄ − ∂L/∂t_i = {float(s.t_bar) - dL}")
    expected_z = z_i if reset else s.z
    assert np.array_equal(np.asarray(s_new.z), expected_z), (
        "the returned state's z is not z(t_i) (with reset) or the reconstructed z (without): "
        "with reset, s = s._replace(z=z_i) (the reset); without, z is left alone")
    assert np.array_equal(np.asarray(s_new.a), s.a), "at_output_time leaves a alone (its jump is the sweep's)"
    assert all(np.allclose(np.asarray(x, dtype=float), np.asarray(y, dtype=float), rtol=1e-12)
               for x, y in zip(k1, k1_ref)), "k1 is aug(t_i, s, θ) at the state after the reset"


def test_at_an_output_time(submission):
    """∂L/∂t_i, the jump of t̄, the reset of z, and k1 = aug(t_i, s)."""
    for seed, reset in ((0, True), (1, False)):
        check_output_time(submission, seed, reset)


def spy_on_solve_back(submission, monkeypatch):
    """The (t_i, t_prev) of every solve_back call the student's adjoint_sweep makes."""
    namespace, calls = submission.adjoint_sweep.__globals__, []
    original = namespace.get("solve_back")
    if original is None:
        return calls

    def recording(aug, s, t_i, t_prev, *args, **kwargs):
        calls.append((float(t_i), float(t_prev)))
        return original(aug, s, t_i, t_prev, *args, **kwargs)
    monkeypatch.setitem(namespace, "solve_back", recording)
    return calls


def refnode_gradients(f, z0, t, theta, g, gradient="adjoint"):
    _, vjp = rn.odeint_vjp(f, z0, t, theta, gradient=gradient, **SOLVER)
    return vjp(g)


def sweep(submission, monkeypatch, t, g_at, seed=1):
    """The student's (dz0, dθ, dt) and the expected ones, for loss gradients g at ``g_at``."""
    f, theta, rng = problem(seed)
    z0 = rng.standard_normal(3)
    zs = rn.odeint(f, z0, t, theta, **SOLVER)
    g = np.zeros_like(zs)
    g[g_at] = rng.standard_normal((len(g_at), 3))
    calls = spy_on_solve_back(submission, monkeypatch)
    got = submission.adjoint_sweep(f, t, zs, g, theta, SETTINGS)
    assert len(got) == 4, "adjoint_sweep returns (dz0, dθ, dt, stats)"
    if calls and calls[0][1] > calls[0][0]:
        raise AssertionError(
            f"the first reverse solve ran forwards in time, from t = {calls[0][0]:g} to "
            f"{calls[0][1]:g}: Algorithm 2 solves the augmented state backwards, from t_N "
            "down to t_0 (solve_back(aug, s, t_i, t_(i−1), ...): forgetting to reverse time)")
    return got[:3], (f, z0, t, theta, g)


def explain(got, expected, case):
    """A hint naming the mistake where (dz0, dθ, dt) show one; else the worst quantity."""
    (dz0, dtheta, dt), (dz0_ref, dtheta_ref, dt_ref) = got, expected[0]
    f, z0, t, theta, g = expected[1]
    dt = np.asarray(dt, dtype=float)
    if np.shape(dt) != t.shape:
        return f"dt has shape {np.shape(dt)}: one ∂L/∂t_i per observation time, shape {t.shape}"
    if np.ndim(dt) and len(t) > 2:
        without_jumps = refnode_gradients(f, z0, t, theta, np.where(np.arange(len(t))[:, None] == len(t) - 1, g, 0))
        if rel_err(dz0, without_jumps[0]) < 1e-5:
            return ("dL/dz0 ignores the loss at the earlier observation times: at each t_i "
                    "(i < N) the adjoint jumps, a ← a + ∂L/∂z(t_i)")
        if rel_err(dz0, dz0_ref - g[0]) < 1e-5:
            return "dL/dz0 is missing ∂L/∂z(t_0): at t_0 the adjoint jumps too, a ← a + g_0"
        inner = dt_ref[1:-1]
        if np.max(np.abs(dt[1:-1])) < 1e-12 * max(1.0, np.max(np.abs(inner))):
            return ("dt is 0 at the intermediate observation times: ∂L/∂t_i = g_iᵀ f(t_i, "
                    "z(t_i)) for each 0 < i < N, subtracted from a_t there")
        if abs(dt[0] - (dt_ref[0] + np.sum(inner))) < 1e-5 * np.max(np.abs(dt_ref)):
            return ("dL/dt0 is missing the jumps of the time channel: at each intermediate t_i, "
                    "a_t ← a_t − ∂L/∂t_i (the dL/dt_i jump)")
    if abs(dt[0] - (dt_ref[0] + 2.0 * dt_ref[-1])) < 1e-5 * np.max(np.abs(dt_ref)):
        return ("dL/dt0 is off by 2 ∂L/∂t_N: the time channel starts at a_t(t_N) = −∂L/∂t_N = "
                "−g_Nᵀ f(t_N, z(t_N)) (a sign error)")
    if rel_err(dt, -dt_ref) < 1e-5:
        return "dL/dt has the wrong sign everywhere (a sign error in a_t)"
    if np.isclose(dt[-1], -dt_ref[-1], rtol=1e-5):
        return "dL/dt_N has the wrong sign: ∂L/∂t_N = +g_Nᵀ f(t_N, z(t_N))"
    worst = max((rel_err(x, r), name) for x, r, name in
                ((dz0, dz0_ref, "dL/dz0"), (dtheta, dtheta_ref, "dL/dθ"), (dt, dt_ref, "dL/dt")))
    if worst[0] < TOL:
        return None
    return f"{worst[1]} is off by a relative error {worst[0]:.2g} from refnode's adjoint ({case})"


def check_sweep(submission, monkeypatch, t, g_at, gradients=("adjoint",)):
    got, context = sweep(submission, monkeypatch, t, g_at)
    for gradient in gradients:
        expected = refnode_gradients(*context, gradient=gradient)
        hint = explain(got, (expected, context), f"gradient={gradient!r}, t = {list(t)}")
        assert hint is None, hint


def test_one_interval_gives_refnodes_gradients(submission, monkeypatch):
    """L depends on z(t_1) alone: dL/dz0, dL/dθ, dL/dt0 and dL/dt1 of one reverse solve."""
    check_sweep(submission, monkeypatch, np.array([0.0, 1.5]), [1])


def test_every_observation_time(submission, monkeypatch):
    """A loss on every z(t_i): the jumps of a and a_t at each t_i; against refnode's
    adjoint and its discrete adjoint (the exact gradient of a tight forward solve)."""
    check_sweep(submission, monkeypatch, np.array([0.0, 0.4, 0.9, 1.6]), [0, 1, 2, 3],
                gradients=("adjoint", "discrete"))
