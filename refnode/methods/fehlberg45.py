"""Runge–Kutta–Fehlberg 4(5) (RKF45), propagating the 4th-order solution.

E. Fehlberg, Low-order classical Runge-Kutta formulas with stepsize control and their
application to some heat transfer problems, NASA TR R-315 (1969); see also HNW I, §II.4.
As in the classic RKF45 code, the step advances with the 4th-order weights b and the
5th-order weights b̂ only estimate the error (no local extrapolation), so ``order = 4``
and ``error_order = 5``.

       0 |
     1/4 |       1/4
     3/8 |      3/32       9/32
   12/13 | 1932/2197 -7200/2197  7296/2197
       1 |   439/216         -8   3680/513   -845/4104
     1/2 |     -8/27          2 -3544/2565   1859/4104  -11/40
    -----+------------------------------------------------------------
         |   25/216          0  1408/2565   2197/4104   -1/5     0     b,  order 4
         |   16/135          0 6656/12825 28561/56430  -9/50  2/55     b̂,  order 5
"""

from fractions import Fraction as F

from refnode.tableau import ButcherTableau

FEHLBERG45 = ButcherTableau(
    name="fehlberg45",
    A=[[],
       [F(1, 4)],
       [F(3, 32),      F(9, 32)],
       [F(1932, 2197), F(-7200, 2197), F(7296, 2197)],
       [F(439, 216),   F(-8),          F(3680, 513),   F(-845, 4104)],
       [F(-8, 27),     F(2),           F(-3544, 2565), F(1859, 4104), F(-11, 40)]],
    b=[F(25, 216), F(0), F(1408, 2565), F(2197, 4104), F(-1, 5), F(0)],
    b_hat=[F(16, 135), F(0), F(6656, 12825), F(28561, 56430), F(-9, 50), F(2, 55)],
    c=[F(0), F(1, 4), F(3, 8), F(12, 13), F(1), F(1, 2)],
    order=4,
    error_order=5,
    reference="Fehlberg, NASA TR R-315 (1969), the 4(5) pair; HNW I, §II.4",
)
