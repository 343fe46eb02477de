"""Heun–Euler 2(1): Heun's method with Euler embedded (the simplest adaptive pair).

    0 |
    1 |  1
    --+----------
      | 1/2  1/2     b,  order 2 (propagated)
      |  1    0      b̂,  order 1 (explicit Euler)
"""

from fractions import Fraction as F

from refnode.tableau import ButcherTableau

HEUN_EULER = ButcherTableau(
    name="heun_euler",
    A=[[],
       [F(1)]],
    b=[F(1, 2), F(1, 2)],
    b_hat=[F(1), F(0)],
    c=[F(0), F(1)],
    order=2,
    error_order=1,
    reference="Heun's method (HNW I, §II.1, eq. (1.4)) with forward Euler embedded",
)
