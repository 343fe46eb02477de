"""The linear ODE dz/dt = A z: solution and loss gradients in closed form (NumPy only).

For z(t_0) = z_0 the solution is z(t_i) = e^{A τ_i} z_0 with τ_i = t_i − t_0. The loss
on several output times

    L = Σ_i ⟨g_i, z(t_i)⟩

has the exact gradients (with M_i = Σ_b g_{i,b} z_{0,b}ᵀ, summed over a batch)

    ∂L/∂z_0 = Σ_i e^{Aᵀ τ_i} g_i
    ∂L/∂A   = Σ_i τ_i · L(Aᵀ τ_i, M_i)            L = Fréchet derivative of expm
    ∂L/∂t_i = ⟨g_i, A z(t_i)⟩   (i ≥ 1),           ∂L/∂t_0 = −Σ_{i≥1} ⟨g_i, A z(t_i)⟩

The A-gradient: d/dε e^{(A + εE)τ} = L(Aτ, Eτ), and ⟨M, L(X, E)⟩ = ⟨L(Xᵀ, M), E⟩ in the
Frobenius inner product (the power series of exp has real coefficients). The t_0 one:
e^{Aτ} commutes with A, so ∂z(t_i)/∂t_0 = −A z(t_i).

States are row vectors, as in refnode: z of shape (D,) or a batch (B, D), so the
dynamics is ``z @ A.T`` and a batch solution is ``Z_0 @ expm(A τ).T``.

The matrix exponential is scaling and squaring with the diagonal (6, 6) Padé
approximant (Moler & Van Loan, "Nineteen dubious ways to compute the exponential of a
matrix, twenty-five years later", SIAM Review 45(1), 2003, §3; Golub & Van Loan,
Matrix Computations, Algorithm 11.3.1). The Fréchet derivative comes from the block
identity (Higham, Functions of Matrices, SIAM 2008, §3.2)

    expm([[X, E], [0, X]]) = [[e^X, L(X, E)], [0, e^X]].
"""

import numpy as np

#: Padé degree q and the norm bound after scaling: ‖X / 2^s‖_∞ <= 1/2 gives a relative
#: backward error <= 2^{3-2q} (q!)² / ((2q)! (2q+1)!) ≈ 3.4e-16 for q = 6 (Moler & Van
#: Loan 2003, §3), below float64's unit roundoff 1.1e-16 times a few.
PADE_DEGREE = 6
SCALED_NORM = 0.5


def pade_coefficients(q):
    """c_k = (2q − k)! q! / ((2q)! k! (q − k)!), k = 0..q, of the (q, q) Padé approximant."""
    from math import factorial
    return [factorial(2 * q - k) * factorial(q) / (factorial(2 * q) * factorial(k) * factorial(q - k))
            for k in range(q + 1)]


def expm(X):
    """e^X of a square matrix by scaling and squaring with the (6, 6) Padé approximant.

    Parameters
    ----------
    X : ndarray, shape (n, n)

    Returns
    -------
    ndarray, shape (n, n)
    """
    X = np.asarray(X, dtype=np.float64)
    norm = np.max(np.sum(np.abs(X), axis=1), initial=0.0)
    s = max(0, int(np.ceil(np.log2(norm / SCALED_NORM)))) if norm > 0 else 0
    Y = X / 2.0 ** s
    c = pade_coefficients(PADE_DEGREE)
    I = np.eye(len(X))
    power, N, D = I, c[0] * I, c[0] * I
    for k in range(1, PADE_DEGREE + 1):                 # N = Σ c_k Y^k, D = Σ c_k (−Y)^k
        power = power @ Y
        N = N + c[k] * power
        D = D + (-1) ** k * c[k] * power
    E = np.linalg.solve(D, N)
    for _ in range(s):                                   # e^X = (e^{X/2^s})^{2^s}
        E = E @ E
    return E


def expm_frechet(X, E):
    """The Fréchet derivative L(X, E) = d/dε e^{X + εE} at ε = 0, by the block identity.

    Parameters
    ----------
    X, E : ndarray, shape (n, n)

    Returns
    -------
    ndarray, shape (n, n)
    """
    n = len(X)
    block = np.block([[X, E], [np.zeros((n, n)), X]])
    return expm(block)[:n, n:]


class LinearDynamics:
    """f(t, z, A) = z Aᵀ (row states), with its hand VJP; theta is the matrix A (D, D)."""

    def __call__(self, t, z, A):
        return z @ A.T

    def vjp(self, t, z, A, a):
        """(aᵀ∂f/∂z, aᵀ∂f/∂A, aᵀ∂f/∂t) = (a A, Σ_b a_b z_bᵀ, 0)."""
        a_A = np.outer(a, z) if np.ndim(z) == 1 else a.T @ z
        return a @ A, a_A, np.zeros(())

    def value_and_vjp(self, t, z, A, a):
        return (self(t, z, A),) + self.vjp(t, z, A, a)


def linear_solution(A, z0, t):
    """z(t_i) = e^{A (t_i − t_0)} z_0 for every i: shape (N, *z0.shape)."""
    return np.stack([z0 @ expm(A * (t_i - t[0])).T for t_i in t])


def linear_loss(A, z0, t, g):
    """L = Σ_i ⟨g_i, z(t_i)⟩ with ``g`` of shape (N, *z0.shape)."""
    return float(np.sum(g * linear_solution(A, z0, t)))


def exact_gradients(A, z0, t, g):
    """The exact (∂L/∂z_0, ∂L/∂A, ∂L/∂t) of :func:`linear_loss` (module docstring).

    Parameters
    ----------
    A : ndarray, shape (D, D)
    z0 : ndarray, shape (D,) or (B, D)
    t : ndarray, shape (N,)
    g : ndarray, shape (N, *z0.shape)

    Returns
    -------
    dz0 : ndarray like z0;  dA : ndarray (D, D);  dt : ndarray (N,)
    """
    A, z0, t, g = (np.asarray(x, dtype=np.float64) for x in (A, z0, t, g))
    rows = np.atleast_2d(z0)
    dz0, dA = np.zeros_like(z0), np.zeros_like(A)
    rates = []                                           # ⟨g_i, A z(t_i)⟩ for i >= 1
    for i, t_i in enumerate(t):
        tau = t_i - t[0]
        dz0 = dz0 + g[i] @ expm(A * tau)                 # rows: (e^{Aᵀτ} g)ᵀ = gᵀ e^{Aτ}
        M = np.atleast_2d(g[i]).T @ rows                 # Σ_b g_b z_0bᵀ, (D, D)
        dA = dA + tau * expm_frechet(A.T * tau, M)
        if i > 0:
            z_i = z0 @ expm(A * tau).T
            rates.append(float(np.sum(g[i] * (z_i @ A.T))))
    dt = np.array([-sum(rates)] + rates)
    return dz0, dA, dt
