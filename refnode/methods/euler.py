"""Explicit (forward) Euler, order 1 (HNW I §I.7; Butcher 2016, §23).

    0 |
    --+---
      | 1
"""

from fractions import Fraction as F

from refnode.tableau import ButcherTableau

EULER = ButcherTableau(
    name="euler",
    A=[[]],
    b=[F(1)],
    c=[F(0)],
    order=1,
    reference="Euler (1768); HNW I, §I.7",
)
