"""A tableau's declared orders are checked when it is built (refnode.order_conditions).

test_tableau.py checks every built-in method to its full order with the same trees; here
the construction-time check: wrong declarations fail fast with a clear InputError.
"""

import re
from fractions import Fraction as F

import numpy as np
import pytest

from refnode import odeint
from refnode.errors import InputError
from refnode.methods import METHODS
from refnode.methods.dop853 import CombinedEstimateTableau
from refnode.order_conditions import CHECKED_ORDER, check_declared_orders, tree_name, trees
from refnode.tableau import ButcherTableau

pytestmark = pytest.mark.tableau

HEUN_EULER = dict(name="he", A=[[], [F(1)]], b=[F(1, 2), F(1, 2)], c=[F(0), F(1)],
                  b_hat=[F(1), F(0)])
RK4 = dict(name="rk4x", A=[[], [F(1, 2)], [F(0), F(1, 2)], [F(0), F(0), F(1)]],
           b=[F(1, 6), F(1, 3), F(1, 3), F(1, 6)], c=[F(0), F(1, 2), F(1, 2), F(1)])


def test_heun_euler_claiming_order_5_4_is_rejected():
    with pytest.raises(InputError, match=r"order must be an int from 1 to the number of stages 2"):
        ButcherTableau(**HEUN_EULER, order=5, error_order=4)


def test_heun_euler_claiming_order_2_2_names_the_failed_condition():
    with pytest.raises(InputError) as info:
        ButcherTableau(**HEUN_EULER, order=2, error_order=2)
    message = str(info.value)
    assert "tableau 'he': b_hat does not have its declared order 2" in message
    assert "order-2 condition of the tree [•]" in message and "= 1/2, gives 0" in message
    assert "order 1 at most" in message


def test_rk4_with_swapped_weights_fails_at_order_3():
    # b_1, b_4 swapped with b_2, b_3: the row sums, sum(b) = 1 and sum(b c) = 1/2 still hold,
    # sum(b c^2) = 5/12 is not 1/3.
    wrong = dict(RK4, b=[F(1, 3), F(1, 6), F(1, 6), F(1, 3)])
    with pytest.raises(InputError, match=r"order-3 condition of the tree \[• •\].*gives 5/12"):
        ButcherTableau(**wrong, order=4)
    ButcherTableau(**RK4, order=4)                                     # the right one builds


def test_rk4_claiming_order_5_fails_on_the_first_fifth_order_tree():
    rk4 = dict(RK4, A=RK4["A"] + [[F(1, 6), F(1, 3), F(1, 3), F(1, 6)]], c=RK4["c"] + [F(1)],
               b=RK4["b"] + [F(0)])  # a fifth, unused stage, so that order 5 <= s is allowed
    first = re.escape(f"order-5 condition of the tree {tree_name(trees(5)[0])}")
    with pytest.raises(InputError, match=first):
        ButcherTableau(**rk4, order=5)


def test_float_tables_are_checked_to_rounding():
    rk4 = {k: [[float(x) for x in row] for row in v] if k == "A" else
           [float(x) for x in v] if k in ("b", "c") else v for k, v in RK4.items()}
    ButcherTableau(**rk4, order=4)
    rk4["b"] = [1 / 6 + 1e-9, 1 / 3 - 1e-9, 1 / 3, 1 / 6]               # sum still 1
    with pytest.raises(InputError, match="order-2 condition"):
        ButcherTableau(**rk4, order=4)


def test_b_hat_equal_to_b_is_a_clear_error_not_an_index_error():
    same = dict(HEUN_EULER, b_hat=[F(1, 2), F(1, 2)])
    with pytest.raises(InputError, match="b_hat equals b, so the error estimate"):
        ButcherTableau(**same, order=2, error_order=1)


@pytest.mark.parametrize("order", [0, -1, 2.0, "2", True, None])
def test_order_must_be_a_positive_int(order):
    with pytest.raises(InputError, match="order must be an int"):
        ButcherTableau(**HEUN_EULER, order=order, error_order=1)


def test_b_hat3_is_checked_to_order_3():
    dop853 = METHODS["dop853"]
    fields = dict(name="d", A=dop853.A, b=dop853.b, c=dop853.c, order=8, b_hat=dop853.b_hat,
                  error_order=5, b_hat3=dop853.b)
    CombinedEstimateTableau(**fields)    # b has order 8 >= 3
    wrong = list(dop853.b_hat3)
    wrong[0], wrong[-1] = wrong[-1], wrong[0]
    with pytest.raises(InputError, match="b_hat3 does not have its declared order 3"):
        CombinedEstimateTableau(**dict(fields, b_hat3=tuple(wrong)))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_built_in_method_passes_the_construction_check(name):
    check_declared_orders(METHODS[name])


def test_the_check_stops_at_order_5():
    assert CHECKED_ORDER == 5 and sum(len(trees(n)) for n in range(1, 6)) == 17


def test_a_wrong_tableau_fails_before_any_solve():
    calls = []

    def f(t, z, theta):
        calls.append(t)
        return -z

    with pytest.raises(InputError):
        odeint(f, np.ones(2), np.array([0.0, 1.0]),
               method=ButcherTableau(**HEUN_EULER, order=3, error_order=1))
    assert calls == []
