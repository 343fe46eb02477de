"""The classical fourth-order Runge–Kutta method (Kutta 1901; HNW I §II.1, Table 1.2, left).

      0 |
    1/2 | 1/2
    1/2 |  0   1/2
      1 |  0    0    1
    ----+--------------------
        | 1/6  1/3  1/3  1/6
"""

from fractions import Fraction as F

from refnode.tableau import ButcherTableau

RK4 = ButcherTableau(
    name="rk4",
    A=[[],
       [F(1, 2)],
       [F(0),    F(1, 2)],
       [F(0),    F(0),    F(1)]],
    b=[F(1, 6), F(1, 3), F(1, 3), F(1, 6)],
    c=[F(0), F(1, 2), F(1, 2), F(1)],
    order=4,
    reference="Kutta (1901); HNW I, §II.1, Table 1.2 (left)",
)
