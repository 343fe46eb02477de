"""Butcher tableaux as validated data (Hairer, Nørsett & Wanner I, §II.1).

An explicit s-stage Runge–Kutta method for y' = f(t, y) is the table

    c_1 |
    c_2 | a_21
    c_3 | a_31 a_32
     .  |  .          .
    c_s | a_s1 ...  a_s,s-1
    ----+----------------------
        | b_1  ...  b_s            (order p, advances the solution)
        | b̂_1  ...  b̂_s            (order p̂, embedded; only for adaptive pairs)

    k_i = f(t + c_i h, y + h Σ_j a_ij k_j),   y_1 = y + h Σ_i b_i k_i,
    error estimate  e = h Σ_i (b_i - b̂_i) k_i.

A method is a :class:`ButcherTableau` built from exact :class:`fractions.Fraction`
coefficients; it checks itself when built. Whether the method is FSAL ("first same as
last": the last stage is f(t + h, y_1), so it is the next step's first stage) is derived
from the table, never declared.
"""

from dataclasses import dataclass, field
from functools import cached_property
from fractions import Fraction

import numpy as np

from refnode.errors import InputError
from refnode.order_conditions import check_declared_orders

#: Tolerance for checking coefficients given as floats (some published tables, e.g.
#: dop853, are only available as decimal expansions).
COEFFICIENT_TOL = 1e-14


@dataclass(frozen=True)
class DenseOutput:
    """A continuous extension y(t + θh), 0 <= θ <= 1, linear in the stages.

        y(t + θh) = y + h Σ_i k_i P_i(θ),   P_i(θ) = Σ_{m=1}^{q} P[i][m-1] θ^m

    Stages beyond the tableau's own (dop853 needs three) are given by ``A_extra`` and
    ``c_extra``: extra rows of the Butcher matrix, evaluated only when dense output is
    asked for. ``P`` has one row per stage (tableau stages, then extra stages).

    Attributes
    ----------
    P : tuple of tuples, shape (s + s_extra, q)
        Polynomial coefficients; P_i(1) must equal b_i. ``P_float`` (tuples) and
        ``P_array`` (float64, shape (s + s_extra, q)) are their float copies.
    order : int
        Order of the interpolant.
    A_extra, c_extra : tuples
        Extra stage rows (each of length s + index) and their nodes.
    """

    P: tuple
    order: int
    A_extra: tuple = ()
    c_extra: tuple = ()
    # Float copies for the solver, filled in __post_init__.
    P_float: tuple = field(init=False, repr=False, compare=False)
    P_array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        P_float = tuple(tuple(float(p) for p in row) for row in self.P)
        object.__setattr__(self, "P_float", P_float)
        object.__setattr__(self, "P_array", np.array(P_float, dtype=np.float64))


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge–Kutta method as data.

    A method with a further estimate (dop853's third-order one) subclasses this, adds
    its weights to :meth:`weights` (checked like ``b`` and ``b_hat``) and combines the
    estimates in its own :meth:`error_ratio`; drivers only call that.

    Parameters
    ----------
    name : str
        Short name used by ``method=`` (e.g. ``"dopri5"``).
    A : sequence of sequences, shape (s, s) lower triangular, or the rows below the
        diagonal (row i has i entries)
        Runge–Kutta matrix a_ij.
    b : sequence, shape (s,)
        Weights of the propagated solution, order ``order``.
    c : sequence, shape (s,)
        Nodes; must equal the row sums of A.
    order : int
        Classical order p of ``b``.
    b_hat : sequence, shape (s,), optional
        Weights of the embedded solution (adaptive pairs only).
    error_order : int, optional
        Order p̂ of ``b_hat``.
    reference : str
        Where a reader can check the coefficients.
    dense : DenseOutput, optional
        The method's own interpolant; Hermite interpolation is used otherwise.
    """

    name: str
    A: tuple
    b: tuple
    c: tuple
    order: int
    b_hat: tuple = None
    error_order: int = None
    reference: str = ""
    dense: DenseOutput = None
    # Float copies for the solver, filled in __post_init__.
    a_rows: tuple = field(init=False, repr=False, compare=False)
    b_float: tuple = field(init=False, repr=False, compare=False)
    c_float: tuple = field(init=False, repr=False, compare=False)
    e_float: tuple = field(init=False, repr=False, compare=False)
    b_terms: tuple = field(init=False, repr=False, compare=False)
    e_terms: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        s = len(self.b)
        A = tuple(tuple(row) + (0,) * (s - len(row)) for row in self.A)
        object.__setattr__(self, "A", A)
        self._validate(s)
        # Sparse float rows: stage i uses [(j, a_ij) for the non-zero a_ij].
        a_rows = tuple(sparse_terms([float(a) for a in A[i][:i]]) for i in range(s))
        e_float = _error_weights(self.b, self.b_hat)
        object.__setattr__(self, "a_rows", a_rows)
        object.__setattr__(self, "b_float", tuple(float(x) for x in self.b))
        object.__setattr__(self, "c_float", tuple(float(x) for x in self.c))
        object.__setattr__(self, "e_float", e_float)
        object.__setattr__(self, "b_terms", sparse_terms(self.b_float))
        object.__setattr__(self, "e_terms", None if e_float is None else sparse_terms(e_float))

    # -- validation -------------------------------------------------------------------
    def _validate(self, s):
        def fail(msg):
            raise InputError(f"tableau {self.name!r}: {msg}")

        self._validate_numbers(fail)
        if len(self.A) != s or len(self.c) != s:
            fail(f"A has {len(self.A)} rows and c has {len(self.c)} entries; b has {s}")
        for i, row in enumerate(self.A):
            if len(row) != s:
                fail(f"row {i} of A has {len(row)} entries, expected at most {s}")
            if any(row[j] != 0 for j in range(i, s)):
                fail(f"row {i} of A has entries on or above the diagonal: not explicit")
            if not _close_sum(row, self.c[i]):
                fail(f"c[{i}] = {self.c[i]} but row {i} of A sums to {sum(row)}; "
                     "each node must be the row sum c_i = sum_j a_ij")
        for label, weights, _ in self.weights():
            if len(weights) != s:
                fail(f"{label} has {len(weights)} entries, expected {s}")
            if not _close_sum(weights, 1):
                fail(f"the weights {label} sum to {sum(weights)}, not 1 (order 1 fails)")
        if self.b_hat is not None and self.error_order is None:
            fail("an embedded pair must declare error_order")
        if self.dense is not None:
            self._validate_dense(s, fail)
        check_declared_orders(self)  # order conditions up to min(order, 5), b_hat != b

    def _validate_numbers(self, fail):
        """Every coefficient is a real number (int, Fraction, float), not text or a bool."""
        dense = self.dense or DenseOutput(P=(), order=0)
        for label, values in (("A", [x for row in self.A for x in row]), ("b", self.b),
                              ("c", self.c), ("b_hat", self.b_hat or ()),
                              ("dense.P", [x for row in dense.P for x in row]),
                              ("dense.A_extra", [x for row in dense.A_extra for x in row]),
                              ("dense.c_extra", dense.c_extra)):
            for x in values:
                if isinstance(x, (bool, np.bool_)) or not isinstance(
                        x, (int, float, Fraction, np.integer, np.floating)):
                    fail(f"{label} holds {x!r} ({type(x).__name__}); coefficients must be "
                         "real numbers: ints, fractions.Fraction or floats")

    def _validate_dense(self, s, fail):
        dense = self.dense
        n_extra = len(dense.c_extra)
        if len(dense.A_extra) != n_extra:
            fail(f"dense output has {len(dense.A_extra)} extra rows but {n_extra} extra nodes")
        for m, (row, c_m) in enumerate(zip(dense.A_extra, dense.c_extra)):
            if len(row) != s + m:
                fail(f"extra dense stage {m} has {len(row)} coefficients, expected {s + m}")
            if not _close_sum(row, c_m):
                fail(f"extra dense stage {m}: node {c_m} but its row sums to {sum(row)}")
        if len(dense.P) != s + n_extra:
            fail(f"dense output P has {len(dense.P)} rows, expected {s + n_extra} "
                 "(one per stage, extra stages included)")
        b_extended = tuple(self.b) + (0,) * n_extra
        for i, bi in enumerate(b_extended):
            if len(dense.P[i]) != len(dense.P[0]):
                fail(f"dense output row P_{i} has {len(dense.P[i])} coefficients, "
                     f"expected {len(dense.P[0])}")
            if not _close_sum(dense.P[i], bi):
                fail(f"dense output P_{i}(1) = {sum(dense.P[i])} differs from b_{i} = {bi}: "
                     "the interpolant must reproduce y_1 at theta = 1")

    def weights(self):
        """[(label, weights, declared order)] of every solution the table defines: ``b``,
        and ``b_hat`` for an embedded pair (the order conditions check each)."""
        embedded = [("b_hat", self.b_hat, self.error_order)] if self.b_hat is not None else []
        return [("b", self.b, self.order)] + embedded

    # -- derived properties -------------------------------------------------------------
    @property
    def stages(self):
        """Number of stages s."""
        return len(self.b)

    @property
    def adaptive(self):
        """True for embedded pairs (a ``b_hat`` is given)."""
        return self.b_hat is not None

    @cached_property
    def fsal(self):
        """First Same As Last: the last stage is evaluated at (t + h, y_1).

        Holds when c_s = 1 and the last row of A equals b (then the last stage's input is
        exactly y_1), so k_s is f(t + h, y_1), the next step's k_1.
        """
        s = self.stages
        return s > 1 and _close(self.c[-1], 1) and all(
            _close(self.A[-1][j], self.b[j]) for j in range(s)
        ) and self.b[-1] == 0

    def A_numpy(self):
        """A as a float64 array, shape (s, s)."""
        return np.array([[float(x) for x in row] for row in self.A])

    # -- the method's error estimate (a method with its own overrides these two) ----------
    def error_power(self):
        """q, the power of h in the error estimate: p̂ + 1 (the controller's exponent is 1/q)."""
        return min(self.order, self.error_order) + 1

    def error_ratio(self, norm, h, error, k, y0, y1):
        """The step's error ratio (accept where <= 1): ``norm(error, y0, y1)``.

        Parameters
        ----------
        norm : callable
            ``norm(error, y0, y1) -> ratio``, the solve's error norm (a float, or (B,)
            per sample); see :func:`refnode.step_size.rms_norm`.
        h : float or array, shape (B,)
        error : array like y
            h Σ (b_i - b̂_i) k_i from :func:`refnode.rk_step.rk_step`.
        k : list of arrays
            The step's stages (a method with a second estimate needs them).
        y0, y1 : arrays like y
        """
        return norm(error, y0, y1)


def _exact(*xs):
    return all(isinstance(x, (int, Fraction)) for x in xs)


def _close(x, y):
    if _exact(x, y):
        return Fraction(x) == Fraction(y)
    return abs(float(x) - float(y)) <= COEFFICIENT_TOL * max(1.0, abs(float(y)))


def _close_sum(terms, y):
    """Whether ``sum(terms) == y``: exactly for fractions, else to rounding of the terms.

    Float tables (dop853) have rows whose entries reach ~40 and cancel to a node < 1; the
    rounding error of such a sum scales with sum |terms|, not with the result.
    """
    terms = tuple(terms)
    if _exact(y, *terms):
        return sum(Fraction(x) for x in terms) == Fraction(y)
    scale = max(1.0, abs(float(y)), sum(abs(float(x)) for x in terms))
    return abs(sum(float(x) for x in terms) - float(y)) <= COEFFICIENT_TOL * scale


def sparse_terms(weights):
    """((i, w_i), ...) for the non-zero float weights: the terms a step sums
    (:func:`refnode.rk_step.weighted_sum`)."""
    return tuple((i, w) for i, w in enumerate(weights) if w != 0.0)


def _error_weights(b, b_hat):
    """Float error weights e_i = b_i - b̂_i (exact difference first where possible)."""
    if b_hat is None:
        return None
    return tuple(float(Fraction(bi) - Fraction(bh)) if _exact(bi, bh) else float(bi) - float(bh)
                 for bi, bh in zip(b, b_hat))


def hairer_dense_output(b, D, order, A_extra=(), c_extra=()):
    """Convert Hairer's nested continuous output (DOPRI5, DOP853) to :class:`DenseOutput`.

    Hairer's codes store, for an FSAL method whose last stage is k_s = f(t + h, y_1),

        F_0 = Σ b_i k_i,   F_1 = k_1 - F_0,   F_2 = 2 F_0 - k_1 - k_s,   F_{3+m} = Σ_i D[m][i] k_i

    and evaluate y(t + θh) = y + h θ (F_0 + (1-θ)(F_1 + θ(F_2 + (1-θ)(F_3 + θ(F_4 + ...))))),
    the factors alternating θ and 1-θ (HNW I §II.6, and ``CONTD5``/``CONTD8`` in dopri5.f,
    dop853.f). Expanding the nest gives P_i(θ) = Σ_m ``P[i][m-1]`` θ^m.

    Parameters
    ----------
    b : sequence, shape (s,)
        Weights of the FSAL tableau (b_s = 0).
    D : sequence of sequences, shape (q - 3, s + s_extra)
        Hairer's dense coefficients over all stages, extra stages included.
    order : int
        Order of the interpolant.
    A_extra, c_extra : tuples
        Extra stages, as in :class:`DenseOutput`.
    """
    n = len(b) + len(c_extra)
    if any(len(row) != n for row in D):
        raise InputError(f"each row of D needs {n} entries: one per stage, extra stages included")
    b_full = tuple(b) + (0,) * len(c_extra)
    unit = lambda j: tuple(1 if i == j else 0 for i in range(n))  # noqa: E731 (the k_j)
    k_1, k_s = unit(0), unit(len(b) - 1)
    F = [b_full,
         _combine((1, k_1), (-1, b_full)),
         _combine((2, b_full), (-1, k_1), (-1, k_s))]
    F += [tuple(row) for row in D]
    # poly[m] is the stage vector multiplying θ^m; build the nest from the inside out.
    poly = [F[-1]]
    for m in range(len(F) - 2, -1, -1):
        poly = _times_theta(poly) if m % 2 else _times_one_minus_theta(poly)
        poly[0] = _combine((1, poly[0]), (1, F[m]))
    poly = _times_theta(poly)  # the outer θ; poly[0] is now zero
    P = tuple(tuple(poly[m][i] for m in range(1, len(poly))) for i in range(n))
    return DenseOutput(P=P, order=order, A_extra=tuple(A_extra), c_extra=tuple(c_extra))


def _combine(*terms):
    """Σ coefficient * vector over ``(coefficient, vector)`` pairs, entry by entry."""
    return tuple(sum(coef * v[i] for coef, v in terms) for i in range(len(terms[0][1])))


def _times_theta(poly):
    zero = tuple(0 for _ in poly[0])
    return [zero] + list(poly)


def _times_one_minus_theta(poly):
    shifted = _times_theta(poly)
    padded = list(poly) + [tuple(0 for _ in poly[0])]
    return [_combine((1, p), (-1, q)) for p, q in zip(padded, shifted)]
