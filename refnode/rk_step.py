"""One explicit Runge–Kutta step from a Butcher tableau (HNW I, §II.1, eq. (1.8)).

    k_i = f(t + c_i h, y + h Σ_{j<i} a_ij k_j),   i = 1..s
    y_1 = y + h Σ_i b_i k_i
    e   = h Σ_i (b_i - b̂_i) k_i          (embedded error estimate, adaptive pairs)

One arithmetic serves both batch modes. The step size h (and the time t) is a Python
float, one for the whole state, or an array of shape (B,), one per sample of a batch
whose leaves lead with the batch axis B; a per-sample h is broadcast along that axis
(:func:`refnode.per_sample.scale`). Nothing is written in place, so the same code runs on NumPy, CuPy and
autograd.numpy arrays, and on parameter trees of them (the adjoint's augmented state).
"""

from .params import tree_map
from .per_sample import scale

#: The containers of a tree state (the adjoint's augmented state): summed leaf by leaf.
TREE_TYPES = (tuple, list, dict)


def weighted_sum(h, terms, k):
    """h Σ_j w_j k[j] for ``terms = [(j, w_j), ...]`` (a tableau's sparse rows).

    ``k`` is a list of arrays or of trees of arrays (the stages); h is a number or a (B,)
    array; the weights w_j are all numbers or all (B,) arrays (:func:`scale`). The terms
    are summed in their order, the same for every sample of a batch.
    """
    j0, w0 = terms[0]
    k0 = k[j0]
    if isinstance(k0, TREE_TYPES):           # leaf by leaf
        return tree_map(lambda *k_leaves: weighted_sum(h, terms, k_leaves), *k)
    if type(h) is float and type(w0) is float:      # one h (the frequent case, kept fast):
        acc = (h * w0) * k0                  # h folded into the weight, one array op fewer
        for j, w in terms[1:]:
            acc = acc + (h * w) * k[j]
        return acc
    acc = scale(h * w0, k0)                  # per-sample h or weights: broadcast per row
    for j, w in terms[1:]:
        acc = acc + scale(h * w, k[j])
    return acc


def combine(y, h, terms, k):
    """y + h Σ_j w_j k[j] (:func:`weighted_sum`); an empty ``terms`` returns ``y`` itself."""
    if not terms:
        return y
    if isinstance(y, TREE_TYPES):            # leaf by leaf: one walk of the tree
        return tree_map(lambda y_leaf, *k_leaves: combine(y_leaf, h, terms, k_leaves), y, *k)
    return y + weighted_sum(h, terms, k)


def rk_step(f, tableau, t, y, h, theta, k1):
    """Advance y(t) to y(t + h) with one step of ``tableau``.

    Parameters
    ----------
    f : callable
        Dynamics ``f(t, y, theta)``.
    tableau : ButcherTableau
    t : float or array, shape (B,)
        Time at the start of the step (one per sample in ``batch="independent"``).
    y : array, any shape (or a tree of arrays)
        State at t.
    h : float or array, shape (B,)
        Step size; negative to integrate backwards in time.
    theta : tree
        Parameters passed to f.
    k1 : array like y
        f(t, y, theta), already known (the caller keeps it for FSAL reuse).

    Returns
    -------
    y1 : array like y
        The propagated solution (order ``tableau.order``).
    error : array like y or None
        h Σ (b_i - b̂_i) k_i for embedded pairs, else None. The step's error ratio,
        which may combine further estimates, is ``tableau.error_ratio`` (the method's own).
    k : list of arrays, length s
        The stages. For an FSAL tableau k[-1] = f(t + h, y1, theta).
    """
    k, c = [k1], tableau.c_float
    for i in range(1, tableau.stages):
        Y_i = stage_input(tableau, i, y, h, k)
        k.append(f(t + c[i] * h, Y_i, theta))
    if tableau.fsal:
        y1 = Y_i            # the last row of A equals b: the last stage input is y1 itself
    else:
        y1 = combine(y, h, tableau.b_terms, k)
    error = None
    if tableau.e_terms is not None:
        error = weighted_sum(h, tableau.e_terms, k)
    return y1, error, k


def stage_input(tableau, i, y, h, k):
    """Y_i = y + h Σ_{j<i} a_ij k_j, the state at which stage i evaluates f."""
    return combine(y, h, tableau.a_rows[i], k)
