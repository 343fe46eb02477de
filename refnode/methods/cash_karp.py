"""Cash–Karp 5(4), propagating the 5th-order solution.

J. R. Cash and A. H. Karp, A variable order Runge-Kutta method for initial value
problems with rapidly varying right-hand sides, ACM TOMS 16 (1990) 201-222 (also
Numerical Recipes, 2nd ed., §16.2).

       0 |
     1/5 |         1/5
    3/10 |        3/40      9/40
     3/5 |        3/10     -9/10          6/5
       1 |      -11/54       5/2       -70/27        35/27
     7/8 | 1631/55296   175/512   575/13824  44275/110592   253/4096
    -----+----------------------------------------------------------------------
         |    37/378           0     250/621       125/594          0   512/1771   b, 5
         | 2825/27648          0 18575/48384   13525/55296 277/14336        1/4   b̂, 4
"""

from fractions import Fraction as F

from refnode.tableau import ButcherTableau

CASH_KARP = ButcherTableau(
    name="cash_karp",
    A=[[],
       [F(1, 5)],
       [F(3, 40),       F(9, 40)],
       [F(3, 10),       F(-9, 10),  F(6, 5)],
       [F(-11, 54),     F(5, 2),    F(-70, 27),    F(35, 27)],
       [F(1631, 55296), F(175, 512), F(575, 13824), F(44275, 110592), F(253, 4096)]],
    b=[F(37, 378), F(0), F(250, 621), F(125, 594), F(0), F(512, 1771)],
    b_hat=[F(2825, 27648), F(0), F(18575, 48384), F(13525, 55296), F(277, 14336), F(1, 4)],
    c=[F(0), F(1, 5), F(3, 10), F(3, 5), F(1), F(7, 8)],
    order=5,
    error_order=4,
    reference="Cash & Karp, ACM TOMS 16 (1990) 201-222",
)
