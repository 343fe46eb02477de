"""Explicit midpoint rule (Runge 1895), order 2 (HNW I §II.1, Table 1.1, left).

      0 |
    1/2 | 1/2
    ----+---------
        |  0    1
"""

from fractions import Fraction as F

from refnode.tableau import ButcherTableau

MIDPOINT = ButcherTableau(
    name="midpoint",
    A=[[],
       [F(1, 2)]],
    b=[F(0), F(1)],
    c=[F(0), F(1, 2)],
    order=2,
    reference="Runge (1895); HNW I, §II.1, eq. (1.3) and Table 1.1",
)
