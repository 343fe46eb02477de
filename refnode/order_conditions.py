"""Order conditions of explicit Runge–Kutta methods, generated from rooted trees.

For every rooted tree τ with ρ(τ) vertices, a Runge–Kutta method with weights b has
order p iff (Hairer, Nørsett & Wanner I, §II.2, Theorem 2.13)

    Σ_i b_i Φ_i(τ) = 1 / γ(τ)   for all trees with ρ(τ) <= p,

where the elementary weights and the density are defined over the subtrees
τ = [τ_1, ..., τ_m] hanging from the root:

    Φ_i(τ) = Π_k (Σ_j a_ij Φ_j(τ_k)),   γ(τ) = ρ(τ) Π_k γ(τ_k),   Φ_i(•) = γ(•) = 1.

A tree is stored as the sorted tuple of its subtrees; the single vertex • is ``()``.

:func:`check_declared_orders` is what :class:`refnode.tableau.ButcherTableau` runs when a
tableau is built: the weights must satisfy every condition up to the declared order (up
to :data:`CHECKED_ORDER`, which keeps construction cheap; the tests check every built-in
method to its full order), and an embedded pair must give a non-zero error estimate.
"""

import math
from fractions import Fraction
from functools import lru_cache

from refnode.errors import InputError

#: Orders checked when a tableau is built: the 17 trees of up to 5 vertices.
CHECKED_ORDER = 5

#: Relative tolerance for tables given as floats: published double-precision tables
#: (tsit5, dop853) satisfy their conditions to ~1e-15 of the size of the terms that
#: cancel; 1e-12 also admits tables whose coefficients were computed in floating point,
#: while a wrong coefficient leaves a residual many orders of magnitude larger.
ORDER_RTOL = 1e-12


@lru_cache(maxsize=None)
def trees(n):
    """All rooted trees with n vertices, each once: grow every tree of n-1 by one leaf."""
    if n == 1:
        return ((),)
    return tuple(sorted({grown for tree in trees(n - 1) for grown in _add_leaf(tree)}))


def _add_leaf(tree):
    """Every tree obtained from ``tree`` by attaching one new leaf to one vertex."""
    yield tuple(sorted(tree + ((),)))                       # to the root
    for k, child in enumerate(tree):                        # inside subtree k
        for grown in _add_leaf(child):
            yield tuple(sorted(tree[:k] + (grown,) + tree[k + 1:]))


def rho(tree):
    """Order ρ(τ): the number of vertices."""
    return 1 + sum(rho(child) for child in tree)


def gamma(tree):
    """Density γ(τ) = ρ(τ) Π γ(τ_k)."""
    g = rho(tree)
    for child in tree:
        g *= gamma(child)
    return g


def elementary_weights(A, tree, cache):
    """Φ_i(τ) for every stage i (a list), for A given as a list of full rows.

    ``cache`` maps trees to their weights for this A (shared across trees: subtrees recur).
    Only the non-zero a_ij enter the sums (explicit tables are mostly zeros), which
    matters for exact tables, where every product is a Fraction operation.
    """
    if tree not in cache:
        if "rows" not in cache:
            cache["rows"] = [[(j, a) for j, a in enumerate(row) if a != 0] for row in A]
        phi = [1] * len(A)
        for child in tree:
            phi_child = elementary_weights(A, child, cache)
            phi = [phi[i] * sum(a * phi_child[j] for j, a in row) if phi[i] != 0 else phi[i]
                   for i, row in enumerate(cache["rows"])]
        cache[tree] = phi
    return cache[tree]


def tree_name(tree):
    """Butcher's bracket notation: • for one vertex, [τ_1 τ_2 ...] for a root with subtrees."""
    return "•" if tree == () else "[" + " ".join(tree_name(child) for child in tree) + "]"


def is_exact(*numbers):
    return all(isinstance(x, (int, Fraction)) for x in numbers)


def first_failed_condition(A, weights, order, denominator, cache):
    """(tree, Σ_i w_i Φ_i(τ)) of the first condition of exactly ``order`` vertices that
    ``weights`` violate, or None when all hold.

    ``denominator`` is None for float tables, checked to :data:`ORDER_RTOL`. For exact
    tables it is a common denominator D of every a_ij and w_i, and ``A``, ``weights`` are
    the integers D a_ij, D w_i: then Σ_i (D w_i) Φ_i(τ; D A) = D^ρ Σ_i w_i Φ_i(τ), and the
    condition is checked in integer arithmetic as γ(τ) Σ = D^ρ(τ), far faster than with
    Fractions.
    """
    for tree in trees(order):
        phi = elementary_weights(A, tree, cache)
        terms = [w_i * phi_i for w_i, phi_i in zip(weights, phi) if w_i != 0]
        value = sum(terms)
        if denominator is not None:
            if gamma(tree) * value != denominator ** rho(tree):
                return tree, Fraction(value, denominator ** rho(tree))
        elif abs(value - 1 / gamma(tree)) > ORDER_RTOL * max(1.0, sum(abs(t) for t in terms)):
            return tree, value
    return None


def check_weights(name, label, A, weights, order, denominator, cache):
    """Raise InputError unless ``weights`` meet every condition up to ``min(order, 5)``."""
    for p in range(1, min(order, CHECKED_ORDER) + 1):
        failed = first_failed_condition(A, weights, p, denominator, cache)
        if failed is not None:
            tree, value = failed
            raise InputError(
                f"tableau {name!r}: {label} does not have its declared order {order}: "
                f"the order-{p} condition of the tree {tree_name(tree)}, "
                f"sum_i {label}_i Phi_i = 1/{gamma(tree)}, gives {value} "
                f"(HNW I, II.2, Thm 2.13), so {label} has order {p - 1} at most. "
                "Check the coefficients against their source, or declare the order they have")


def check_declared_orders(tableau):
    """Check a tableau's declared ``order`` and ``error_order`` against its coefficients.

    Parameters
    ----------
    tableau : ButcherTableau
        With ``A`` already padded to full rows, shape (s, s), and its row sums checked.

    Raises
    ------
    InputError
        A declared order that is not a positive int or exceeds the number of stages (an
        explicit s-stage method has order <= s), weights that miss a condition up to
        ``min(declared, 5)``, or an embedded ``b_hat`` equal to ``b`` (a zero error estimate).
    """
    name, s = tableau.name, len(tableau.b)
    orders = (("order", tableau.order),) + (
        (("error_order", tableau.error_order),) if tableau.b_hat is not None else ())
    for label, order in orders:
        if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= s:
            raise InputError(f"tableau {name!r}: {label} must be an int from 1 to the number "
                             f"of stages {s} (an explicit s-stage method has order <= s), got {order!r}")
    if tableau.b_hat is not None and all(_equal(x, y) for x, y in zip(tableau.b, tableau.b_hat)):
        raise InputError(f"tableau {name!r}: b_hat equals b, so the error estimate "
                         "h sum_i (b_i - b_hat_i) k_i is always zero and every step would be "
                         "accepted; give the embedded weights of the lower-order solution")
    numbers = [x for row in tableau.A for x in row]
    all_weights = [w for _, w, _ in tableau.weights()]
    exact = is_exact(*numbers, *(x for w in all_weights for x in w))
    if exact:   # integers over one common denominator D
        D = math.lcm(*(Fraction(x).denominator for x in numbers + list(tableau.b)))
        for w in all_weights:
            D = math.lcm(D, *(Fraction(x).denominator for x in w))
        number = lambda x: int(Fraction(x) * D)  # noqa: E731 (exact: D is a multiple)
    else:
        D, number = None, float
    A, cache = [[number(x) for x in row] for row in tableau.A], {}
    for label, weights, order in tableau.weights():
        check_weights(name, label, A, [number(x) for x in weights], order, D, cache)


def _equal(x, y):
    return Fraction(x) == Fraction(y) if is_exact(x, y) else float(x) == float(y)
