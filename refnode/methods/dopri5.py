"""Dormand–Prince 5(4) (DOPRI5), FSAL, propagating the 5th-order solution.

Coefficients: J. R. Dormand and P. J. Prince, A family of embedded Runge-Kutta formulae,
J. Comput. Appl. Math. 6 (1980) 19-26; HNW I, §II.5, Table 5.2. Dense output: the
4th-order continuous extension of Shampine (1986) as coded in Hairer's DOPRI5 (dopri5.f,
coefficients D1..D7; L. F. Shampine, Some practical Runge-Kutta formulas, Math. Comp. 46
(1986) 135-150; HNW I, §II.6).

       0 |
     1/5 |        1/5
    3/10 |       3/40        9/40
     4/5 |      44/45      -56/15       32/9
     8/9 | 19372/6561  -25360/2187  64448/6561  -212/729
       1 |  9017/3168     -355/33  46732/5247    49/176  -5103/18656
       1 |     35/384           0    500/1113   125/192   -2187/6784     11/84
    -----+-------------------------------------------------------------------------
         |     35/384           0    500/1113   125/192   -2187/6784     11/84     0
         | 5179/57600           0  7571/16695   393/640 -92097/339200 187/2100  1/40

The last row of A equals b, so the 7th stage is f(t + h, y_1): FSAL.
"""

from fractions import Fraction as F

from refnode.tableau import ButcherTableau, hairer_dense_output

A = [[],
     [F(1, 5)],
     [F(3, 40),       F(9, 40)],
     [F(44, 45),      F(-56, 15),      F(32, 9)],
     [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)],
     [F(9017, 3168),  F(-355, 33),     F(46732, 5247), F(49, 176),  F(-5103, 18656)],
     [F(35, 384),     F(0),            F(500, 1113),   F(125, 192), F(-2187, 6784), F(11, 84)]]
b = [F(35, 384), F(0), F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), F(0)]
b_hat = [F(5179, 57600), F(0), F(7571, 16695), F(393, 640), F(-92097, 339200),
         F(187, 2100), F(1, 40)]
c = [F(0), F(1, 5), F(3, 10), F(4, 5), F(8, 9), F(1), F(1)]

# Shampine's dense coefficients D_i (dopri5.f, "DENSE OUTPUT OF SHAMPINE (1986)").
D = [[F(-12715105075, 11282082432), F(0), F(87487479700, 32700410799),
      F(-10690763975, 1880347072), F(701980252875, 199316789632),
      F(-1453857185, 822651844), F(69997945, 29380423)]]

DOPRI5 = ButcherTableau(
    name="dopri5",
    A=A,
    b=b,
    c=c,
    order=5,
    b_hat=b_hat,
    error_order=4,
    reference="Dormand & Prince (1980); HNW I, §II.5, Table 5.2; dense output: "
              "Shampine (1986) via Hairer's dopri5.f",
    dense=hairer_dense_output(b, D, order=4),
)
