"""Kutta's 3/8 rule, order 4 (Kutta 1901; HNW I §II.1, Table 1.2, right).

      0 |
    1/3 |  1/3
    2/3 | -1/3   1
      1 |   1   -1    1
    ----+---------------------
        |  1/8  3/8  3/8  1/8
"""

from fractions import Fraction as F

from refnode.tableau import ButcherTableau

RK38 = ButcherTableau(
    name="rk38",
    A=[[],
       [F(1, 3)],
       [F(-1, 3), F(1)],
       [F(1),     F(-1), F(1)]],
    b=[F(1, 8), F(3, 8), F(3, 8), F(1, 8)],
    c=[F(0), F(1, 3), F(2, 3), F(1)],
    order=4,
    reference="Kutta (1901), the 3/8 rule; HNW I, §II.1, Table 1.2 (right)",
)
