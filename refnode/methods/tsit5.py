"""Tsitouras 5(4) (Tsit5), FSAL, propagating the 5th-order solution.

Ch. Tsitouras, Runge-Kutta pairs of order 5(4) satisfying only the first column
simplifying assumption, Comput. Math. Appl. 62 (2011) 770-775: the coefficient table and
the continuous extension b_i(θ). The paper gives the coefficients as decimals, so they are
floats here with all the printed digits (cross-checked against OrdinaryDiffEq.jl's Tsit5
tableau). The first column of A follows from the row sums, a_i1 = c_i - Σ_{j>=2} a_ij, and
the embedded weights from the printed error weights b_i - b̂_i.

         c_i | a_i1  a_i2 ... a_i,i-1
    ---------+-------------------------------------------------
           0 |
       0.161 | a21
       0.327 | a31  a32
         0.9 | a41  a42  a43
    0.980... | a51  a52  a53  a54
           1 | a61  a62  a63  a64  a65
           1 | b1   b2   b3   b4   b5   b6      (row 7 is b: FSAL)
    ---------+-------------------------------------------------
             | b1   b2   b3   b4   b5   b6   0        b, order 5
             | b̂1   b̂2   b̂3   b̂4   b̂5   b̂6   b̂7      b̂, order 4

The numbers are below, row by row as printed.
"""

from refnode.tableau import ButcherTableau, DenseOutput

c = [0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0]

# a_ij for j >= 2, as printed (row i lists a_i2, ..., a_i,i-1).
A_printed = [[],
             [],
             [0.3354806554923570],
             [-6.359448489975075, 4.362295432869581],
             [-11.74888356406283, 7.495539342889836, -0.09249506636175525],
             [-12.92096931784711, 8.159367898576159, -0.07158497328140100, -0.02826905039406838]]

b = [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742,
     -3.290069515436081, 2.324710524099774, 0.0]

# Printed error weights b_i - b̂_i.
b_minus_b_hat = [0.001780011052226, 0.000816434459657, -0.007880878010262,
                 0.144711007173263, -0.582357165452555, 0.458082105929187, -1 / 66]


def _first_column(c, rows):
    """Rows of A with a_i1 = c_i - Σ_{j>=2} a_ij put in front (row 0 stays empty)."""
    return [[]] + [[c_i - sum(row)] + row for c_i, row in zip(c[1:], rows[1:])]


def _expand(scale, *factors):
    """Coefficients [p_1, ..., p_q] of P(θ) = scale · θ^0 · Π factors, as Σ_m p_m θ^m.

    Each factor is a list of polynomial coefficients, lowest power first.
    """
    poly = [scale]
    for factor in factors:
        product = [0.0] * (len(poly) + len(factor) - 1)
        for i, p in enumerate(poly):
            for j, q in enumerate(factor):
                product[i + j] += p * q
        poly = product
    return poly[1:]  # every b_i(θ) has a factor θ, so the constant term is 0


THETA = [0.0, 1.0]
THETA2 = [0.0, 0.0, 1.0]

# The paper's continuous extension, b_i(θ) in factored form, y(t + θh) = y + h Σ b_i(θ) k_i:
#   b1 = -1.0530884977290216 θ (θ - 1.3299890189751412)
#                             · (θ² - 1.4364028541716351 θ + 0.7139816917074209)
#   b2 = 0.1017 θ² (θ² - 2.1966568338249754 θ + 1.2949852507374631)
#   b3 = 2.490627285651252793 θ² (θ² - 2.38535645472061657 θ + 1.57803468208092486)
#   b4 = -16.54810288924490272 (θ - 1.21712927295533244)(θ - 0.61620406037800089) θ²
#   b5 = 47.37952196281928122 (θ - 1.203071208372362603)(θ - 0.658047292653547382) θ²
#   b6 = -34.87065786149660974 (θ - 1.2)(θ - 0.666666666666666667) θ²
#   b7 = 2.5 (θ - 1)(θ - 0.6) θ²
P = [
    _expand(-1.0530884977290216, THETA, [-1.3299890189751412, 1.0],
            [0.7139816917074209, -1.4364028541716351, 1.0]),
    _expand(0.1017, THETA2, [1.2949852507374631, -2.1966568338249754, 1.0]),
    _expand(2.490627285651252793, THETA2, [1.57803468208092486, -2.38535645472061657, 1.0]),
    _expand(-16.54810288924490272, THETA2, [-1.21712927295533244, 1.0],
            [-0.61620406037800089, 1.0]),
    _expand(47.37952196281928122, THETA2, [-1.203071208372362603, 1.0],
            [-0.658047292653547382, 1.0]),
    _expand(-34.87065786149660974, THETA2, [-1.2, 1.0], [-0.666666666666666667, 1.0]),
    _expand(2.5, THETA2, [-1.0, 1.0], [-0.6, 1.0]),
]

TSIT5 = ButcherTableau(
    name="tsit5",
    A=_first_column(c, A_printed) + [b[:6]],  # row 7 is b: FSAL
    b=b,
    c=c,
    order=5,
    b_hat=[b_i - e_i for b_i, e_i in zip(b, b_minus_b_hat)],
    error_order=4,
    reference="Tsitouras, Comput. Math. Appl. 62 (2011) 770-775, Table 1 and §3",
    dense=DenseOutput(P=tuple(tuple(row) for row in P), order=4),
)
