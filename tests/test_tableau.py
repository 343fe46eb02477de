"""Butcher tableaux: validation, FSAL, and the order conditions of every method.

The order conditions are generated, not typed in: for every rooted tree τ with ρ(τ)
vertices, a Runge–Kutta method with weights b has order p iff

    Σ_i b_i Φ_i(τ) = 1 / γ(τ)   for all trees with ρ(τ) <= p     (HNW I, §II.2, Thm 2.13)

where the elementary weights and the density are defined recursively over the subtrees
τ = [τ_1, ..., τ_m] hanging from the root:

    Φ_i(τ) = Π_k (Σ_j a_ij Φ_j(τ_k)),   γ(τ) = ρ(τ) Π_k γ(τ_k),   Φ_i(•) = γ(•) = 1.

A continuous extension y(t + θh) = y + h Σ_i P_i(θ) k_i has order q iff
Σ_i P_i(θ) Φ_i(τ) = θ^ρ(τ) / γ(τ) for all trees with ρ(τ) <= q (HNW I, §II.6, Thm 6.1),
i.e. coefficient by coefficient: Σ_i P[i][m-1] Φ_i(τ) = [m = ρ(τ)] / γ(τ).

Exact tables are checked in exact rational arithmetic; the float tables (tsit5, dop853)
to a tolerance relative to the size of the terms that cancel.
"""

from fractions import Fraction
from functools import lru_cache

import numpy as np
import pytest

from refnode.errors import InputError
from refnode.methods import ADAPTIVE_METHODS, FIXED_METHODS, METHODS, get_method
from refnode.tableau import ButcherTableau, DenseOutput

pytestmark = pytest.mark.tableau

F = Fraction

#: Relative tolerance for float tables: the published digits of tsit5 and dop853 are
#: rounded to double precision (~1.1e-16 relative), and a condition sums up to ~20 terms.
FLOAT_RTOL = 1e-13

#: A float residual above this (relative) is a genuinely failed condition, not rounding.
FAILED_RTOL = 1e-8

#: Number of rooted trees with n vertices (OEIS A000081; HNW I, §II.2, Table 2.1).
TREE_COUNTS = {1: 1, 2: 1, 3: 2, 4: 4, 5: 9, 6: 20, 7: 48, 8: 115, 9: 286}


# -- rooted trees ------------------------------------------------------------------------
# A tree is the sorted tuple of the subtrees at its root; the single vertex • is ().

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
    """Φ_i(τ) for every stage i (a list), for A given as a list of full rows."""
    if tree not in cache:
        phi = [1] * len(A)
        for child in tree:
            phi_child = elementary_weights(A, child, cache)
            phi = [phi[i] * sum(A[i][j] * phi_child[j] for j in range(len(A)))
                   for i in range(len(A))]
        cache[tree] = phi
    return cache[tree]


# -- checking conditions -----------------------------------------------------------------

def _as_numbers(values, exact):
    return [Fraction(v) if exact else float(v) for v in values]


def _is_exact(tableau):
    numbers = [x for row in tableau.A for x in row] + list(tableau.b) + list(tableau.c)
    return all(isinstance(x, (int, Fraction)) for x in numbers)


def _full_matrix(tableau, exact):
    """The Butcher matrix as full rows, extra dense-output stages included."""
    rows = [list(row) for row in tableau.A]
    if tableau.dense is not None:
        rows += [list(row) for row in tableau.dense.A_extra]
    n = len(rows)
    return [_as_numbers(row + [0] * (n - len(row)), exact) for row in rows]


def condition_residual(weights, A, tree, target, cache, exact):
    """(Σ_i w_i Φ_i(τ) - target, Σ_i |w_i Φ_i(τ)|): the residual and its scale."""
    phi = elementary_weights(A, tree, cache)
    w = _as_numbers(weights, exact) + [0] * (len(A) - len(weights))
    terms = [w_i * phi_i for w_i, phi_i in zip(w, phi)]
    return sum(terms) - target, sum(abs(t) for t in terms)


def satisfied(residual, scale, exact, rtol=FLOAT_RTOL):
    if exact:
        return residual == 0
    return abs(residual) <= rtol * max(1.0, scale)


def failed_conditions(tableau, weights, order):
    """The trees of exactly ``order`` vertices whose condition ``weights`` violate."""
    exact = _is_exact(tableau) and all(isinstance(w, (int, Fraction)) for w in weights)
    A, cache = _full_matrix(tableau, exact), {}
    failed = []
    for tree in trees(order):
        target = Fraction(1, gamma(tree)) if exact else 1.0 / gamma(tree)
        residual, scale = condition_residual(weights, A, tree, target, cache, exact)
        if not satisfied(residual, scale, exact):
            failed.append((tree, residual))
    return failed


def clearly_fails_some(tableau, weights, order):
    """True if some condition of this order fails by far more than rounding."""
    exact = _is_exact(tableau) and all(isinstance(w, (int, Fraction)) for w in weights)
    A, cache = _full_matrix(tableau, exact), {}
    for tree in trees(order):
        residual, scale = condition_residual(weights, A, tree, F(1, gamma(tree)), cache, exact)
        if exact and residual != 0:
            return True
        if not exact and abs(residual) > FAILED_RTOL * max(1.0, scale):
            return True
    return False


def dense_failed_conditions(tableau, order):
    """Trees of exactly ``order`` vertices whose interpolant condition fails at some θ.

    Σ_i P_i(θ) Φ_i(τ) - θ^ρ/γ is a polynomial of degree <= d = max(q, ρ) without constant
    term, so it vanishes identically iff it vanishes at d distinct nodes θ = 1/d, ..., 1.
    Checking values rather than the coefficients P[i][m] avoids the cancellation of the
    monomial basis (dop853's coefficients reach ~1e3 and cancel to values below 1 on [0, 1]).
    """
    dense = tableau.dense
    exact = _is_exact(tableau) and all(isinstance(p, (int, Fraction))
                                       for row in dense.P for p in row)
    A, cache = _full_matrix(tableau, exact), {}
    n_nodes = max(len(dense.P[0]), order)
    thetas = [F(k, n_nodes) if exact else k / n_nodes for k in range(1, n_nodes + 1)]
    failed = []
    for tree in trees(order):
        for theta in thetas:
            weights = [sum(p * theta ** (m + 1) for m, p in enumerate(row)) for row in dense.P]
            target = theta ** rho(tree) / gamma(tree)
            residual, scale = condition_residual(weights, A, tree, target, cache, exact)
            if not satisfied(residual, scale, exact):
                failed.append((tree, theta, residual))
    return failed


ALL = sorted(METHODS)
DENSE = [name for name in ALL if METHODS[name].dense is not None]


# -- the trees themselves ------------------------------------------------------------------

def test_tree_counts_match_a000081():
    assert {n: len(trees(n)) for n in TREE_COUNTS} == TREE_COUNTS


def test_density_of_tall_and_bushy_trees():
    # The tall tree (a path) has γ = n!; the bushy tree (n-1 leaves on the root) has γ = n.
    tall, bushy = (), ()
    factorial = 1
    for n in range(2, 8):
        tall, bushy, factorial = (tall,), bushy + ((),), factorial * n
        assert rho(tall) == rho(bushy) == n
        assert gamma(tall) == factorial and gamma(bushy) == n


def test_elementary_weights_of_bushy_tree_are_powers_of_c():
    # Φ_i([•, ..., •]) = c_i^(n-1), giving the quadrature conditions Σ b_i c_i^(n-1) = 1/n.
    rk4 = METHODS["rk4"]
    A = _full_matrix(rk4, exact=True)
    bushy = ((), (), ())
    assert elementary_weights(A, bushy, {}) == [ci ** 3 for ci in rk4.c]


# -- order conditions of every method --------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_weights_satisfy_every_condition_up_to_declared_order(name):
    tableau = METHODS[name]
    for p in range(1, tableau.order + 1):
        assert failed_conditions(tableau, tableau.b, p) == [], f"{name}: order {p} fails"


@pytest.mark.parametrize("name", ALL)
def test_declared_order_is_exact(name):
    # An explicit s-stage method has order <= s, and none of these beats its declared order.
    tableau = METHODS[name]
    assert clearly_fails_some(tableau, tableau.b, tableau.order + 1)


@pytest.mark.parametrize("name", ADAPTIVE_METHODS)
def test_embedded_weights_have_exactly_the_error_order(name):
    tableau = METHODS[name]
    for p in range(1, tableau.error_order + 1):
        assert failed_conditions(tableau, tableau.b_hat, p) == [], f"{name}: b_hat order {p}"
    assert clearly_fails_some(tableau, tableau.b_hat, tableau.error_order + 1)


def test_dop853_third_order_estimator():
    dop853 = METHODS["dop853"]
    for p in (1, 2, 3):
        assert failed_conditions(dop853, dop853.b_hat3, p) == []
    assert clearly_fails_some(dop853, dop853.b_hat3, 4)
    assert dop853.e3_float == pytest.approx(
        [b - b3 for b, b3 in zip(dop853.b_float, dop853.b_hat3)], abs=1e-16)


def test_error_weights_are_b_minus_b_hat():
    for name in ADAPTIVE_METHODS:
        tableau = METHODS[name]
        expected = [float(F(b) - F(bh)) if isinstance(b, (int, F)) else b - bh
                    for b, bh in zip(tableau.b, tableau.b_hat)]
        assert list(tableau.e_float) == pytest.approx(expected, abs=1e-16)
        assert abs(sum(tableau.e_float)) < 1e-14


# -- dense output -------------------------------------------------------------------------

@pytest.mark.parametrize("name", DENSE)
def test_dense_output_reproduces_b_at_theta_one(name):
    tableau = METHODS[name]
    n_extra = len(tableau.dense.c_extra)
    b_extended = list(tableau.b) + [0] * n_extra
    for P_i, b_i in zip(tableau.dense.P, b_extended):
        assert float(sum(P_i)) == pytest.approx(float(b_i), abs=1e-13)


@pytest.mark.parametrize("name", DENSE)
def test_dense_output_has_its_declared_order(name):
    tableau = METHODS[name]
    for q in range(1, tableau.dense.order + 1):
        assert dense_failed_conditions(tableau, q) == [], f"{name}: interpolant order {q}"
    assert dense_failed_conditions(tableau, tableau.dense.order + 1) != []


def _one_step(tableau, f, t, y, h, extra=False):
    """Stages k (list) and y_1 of one explicit RK step; with ``extra``, the dense stages too."""
    A = _full_matrix(tableau, exact=False)
    c = list(tableau.c_float) + ([float(x) for x in tableau.dense.c_extra] if extra else [])
    k = []
    for i in range(len(c)):
        k.append(f(t + c[i] * h, y + h * sum(A[i][j] * k[j] for j in range(i))))
    y1 = y + h * sum(b_i * k_i for b_i, k_i in zip(tableau.b_float, k))
    return k, y1


def _interpolate(tableau, y, h, k, theta):
    P = [[float(p) for p in row] for row in tableau.dense.P]
    return y + h * sum(sum(p * theta ** (m + 1) for m, p in enumerate(row)) * k_i
                       for row, k_i in zip(P, k))


def _rotation(t, y):
    return np.array([-y[1], y[0]]) + 0.1 * np.cos(t) * y


@pytest.mark.parametrize("name", DENSE)
def test_interpolant_at_theta_one_reproduces_the_step(name):
    tableau = METHODS[name]
    y, h = np.array([1.0, 0.5]), 0.3
    k, y1 = _one_step(tableau, _rotation, 0.2, y, h, extra=True)
    # Rounding bound for summing the monomials: (q + 1) eps h Σ_i Σ_m |P_im| |k_i|
    # (dop853's P_im reach ~1e3 and cancel to b_i, so its bound is ~1e-12, others ~1e-15).
    q = len(tableau.dense.P[0])
    bound = (q + 1) * np.finfo(float).eps * h * sum(
        sum(abs(float(p)) for p in row) * np.abs(k_i) for row, k_i in zip(tableau.dense.P, k))
    assert np.all(np.abs(_interpolate(tableau, y, h, k, 1.0) - y1) <= bound)
    assert _interpolate(tableau, y, h, k, 0.0) == pytest.approx(y, rel=0, abs=0)


def test_dop853_interpolant_matches_scipy():
    # SciPy evaluates Hairer's nested form directly: an independent check of the P matrix.
    integrate = pytest.importorskip("scipy.integrate")
    dop853, h = METHODS["dop853"], 0.25
    y0 = np.array([1.0, 0.5])
    solver = integrate.DOP853(_rotation, 0.0, y0, t_bound=1.0, first_step=h, max_step=h,
                              rtol=1e-3, atol=1e-3)
    solver.step()
    assert solver.t == pytest.approx(h, rel=1e-15)
    k, _ = _one_step(dop853, _rotation, 0.0, y0, h, extra=True)
    scipy_dense = solver.dense_output()
    for theta in (0.1, 0.37, 0.5, 0.83):
        assert _interpolate(dop853, y0, h, k, theta) == pytest.approx(
            scipy_dense(theta * h), rel=1e-13, abs=1e-14)


# -- FSAL and the registry ----------------------------------------------------------------

FSAL = {"bosh3", "dopri5", "tsit5", "dop853"}


@pytest.mark.parametrize("name", ALL)
def test_fsal_is_derived_from_the_table(name):
    assert METHODS[name].fsal == (name in FSAL)


def test_registry_partitions_methods():
    assert set(FIXED_METHODS) == {"euler", "midpoint", "heun", "ralston", "rk4", "rk38"}
    assert set(ADAPTIVE_METHODS) == {"heun_euler", "bosh3", "fehlberg45", "cash_karp",
                                     "dopri5", "tsit5", "dop853"}
    assert all(METHODS[name].adaptive for name in ADAPTIVE_METHODS)
    assert all(METHODS[name].name == name for name in ALL)


def test_get_method_accepts_names_and_tableaux():
    assert get_method("rk4") is METHODS["rk4"]
    custom = ButcherTableau(name="custom", A=[[], [F(1)]], b=[F(1, 2), F(1, 2)],
                            c=[F(0), F(1)], order=2)
    assert get_method(custom) is custom


@pytest.mark.parametrize("bad", ["rk5", "", None, 4])
def test_get_method_rejects_unknown_names_listing_the_known_ones(bad):
    with pytest.raises(InputError, match="unknown method.*dopri5.*rk4"):
        get_method(bad)


# -- validation ------------------------------------------------------------------------------

def _midpoint(**changes):
    fields = dict(name="bad", A=[[], [F(1, 2)]], b=[F(0), F(1)], c=[F(0), F(1, 2)], order=2)
    fields.update(changes)
    return ButcherTableau(**fields)


def test_valid_midpoint_builds():
    assert _midpoint().stages == 2


@pytest.mark.parametrize("changes, message", [
    (dict(c=[F(0), F(1, 3)]), r"c\[1\] = 1/3 but row 1 of A sums to 1/2"),
    (dict(A=[[F(0), F(1, 2)], [F(1, 2), F(0)]]), "row 0 of A has entries on or above the diag"),
    (dict(A=[[], [F(1, 2), F(1, 4)]], c=[F(0), F(3, 4)]), "row 1 of A has entries on or above"),
    (dict(b=[F(1, 2), F(1)]), "the weights b sum to 3/2, not 1"),
    (dict(b_hat=[F(1), F(0)]), "must declare error_order"),
    (dict(b_hat=[F(1), F(1)], error_order=1), "the weights b_hat sum to 2, not 1"),
    (dict(b_hat=[F(1)], error_order=1), "b_hat has 1 entries, expected 2"),
    (dict(c=[F(0)]), "A has 2 rows and c has 1 entries"),
    (dict(dense=DenseOutput(P=((F(1),), (F(0),)), order=1)), r"P_0\(1\) = 1 differs from b_0"),
    (dict(dense=DenseOutput(P=((F(0),),), order=1)), "P has 1 rows, expected 2"),
    (dict(c=[0.0, 0.5 + 1e-9], A=[[], [0.5]]), r"c\[1\] = 0.500000001 but row 1"),
])
def test_validation_rejects_bad_tables_with_clear_messages(changes, message):
    with pytest.raises(InputError, match=message):
        _midpoint(**changes)


def test_float_tables_pass_within_rounding():
    tableau = _midpoint(A=[[], [0.1 + 0.2 + 0.2]], c=[0.0, 0.5], b=[0.0, 1.0])
    assert tableau.c_float == (0.0, 0.5)
