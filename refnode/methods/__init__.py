"""Every Runge–Kutta method refnode knows, by name.

Each module holds one method as a :class:`~refnode.tableau.ButcherTableau` (methods are
data; the drivers in ``rk_step``/``odeint`` are the code that runs them).

    >>> from refnode.methods import get_method
    >>> get_method("dopri5").order
    5
"""

from refnode.errors import InputError
from refnode.tableau import ButcherTableau

from .bosh3 import BOSH3
from .cash_karp import CASH_KARP
from .dop853 import DOP853
from .dopri5 import DOPRI5
from .euler import EULER
from .fehlberg45 import FEHLBERG45
from .heun import HEUN
from .heun_euler import HEUN_EULER
from .midpoint import MIDPOINT
from .ralston import RALSTON
from .rk4 import RK4
from .rk38 import RK38
from .tsit5 import TSIT5

#: Name -> tableau, for ``method=`` arguments.
METHODS = {t.name: t for t in (
    EULER, MIDPOINT, HEUN, RALSTON, RK4, RK38,
    HEUN_EULER, BOSH3, FEHLBERG45, CASH_KARP, DOPRI5, TSIT5, DOP853,
)}

#: Methods without an error estimate: fixed step only.
FIXED_METHODS = tuple(name for name, t in METHODS.items() if not t.adaptive)

#: Embedded pairs: usable with adaptive step-size control.
ADAPTIVE_METHODS = tuple(name for name, t in METHODS.items() if t.adaptive)


def get_method(method):
    """Return the tableau for ``method``.

    Parameters
    ----------
    method : str or ButcherTableau
        A name in :data:`METHODS` (e.g. ``"dopri5"``), or a tableau, returned as-is.

    Returns
    -------
    ButcherTableau

    Raises
    ------
    InputError
        If ``method`` is neither a known name nor a tableau.
    """
    if isinstance(method, ButcherTableau):
        return method
    if isinstance(method, str) and method in METHODS:
        return METHODS[method]
    raise InputError(
        f"unknown method {method!r}; use one of {', '.join(sorted(METHODS))}, "
        "or pass a refnode.tableau.ButcherTableau"
    )


__all__ = [
    "METHODS", "FIXED_METHODS", "ADAPTIVE_METHODS", "get_method",
    "EULER", "MIDPOINT", "HEUN", "RALSTON", "RK4", "RK38",
    "HEUN_EULER", "BOSH3", "FEHLBERG45", "CASH_KARP", "DOPRI5", "TSIT5", "DOP853",
]
