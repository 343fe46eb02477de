"""The discrete adjoint: the exact gradient of the solution refnode computed.

The forward solve is a composition of explicit RK steps on a fixed grid
(:mod:`refnode.grid`); its reverse pass is the reverse of each step, hand-derived.
For one step (HNW symbols; stage inputs Y_i, stages k_i, weights b_i, nodes c_i)

    Y_i = y + h Σ_j a_ij k_j,   k_i = f(t + c_i h, Y_i, θ),   y_1 = y + h Σ_i b_i k_i,

the cotangents flow backwards, stage s down to stage 1:

    k̄_i += h b_i ȳ_1                       ȳ = ȳ_1,  h̄ = ȳ_1 · Σ_i b_i k_i
    (Ȳ_i, θ̄_i, t̄_i) = f.vjp(t + c_i h, Y_i, θ, k̄_i)
    ȳ += Ȳ_i,   θ̄ += θ̄_i,   t̄ += t̄_i,   h̄ += c_i t̄_i + Σ_j a_ij Ȳ_i · k_j,
    k̄_j += h a_ij Ȳ_i   (j < i).

Dense output at an output time inside a step is differentiated the same way (weights
P_i(θ) of the continuous extension, or the cubic Hermite basis), and the step points'
times flow to the output times through the grid's affine map. Memory: the state at
every step point is kept, O(L) for L steps — the price of exactness. The reverse of a
step computes its stages again, once, from the state at the step's start: each stage's
VJP comes from the forward pass that computed it there (:func:`linearized`).

One reverse pass serves both batch modes: with a step size per sample
(``batch="independent"``) h, θ and the time cotangents t̄, h̄ are (B,) arrays, every
inner product is taken per sample (:func:`inner`), and an output reached by only some
samples in a step is masked (:func:`refnode.per_sample.select`).
"""

import numpy as np

from .backend import array_module, to_float
from .dense_output import extra_stages, hermite_weights, interpolate_one, stage_weights
from .dynamics import linearize
from .params import tree_add, tree_zeros_like
from .per_sample import any_true, divide, host, inner, scale, select, where
from .rk_step import rk_step, weighted_sum


def stage_rows(tableau, with_extra):
    """[(c_i, [(j, a_ij), ...]) for each stage], with the interpolant's extra stages if asked."""
    rows = [(c, list(row)) for c, row in zip(tableau.c_float, tableau.a_rows)]
    if with_extra and tableau.dense is not None:
        for c, row in zip(tableau.dense.c_extra, tableau.dense.A_extra):
            rows.append((float(c), [(j, float(a)) for j, a in enumerate(row) if a != 0]))
    return rows


def replay(f, tableau, z0, theta, t, grid, keep_states=False):
    """Run the steps of ``grid`` again (the forward half of both reverse passes).

    Written with backend-neutral operations only, so autograd can trace it: this very
    function, differentiated by autograd, is the "autograd" gradient oracle.

    Returns
    -------
    z : array, shape (N, *z0.shape)
        The states at the output times ``t``.
    ys : list of arrays or None
        The state at every step point (``keep_states=True``).
    """
    xp = array_module(z0, t)
    tau = grid.points(t, xp)
    t = t.tolist() if isinstance(t, np.ndarray) else t      # Python floats: see grid.points
    outputs = [z0] * len(t)
    ys = [z0]
    y, k1 = z0, f(tau[0], z0, theta)
    for n in range(grid.n_steps):
        h = tau[n + 1] - tau[n]
        y1, _, k = rk_step(f, tableau, tau[n], y, h, theta, k1)
        k1_next = f(tau[n + 1], y1, theta)
        for i, in_step, at_end in grid.outputs_of_step(n, xp):
            value = y1
            if any_true(strictly_inside(in_step, at_end)):
                k_all = extra_stages(f, tableau, tau[n], y, h, theta, k)
                value = select(at_end, y1, interpolate_one(tableau, divide(t[i] - tau[n], h),
                                                           h, y, y1, k_all, k1_next))
            outputs[i] = select(in_step, value, outputs[i])
        y, k1 = y1, k1_next
        if keep_states:
            ys.append(y)
    return xp.stack(outputs), (ys if keep_states else None)


def strictly_inside(in_step, at_end):
    """The output lies inside the step, not at its end (a bool, or a (B,) mask)."""
    if isinstance(at_end, bool):
        return in_step and not at_end
    return in_step & ~at_end




def rk_step_vjp(vjps, tableau, rows, y, h, k, y1_bar, k_bar):
    """Reverse of one RK step: (ȳ, θ̄, t̄, h̄) from ȳ_1 and the stage cotangents k̄.

    ``vjps[i]`` is stage i's VJP at its own (t + c_i h, Y_i) (:func:`linearized`),
    ``rows`` the stage rows (:func:`stage_rows`), ``k`` the forward stages, ``k_bar``
    a list like ``k`` holding cotangents already on the stages (dense output) or None.
    ``theta_bar`` is None when nothing reached θ. See the module docstring for the rules.
    t̄ and h̄ are floats, or (B,) arrays for per-sample steps.
    """
    k_bar = list(k_bar)
    for i, b_i in enumerate(tableau.b_float):
        if b_i != 0.0:
            k_bar[i] = accumulate(k_bar[i], scale(h * b_i, y1_bar))
    y_bar, theta_bar, t_bar = y1_bar, None, 0.0 * h
    h_bar = inner(y1_bar, lincomb(tableau.b_terms, k, y), h)
    for i in reversed(range(len(k))):
        if k_bar[i] is None:
            continue
        c_i, row = rows[i]
        dY = lincomb(row, k, y)                                     # (Y_i - y) / h
        a_z, a_theta, a_t = vjps[i](k_bar[i])
        y_bar = y_bar + a_z
        theta_bar = a_theta if theta_bar is None else tree_add(theta_bar, a_theta)
        t_bar = t_bar + host(a_t, h)
        h_bar = h_bar + c_i * host(a_t, h) + inner(a_z, dY, h)
        for j, a in row:
            k_bar[j] = accumulate(k_bar[j], scale(h * a, a_z))
    return y_bar, theta_bar, t_bar, h_bar


def linearized(f):
    """(f_lin, vjps): ``f_lin`` evaluates f and appends the VJP at that point to ``vjps``
    (:func:`refnode.dynamics.linearize`), so stage i's VJP is taken where its forward was,
    without evaluating f again."""
    vjps = []

    def f_lin(t, z, theta):
        dz, vjp = linearize(f, t, z, theta)
        vjps.append(vjp)
        return dz
    return f_lin, vjps


def lincomb(terms, k, like):
    """Σ_j w_j k[j] for ``terms = [(j, w_j), ...]`` (zeros shaped like ``like`` for an
    empty sum)."""
    terms = [(j, w) for j, w in terms if not (np.ndim(w) == 0 and w == 0.0)]
    return weighted_sum(1.0, terms, k) if terms else 0.0 * like


def accumulate(total, term):
    """total + term, where ``None`` stands for a cotangent nothing has reached yet."""
    return term if total is None else total + term


def dense_vjp(tableau, th, h, y0, y1, k, f1, z_bar, k_bar):
    """Reverse of the interpolant z(θ) inside a step (θ, h floats or (B,) arrays).

    Returns
    -------
    y0_bar, y1_bar, f1_bar : arrays or None
        Cotangents on y_n, y_{n+1} and f(τ_{n+1}, y_{n+1}) (Hermite only).
    th_bar, h_bar : float or array (B,)
        Cotangents on θ and on h (through the h in front of the stage sum).
    k_bar : list
        The stage cotangents, updated.
    """
    k_bar = list(k_bar)
    if tableau.dense is None:
        h00, h10, h01, h11 = hermite_weights(th)
        d00, d10, d01, d11 = (6 * th * th - 6 * th, 3 * th * th - 4 * th + 1,
                              -6 * th * th + 6 * th, 3 * th * th - 2 * th)
        k_bar[0] = accumulate(k_bar[0], scale(h10 * h, z_bar))
        th_bar = inner(z_bar, lincomb([(0, d00), (1, d10 * h), (2, d01), (3, d11 * h)],
                                      [y0, k[0], y1, f1], y0), h)
        h_bar = inner(z_bar, lincomb([(0, h10), (1, h11)], [k[0], f1], y0), h)
        return scale(h00, z_bar), scale(h01, z_bar), scale(h11 * h, z_bar), th_bar, h_bar, k_bar
    P = tableau.dense.P_float
    weights = stage_weights(P, th)
    slopes = [sum((m + 1) * p * th ** m for m, p in enumerate(row)) for row in P]
    for i, (w, row) in enumerate(zip(weights, P)):
        if any(row):
            k_bar[i] = accumulate(k_bar[i], scale(h * w, z_bar))
    th_bar = h * inner(z_bar, lincomb(list(enumerate(slopes)), k, y0), h)
    h_bar = inner(z_bar, lincomb(list(enumerate(weights)), k, y0), h)
    return z_bar, None, None, th_bar, h_bar, k_bar


def discrete_vjp(f, tableau, theta, t, grid, ys, g):
    """The exact gradient of the solution w.r.t. z0, θ and the times t: each step of the
    grid reversed, from the state at its start.

    Parameters
    ----------
    f : dynamics with ``.vjp``
    tableau : ButcherTableau
    theta : tree or None
    t : ndarray, shape (N,)
    grid : StepGrid
    ys : list of arrays, length L + 1
        The state at every step point: the forward solve's (``Solution.states``) or a
        replay's (``replay(..., keep_states=True)``).
    g : array, shape (N, *z0.shape)
        ∂L/∂z at the output times.

    Returns
    -------
    dz0 : array like z0;  dtheta : tree like theta (or None; summed over samples);
    dt : ndarray (N,) (summed over samples: the output times are shared);
    nfe : int
        Evaluations of f in the reverse pass (each step's stages, computed again).
    """
    xp = array_module(ys[0])
    tau = grid.points(t, xp)
    t = t.tolist() if isinstance(t, np.ndarray) else t
    tau_bar, t_bar = [0.0] * len(tau), [0.0] * len(t)
    y_bar, theta_bar, nfe = 0.0 * ys[-1], None, 0
    for n in reversed(range(grid.n_steps)):
        interior = []
        for i, in_step, at_end in grid.outputs_of_step(n, xp):
            y_bar = y_bar + select(in_step & at_end, g[i], 0.0 * g[i])
            inside = strictly_inside(in_step, at_end)
            if any_true(inside):
                interior.append((i, inside))
        y_bar, theta_step, step_nfe = step_backward(f, tableau, theta, t, tau, n, ys, g,
                                                    interior, y_bar, tau_bar, t_bar)
        nfe += step_nfe
        if theta_step is not None:
            theta_bar = theta_step if theta_bar is None else tree_add(theta_bar, theta_step)
    dt = np.array([to_float(xp.sum(v)) if not isinstance(v, float) else v for v in t_bar])
    dt = dt + grid.point_time_gradient(tau_bar, len(t))
    if theta is not None and theta_bar is None:
        theta_bar = tree_zeros_like(theta)
    return y_bar + g[0], theta_bar, dt, nfe


def step_backward(f, tableau, theta, t, tau, n, ys, g, interior, y1_bar, tau_bar, t_bar):
    """Reverse of step n and of the dense outputs inside it.

    ``interior`` lists (i, inside) for the outputs strictly inside the step (``inside``
    True, or a (B,) mask). Adds the step's contributions to the lists ``tau_bar`` (per
    step point) and ``t_bar`` (per output time, through θ = (t_i - τ_n)/h); these are
    bookkeeping, never traced.

    Returns
    -------
    y0_bar : array like y;  theta_bar : tree or None;  nfe : int (evaluations of f)
    """
    y, y1, h = ys[n], ys[n + 1], tau[n + 1] - tau[n]
    f_lin, vjps = linearized(f)                     # each stage's VJP, kept as it is computed
    _, _, k = rk_step(f_lin, tableau, tau[n], y, h, theta, f_lin(tau[n], y, theta))
    rows = stage_rows(tableau, with_extra=bool(interior))
    if interior and tableau.dense is not None:
        k = extra_stages(f_lin, tableau, tau[n], y, h, theta, k)
    f1, f1_vjp = (linearize(f, tau[n + 1], y1, theta) if interior and tableau.dense is None
                  else (None, None))
    k_bar, y0_dense, f1_bar, h_bar = [None] * len(k), None, None, 0.0 * h
    for i, inside in interior:
        th = where(inside, divide(t[i] - tau[n], h), 0.0)
        y0_b, y1_b, f1_b, th_bar, h_b, k_bar = dense_vjp(tableau, th, h, y, y1, k, f1,
                                                         select(inside, g[i], 0.0 * g[i]), k_bar)
        y0_dense = accumulate(y0_dense, y0_b)
        y1_bar = y1_bar if y1_b is None else y1_bar + y1_b
        f1_bar = f1_bar if f1_b is None else accumulate(f1_bar, f1_b)
        t_bar[i] = t_bar[i] + divide(th_bar, h)    # θ = (t_i - τ_n) / h
        tau_bar[n] = tau_bar[n] - divide(th_bar, h)
        h_bar = h_bar + h_b - divide(th_bar * th, h)
    theta_bar = None
    if f1_bar is not None:                           # Hermite's slope f(τ_{n+1}, y_{n+1})
        a_z, theta_bar, a_t = f1_vjp(f1_bar)
        y1_bar = y1_bar + a_z
        tau_bar[n + 1] = tau_bar[n + 1] + host(a_t, h)
    y0_bar, theta_step, t_step, h_step = rk_step_vjp(vjps, tableau, rows, y, h, k, y1_bar,
                                                      k_bar)
    h_bar = h_bar + h_step
    tau_bar[n] = tau_bar[n] + t_step - h_bar         # h = τ_{n+1} - τ_n
    tau_bar[n + 1] = tau_bar[n + 1] + h_bar
    if theta_step is not None:
        theta_bar = theta_step if theta_bar is None else tree_add(theta_bar, theta_step)
    nfe = len(vjps) + (f1 is not None)              # the stages, and Hermite's f1
    return (y0_bar if y0_dense is None else y0_bar + y0_dense), theta_bar, nfe
