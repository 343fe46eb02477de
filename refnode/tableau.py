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
from fractions import Fraction

import numpy as np

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
        Polynomial coefficients; P_i(1) must equal b_i.
    order : int
        Order of the interpolant.
    A_extra, c_extra : tuples
        Extra stage rows (each of length s + index) and their nodes.
    """

    P: tuple
    order: int
    A_extra: tuple = ()
    c_extra: tuple = ()


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge–Kutta method as data.

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

    def __post_init__(self):
        s = len(self.b)
        A = tuple(tuple(row) + (0,) * (s - len(row)) for row in self.A)
        object.__setattr__(self, "A", A)
        self._validate(s)
        # Sparse float rows: stage i uses [(j, a_ij) for the non-zero a_ij].
        a_rows = tuple(
            tuple((j, float(A[i][j])) for j in range(i) if A[i][j] != 0) for i in range(s)
        )
        object.__setattr__(self, "a_rows", a_rows)
        object.__setattr__(self, "b_float", tuple(float(x) for x in self.b))
        object.__setattr__(self, "c_float", tuple(float(x) for x in self.c))
        if self.b_hat is not None:
            e = tuple(float(Fraction(bi) - Fraction(bh)) if _exact(bi, bh) else float(bi) - float(bh)
                      for bi, bh in zip(self.b, self.b_hat))
            object.__setattr__(self, "e_float", e)
        else:
            object.__setattr__(self, "e_float", None)

    # -- validation -------------------------------------------------------------------
    def _validate(self, s):
        def fail(msg):
            raise ValueError(f"tableau {self.name!r}: {msg}")

        if len(self.A) != s or len(self.c) != s:
            fail(f"A has {len(self.A)} rows and c has {len(self.c)} entries; b has {s}")
        for i, row in enumerate(self.A):
            if len(row) != s:
                fail(f"row {i} of A has {len(row)} entries, expected at most {s}")
            if any(row[j] != 0 for j in range(i, s)):
                fail(f"row {i} of A has entries on or above the diagonal: not explicit")
            if not _close(sum(row), self.c[i]):
                fail(f"c[{i}] = {self.c[i]} but row {i} of A sums to {sum(row)}")
        if not _close(sum(self.b), 1):
            fail(f"the weights b sum to {sum(self.b)}, not 1")
        if self.b_hat is not None:
            if len(self.b_hat) != s:
                fail(f"b_hat has {len(self.b_hat)} entries, expected {s}")
            if not _close(sum(self.b_hat), 1):
                fail(f"the weights b_hat sum to {sum(self.b_hat)}, not 1")
            if self.error_order is None:
                fail("an embedded pair must declare error_order")
        if self.dense is not None:
            for i, bi in enumerate(self.b):
                if not _close(sum(self.dense.P[i]), bi):
                    fail(f"dense output P_{i}(1) = {sum(self.dense.P[i])} differs from b_{i}")

    # -- derived properties -------------------------------------------------------------
    @property
    def stages(self):
        """Number of stages s."""
        return len(self.b)

    @property
    def adaptive(self):
        """True for embedded pairs (a ``b_hat`` is given)."""
        return self.b_hat is not None

    @property
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


def _exact(*xs):
    return all(isinstance(x, (int, Fraction)) for x in xs)


def _close(x, y):
    if _exact(x, y):
        return Fraction(x) == Fraction(y)
    return abs(float(x) - float(y)) <= COEFFICIENT_TOL * max(1.0, abs(float(y)))
