"""Ralston's second-order method (minimum error bound among 2-stage order-2 methods).

      0 |
    2/3 | 2/3
    ----+----------
        | 1/4  3/4
"""

from fractions import Fraction as F

from refnode.tableau import ButcherTableau

RALSTON = ButcherTableau(
    name="ralston",
    A=[[],
       [F(2, 3)]],
    b=[F(1, 4), F(3, 4)],
    c=[F(0), F(2, 3)],
    order=2,
    reference="A. Ralston, Runge-Kutta methods with minimum error bounds, "
              "Math. Comp. 16 (1962) 431-437, the alpha_2 = 2/3 member",
)
