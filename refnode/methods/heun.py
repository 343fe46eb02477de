"""Heun's method (explicit trapezoidal rule), order 2 (HNW I §II.1, eq. (1.4)).

    0 |
    1 |  1
    --+----------
      | 1/2  1/2
"""

from fractions import Fraction as F

from refnode.tableau import ButcherTableau

HEUN = ButcherTableau(
    name="heun",
    A=[[],
       [F(1)]],
    b=[F(1, 2), F(1, 2)],
    c=[F(0), F(1)],
    order=2,
    reference="Heun (1900); HNW I, §II.1, eq. (1.4) and Table 1.1",
)
