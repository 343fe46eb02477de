"""Grading: a CNF's log-density by the instantaneous change of variables, the trace exact
(against the trace of the Jacobian) or by Hutchinson's estimator (unbiased within stated
standard errors), inside refnode's CNF dynamics and against a linear flow's closed form."""

import numpy as np

import refnode as rn
from refnode.models.cnf import CNFDynamics, augment
from refnode.models.ffjord import draw_noise
from refnode.models.planar_flow import standard_normal_logpdf

#: The grader's solves: Dormand–Prince at tight tolerances (answers to ~1e-9), and a
#: cheap fixed grid for the averages over many noise draws.
TIGHT = dict(method="dopri5", rtol=1e-10, atol=1e-12)
GRID = dict(method="rk4", n_steps=8)
#: An average of K estimates must lie within Z_MAX standard errors of the exact value.
K, Z_MAX = 4000, 4.0


class TanhField:
    """f(t, z, θ) = tanh(z Wᵀ + t b) Uᵀ on a batch z (B, D): each sample's Jacobian
    U diag(1 − h²) W is non-symmetric. ``forward`` is refnode's field protocol (f, the
    trace of the Jacobian), so that refnode's CNFDynamics solves the same flow."""

    def init(self, seed, D=3, H=5):
        rng = np.random.default_rng(seed)
        return {"W": rng.standard_normal((H, D)), "b": rng.standard_normal(H),
                "U": rng.standard_normal((D, H)) / np.sqrt(H)}

    def hidden(self, t, z, theta):
        return np.tanh(z @ theta["W"].T + t * theta["b"])

    def __call__(self, t, z, theta):
        return self.hidden(t, z, theta) @ theta["U"].T

    def jvp(self, t, z, theta, v):
        return ((1.0 - self.hidden(t, z, theta) ** 2) * (v @ theta["W"].T)) @ theta["U"].T

    def jacobian(self, t, z, theta):
        d = 1.0 - self.hidden(t, z, theta) ** 2
        return np.einsum("dh,bh,hk->bdk", theta["U"], d, theta["W"])

    def forward(self, theta, t, z):
        return self(t, z, theta), np.einsum("bii->b", self.jacobian(t, z, theta)), None


class LinearField:
    """f = z Aᵀ with A = V diag(λ) V⁻¹: x = z(T) = e^{AT} z(0), and
    log p(x) = log N(e^{−AT} x; 0, I) − T tr A (closed form)."""

    V = np.array([[1.0, 0.4, -0.2], [0.3, 1.0, 0.5], [-0.6, 0.2, 1.0]])
    lam = np.array([-0.5, 0.2, 0.7])

    def __call__(self, t, z, theta):
        return z @ theta.T

    def jvp(self, t, z, theta, v):
        return v @ theta.T

    def generator(self):
        """A = V diag(λ) V⁻¹ (the parameters θ of this field)."""
        return self.V @ np.diag(self.lam) @ np.linalg.inv(self.V)

    def flow(self, t):
        """e^{At} = V diag(e^{λt}) V⁻¹."""
        return self.V @ np.diag(np.exp(t * self.lam)) @ np.linalg.inv(self.V)


def field_and_points(seed=0, B=4):
    field = TanhField()
    theta = field.init(seed)
    x = np.random.default_rng(seed + 100).standard_normal((B, 3))
    return field, theta, x


def recording_solve(options=TIGHT):
    """refnode's solver for ``solve(F, s, t_start, t_end, theta)``, and its calls."""
    calls = []

    def solve(F, s, t_start, t_end, theta):
        calls.append((float(t_start), float(t_end)))
        return rn.odeint(F, np.array(s, dtype=float), np.array([t_start, t_end]), theta, **options)[-1]
    return solve, calls


def refnode_log_density(field, theta, x, T, options=TIGHT):
    """log p(x) by refnode's CNFDynamics with the trace of the Jacobian."""
    s0 = rn.odeint(CNFDynamics(field), augment(x), np.array([T, 0.0]), theta, **options)[-1]
    return standard_normal_logpdf(s0[:, :-1]) - s0[:, -1]


def close(got, expected, rtol=1e-10):
    got = np.asarray(got, dtype=float)
    return got.shape == np.shape(expected) and np.allclose(got, expected, rtol=rtol, atol=rtol)


def check_batch_shape(name, got, B):
    assert np.shape(got) == (B,), (f"{name} returned shape {np.shape(got)}: one value per sample, "
                                   f"shape (B,) = ({B},) (no sum over the batch)")


def test_the_exact_trace_is_the_trace_of_the_jacobian(submission):
    for seed in range(3):
        field, theta, z = field_and_points(seed)
        J = field.jacobian(0.4, z, theta)
        got = submission.trace_exact(lambda v: field.jvp(0.4, z, theta, v), z)
        check_batch_shape("trace_exact", got, len(z))
        if close(got, J.sum(axis=(1, 2))):
            raise AssertionError("trace_exact is Σ_ij J_ij, the sum of all the Jacobian's entries "
                                 "(probing with ones?); the trace is Σ_i e_iᵀ J e_i")
        if close(got, (J ** 2).sum(axis=(1, 2))):
            raise AssertionError("trace_exact is Σ_i |J e_i|², the squared Frobenius norm; the "
                                 "trace takes the i-th component of J e_i: Σ_i e_iᵀ J e_i")
        expected = np.einsum("bii->b", J)
        assert close(got, expected), f"trace_exact = {got}, expected tr(∂f/∂z) = {expected}"


def test_hutchinsons_estimate_is_eps_J_eps(submission):
    field, theta, z = field_and_points(1)
    eps = draw_noise(np.random.default_rng(0), z.shape)
    Je = field.jvp(0.4, z, theta, eps)
    got = submission.trace_hutchinson(lambda v: field.jvp(0.4, z, theta, v), eps)
    check_batch_shape("trace_hutchinson", got, len(z))
    expected = np.sum(eps * Je, axis=1)
    if close(got, expected / z.shape[1]):
        raise AssertionError("trace_hutchinson is divided by D (a mean over components): "
                             "εᵀJε = Σ_i ε_i (Jε)_i is a sum")
    assert close(got, expected), f"trace_hutchinson = {got}, expected εᵀ (∂f/∂z) ε = {expected}"


def test_hutchinsons_estimate_is_unbiased(submission):
    """The mean of K estimates lies within Z_MAX standard errors of the exact trace."""
    field, theta, z = field_and_points(2)
    exact = np.einsum("bii->b", field.jacobian(0.4, z, theta))
    rng = np.random.default_rng(7)
    for distribution in ("rademacher", "gaussian"):
        estimates = np.array([submission.trace_hutchinson(
            lambda v: field.jvp(0.4, z, theta, v), draw_noise(rng, z.shape, distribution))
            for _ in range(K)])
        mean, se = estimates.mean(axis=0), estimates.std(axis=0, ddof=1) / np.sqrt(K)
        zscore = np.max(np.abs(mean - exact) / se)
        assert zscore < Z_MAX, (
            f"the mean of {K} Hutchinson estimates ({distribution} ε) is {zscore:.1f} standard "
            f"errors from tr J (allowed {Z_MAX}): the estimator is biased; E[εᵀJε] = tr J")


def test_the_cnf_dynamics(submission):
    field, theta, z = field_and_points(3)
    s, t = augment(z), 0.6
    tr = np.einsum("bii->b", field.jacobian(t, z, theta))
    ds = np.asarray(submission.cnf_dynamics(field)(t, s, theta), dtype=float)
    assert ds.shape == s.shape, f"ds/dt has shape {ds.shape}; the state [z, ℓ] has {s.shape}"
    assert close(ds[:, :-1], field(t, z, theta)), "the z channel of ds/dt is f(t, z, θ)"
    if close(ds[:, -1], tr):
        raise AssertionError("dℓ/dt = +tr(∂f/∂z): a sign error; dℓ/dt = −tr(∂f/∂z) (Theorem 1)")
    assert close(ds[:, -1], -tr), f"dℓ/dt = {ds[:, -1]}, expected −tr(∂f/∂z) = {-tr}"
    eps = draw_noise(np.random.default_rng(1), z.shape)
    F = submission.cnf_dynamics(field, eps)
    first, second = np.asarray(F(t, s, theta)), np.asarray(F(t, s, theta))
    assert np.array_equal(first, second), (
        "cnf_dynamics(field, eps) gives two values at the same (t, s): the noise must be the "
        "fixed eps (a non-fixed noise makes the dynamics random, not an ODE)")
    hutchinson = -np.sum(eps * field.jvp(t, z, theta, eps), axis=1)
    if not close(first[:, -1], hutchinson) and close(first[:, -1], -tr):
        raise AssertionError("cnf_dynamics(field, eps) uses the exact trace: with eps given, "
                             "dℓ/dt = −εᵀ(∂f/∂z)ε (Hutchinson)")
    assert close(first[:, -1], hutchinson), (
        f"with eps: dℓ/dt = {first[:, -1]}, expected −εᵀ(∂f/∂z)ε = {hutchinson}")


def reversed_in_time(calls, T):
    assert calls, "log_density must integrate with the solve it is given"
    t_start, t_end = calls[0]
    assert t_start > t_end, (
        f"log_density solved from t = {t_start:g} to {t_end:g}: integrate [x, 0] from t = T "
        f"= {T:g} back to 0 (forgetting to reverse time)")


def test_the_log_density_of_a_linear_flow(submission):
    """Exact trace: log p(x) = log N(e^{−AT} x) − T tr A."""
    field, T = LinearField(), 0.8
    A, x = field.generator(), np.random.default_rng(5).standard_normal((4, 3))
    solve, calls = recording_solve()
    got = np.asarray(submission.log_density(field, A, x, T, solve), dtype=float)
    reversed_in_time(calls, T)
    check_batch_shape("log_density", got, len(x))
    log_n0 = standard_normal_logpdf(x @ field.flow(-T).T)
    expected = log_n0 - T * np.trace(A)
    if close(got, log_n0 + T * np.trace(A), 1e-7):
        raise AssertionError("log p(x) = log N(z(0)) + ℓ(0): a sign error; "
                             "log p(x) = log N(z(0); 0, I) − ℓ(0)")
    assert close(got, expected, 1e-7), (
        f"log p(x) = {got}, expected log N(e^(−AT) x) − T tr A = {expected} (closed form)")


def test_the_log_density_with_the_exact_trace_is_refnodes(submission):
    field, theta, x = field_and_points(4)
    solve, calls = recording_solve()
    got = submission.log_density(field, theta, x, 1.0, solve)
    reversed_in_time(calls, 1.0)
    expected = refnode_log_density(field, theta, x, 1.0)
    assert close(got, expected, 1e-7), (
        f"log p(x) = {got}, expected {expected} (refnode's CNFDynamics with the trace of the Jacobian)")


class CountingGenerator:
    """A numpy Generator that counts the draws made from it."""

    def __init__(self, seed):
        self.rng, self.draws = np.random.default_rng(seed), 0

    def __getattr__(self, name):
        method = getattr(self.rng, name)

        def counted(*args, **kwargs):
            self.draws += 1
            return method(*args, **kwargs)
        return counted if callable(method) else method


def test_hutchinsons_log_density_draws_its_noise_once_and_is_unbiased(submission):
    """Each solve draws ε once from rng; over 200 seeds the mean log-density lies within
    Z_MAX standard errors of the exact one (the same fixed-grid solver)."""
    field, theta, x = field_and_points(5)
    solve, _ = recording_solve(GRID)
    estimates = []
    for seed in range(200):
        rng = CountingGenerator(seed)
        estimates.append(submission.log_density(field, theta, x, 1.0, solve, rng))
        assert rng.draws > 0, ("log_density(..., rng) drew nothing from rng: draw ε = "
                               "draw_noise(rng, x.shape) once per solve")
        assert rng.draws == 1, (
            f"the noise was drawn {rng.draws} times in one solve: Hutchinson's ε is drawn once "
            "per solve and held fixed (a non-fixed noise makes the dynamics random)")
    again = submission.log_density(field, theta, x, 1.0, solve, CountingGenerator(0))
    assert np.array_equal(again, estimates[0]), "the same rng seed must give the same log-density"
    estimates = np.array(estimates)
    exact = refnode_log_density(field, theta, x, 1.0, GRID)
    se = estimates.std(axis=0, ddof=1) / np.sqrt(len(estimates))
    zscore = np.max(np.abs(estimates.mean(axis=0) - exact) / se)
    assert zscore < Z_MAX, (
        f"the mean of 200 Hutchinson log-densities is {zscore:.1f} standard errors from the "
        f"exact one (allowed {Z_MAX}): is ε drawn with E[εεᵀ] = I (draw_noise)?")
