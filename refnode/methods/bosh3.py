"""Bogacki–Shampine 3(2), FSAL, propagating the 3rd-order solution.

P. Bogacki and L. F. Shampine, A 3(2) pair of Runge-Kutta formulas, Appl. Math. Lett.
2 (1989) 321-325 (the pair behind MATLAB's ode23 and SciPy's RK23).

      0 |
    1/2 | 1/2
    3/4 |  0   3/4
      1 | 2/9  1/3  4/9
    ----+--------------------
        | 2/9  1/3  4/9   0      b,  order 3 (propagated)
        | 7/24 1/4  1/3  1/8     b̂,  order 2

The last row of A equals b, so the 4th stage is f(t + h, y_1): FSAL.
"""

from fractions import Fraction as F

from refnode.tableau import ButcherTableau

BOSH3 = ButcherTableau(
    name="bosh3",
    A=[[],
       [F(1, 2)],
       [F(0),    F(3, 4)],
       [F(2, 9), F(1, 3), F(4, 9)]],
    b=[F(2, 9), F(1, 3), F(4, 9), F(0)],
    b_hat=[F(7, 24), F(1, 4), F(1, 3), F(1, 8)],
    c=[F(0), F(1, 2), F(3, 4), F(1)],
    order=3,
    error_order=2,
    reference="Bogacki & Shampine, Appl. Math. Lett. 2 (1989) 321-325",
)
