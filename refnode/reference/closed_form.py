"""States and loss gradients in closed form for three of the reference problems.

All three are linear ODEs, z(t_i) = Φ(τ_i) z_0 with τ_i = t_i − t_0, and the loss is
L = Σ_i ⟨g_i, z(t_i)⟩. The time gradients then follow from the ODE itself,

    ∂L/∂t_i = ⟨g_i, f(z(t_i))⟩ (i ≥ 1),        ∂L/∂t_0 = −Σ_{i≥1} ⟨g_i, f(z(t_i))⟩,

because an autonomous flow started later is the same trajectory shifted.

* linear, dz/dt = A z: :func:`refnode.reference.linear.exact_gradients` (the matrix
  exponential and its Fréchet derivative);
* exponential decay, dz/dt = −k z: Φ(τ) = e^{−kτ}, so ∂L/∂z_0 = Σ_i e^{−kτ_i} g_i and
  ∂L/∂k = −Σ_i τ_i ⟨g_i, z(t_i)⟩;
* damped oscillator, A(ω, ζ) = [[0, 1], [−ω², −2ζω]]: the states from the textbook
  underdamped solution, the gradients from the linear case and the chain rule
  ∂L/∂ω = −2ω ∂L/∂A_10 − 2ζ ∂L/∂A_11, ∂L/∂ζ = −2ω ∂L/∂A_11.

Each function returns ``(states, gradients)`` with gradients = {"z0", "theta", "t"}.
"""

import numpy as np

from .linear import exact_gradients, linear_solution


def time_gradients(f, theta, states, g):
    """∂L/∂t for an autonomous f: ⟨g_i, f(z_i)⟩ for i ≥ 1 and minus their sum at i = 0."""
    rates = [float(np.sum(g[i] * f(0.0, states[i], theta))) for i in range(1, len(states))]
    return np.array([-sum(rates)] + rates)


def linear_closed_form(theta, z0, t, g):
    """dz/dt = A z: z(t_i) = e^{Aτ_i} z_0 and the gradients of refnode.reference.linear."""
    A = theta["A"]
    dz0, dA, dt = exact_gradients(A, z0, t, g)
    return linear_solution(A, z0, t), dict(z0=dz0, theta={"A": dA}, t=dt)


def decay_closed_form(theta, z0, t, g):
    """dz/dt = −k z: z(t_i) = z_0 e^{−kτ_i}."""
    k = float(theta["k"])
    tau = np.asarray(t, dtype=np.float64) - t[0]
    decay = np.exp(-k * tau).reshape((-1,) + (1,) * np.ndim(z0))
    states = decay * z0
    dz0 = np.sum(decay * g, axis=0)
    dk = -float(np.sum(tau.reshape(decay.shape) * g * states))
    dt = time_gradients(lambda _t, z, th: -k * z, theta, states, g)
    return states, dict(z0=dz0, theta={"k": np.array(dk)}, t=dt)


def oscillator_matrix(omega, zeta):
    """A(ω, ζ) with dz/dt = A z for z = (x, v)."""
    return np.array([[0.0, 1.0], [-omega ** 2, -2.0 * zeta * omega]])


def oscillator_states(omega, zeta, z0, t):
    """Underdamped (0 < ζ < 1) x(τ) = e^{−ζωτ}(x_0 cos ω_d τ + (v_0 + ζω x_0)/ω_d sin ω_d τ).

    ω_d = ω √(1 − ζ²); v = dx/dτ. Returns shape (N, *z0.shape).
    """
    if not 0.0 < zeta < 1.0:
        raise ValueError(f"the closed form here is the underdamped one (0 < ζ < 1); ζ = {zeta}")
    w_d = omega * np.sqrt(1.0 - zeta ** 2)
    x0, v0 = z0[..., 0], z0[..., 1]
    c = (v0 + zeta * omega * x0) / w_d
    rows = []
    for tau in np.asarray(t, dtype=np.float64) - t[0]:
        e, cos, sin = np.exp(-zeta * omega * tau), np.cos(w_d * tau), np.sin(w_d * tau)
        x = e * (x0 * cos + c * sin)
        v = e * (-zeta * omega * (x0 * cos + c * sin) + w_d * (-x0 * sin + c * cos))
        rows.append(np.stack([x, v], axis=-1))
    return np.stack(rows)


def oscillator_closed_form(theta, z0, t, g):
    """The damped oscillator: explicit states; gradients by the chain rule through A(ω, ζ)."""
    omega, zeta = float(theta["omega"]), float(theta["zeta"])
    dz0, dA, dt = exact_gradients(oscillator_matrix(omega, zeta), z0, t, g)
    d_omega = -2.0 * omega * dA[1, 0] - 2.0 * zeta * dA[1, 1]
    d_zeta = -2.0 * omega * dA[1, 1]
    grads = dict(z0=dz0, theta={"omega": np.array(d_omega), "zeta": np.array(d_zeta)}, t=dt)
    return oscillator_states(omega, zeta, z0, t), grads
