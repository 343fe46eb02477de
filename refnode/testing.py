"""Gradient checking: the dot-product test, central differences, comparison tables.

These are the tools the tests (and course autograders) use to decide whether a
vector-Jacobian product is right, and the harness for comparing the gradients of
several methods (adjoint, discrete adjoint, autograd, another library) on one problem.

The dot-product test. For ``y = fun(x)`` with Jacobian ``J``, a VJP returns ``Jᵀg``.
For random ``g`` and ``v`` the identity ``⟨g, J v⟩ = ⟨Jᵀg, v⟩`` must hold; the left side
is measured by central differences, so no second implementation is needed::

    ⟨g, J v⟩ ≈ ⟨g, (fun(x + ε v) − fun(x − ε v)) / 2ε⟩          error O(ε²) + O(u/ε)

With ε = 1e-6 in float64 (unit roundoff u ≈ 1.1e-16) both error terms are about 1e-10
relative, so a tolerance of 1e-6 separates a correct VJP from a wrong one by orders of
magnitude. Everything here works on pytrees: arrays, or tuples/lists/dicts of them.
"""

import inspect
from collections import namedtuple

import numpy as np

from .backend import array_module, to_float, to_numpy
from .errors import InputError, RefnodeError, describe_call_error, shape_hint
from .params import tree_axpy, tree_leaves, tree_map, tree_vdot

# Arguments with at most this many scalars get an entry-by-entry check on failure
# (one pair of function evaluations per scalar), which points at the worst index.
ENTRYWISE_MAX_SIZE = 64


def relative_error(x, y, scale=None):
    """max|x − y| / scale over all leaves of two pytrees, scale = max|y| by default.

    0 when x equals y; inf when any difference is not finite (a NaN never passes as a
    small error) or when the scale is 0 and x differs from y.

    Parameters
    ----------
    x, y : pytree of arrays
        Same structure and shapes; ``y`` is the reference.
    scale : float, optional
        The size to measure the difference against (``refnode verify`` scales each ∂L/∂t_i
        by the whole time gradient's max).
    """
    diffs = [np.abs(np.asarray(to_numpy(a), dtype=np.float64) - np.asarray(to_numpy(b), dtype=np.float64))
             for a, b in zip(tree_leaves(x), tree_leaves(y))]
    if any(d.size and not np.all(np.isfinite(d)) for d in diffs):
        return float("inf")
    top = max((float(np.max(d, initial=0.0)) for d in diffs), default=0.0)
    if scale is None:
        scale = max((float(np.max(np.abs(to_numpy(b)), initial=0.0)) for b in tree_leaves(y)),
                    default=0.0)
    if top == 0.0:
        return 0.0
    return top / scale if scale > 0.0 else float("inf")


def central_difference(fun, args, direction, eps=1e-6):
    """Directional derivative J·v of ``fun`` at ``args`` by central differences.

    ``(fun(args + ε v) − fun(args − ε v)) / 2ε``, error O(ε²) + O(u/ε).

    Parameters
    ----------
    fun : callable
        Takes one pytree (same structure as ``args``); returns an array or pytree.
        To differentiate ``f(*args)`` pass ``lambda a: f(*a)``.
    args, direction : pytree of arrays
        The point and the direction ``v``, with the same structure and shapes.
    eps : float
        The step ε.

    Returns
    -------
    pytree, structure of ``fun``'s output
    """
    y_plus = fun(tree_axpy(eps, direction, args))
    y_minus = fun(tree_axpy(-eps, direction, args))
    return tree_map(lambda p, m: (p - m) / (2.0 * eps), y_plus, y_minus)


def leaf_paths(tree, prefix=""):
    """(path, leaf) pairs in :func:`refnode.params.tree_leaves` order, e.g. ``theta[0]['W']``."""
    if isinstance(tree, dict):
        pairs = []
        for k in tree:
            pairs += leaf_paths(tree[k], f"{prefix}[{k!r}]" if prefix else str(k))
        return pairs
    if isinstance(tree, (list, tuple)):
        return [p for i, x in enumerate(tree) for p in leaf_paths(x, f"{prefix}[{i}]")]
    return [(prefix or "value", tree)]


# ------------------------------------------------------------------------- check_vjp

VJPCheckReport = namedtuple("VJPCheckReport", "expected got abs_err rel_err eps names")
VJPCheckReport.__doc__ = """A passing :func:`check_vjp`: ⟨g, J v⟩ (expected) vs Σ⟨vjp_i, v_i⟩ (got)."""


def check_vjp(fun, vjp, args, *, cotangent=None, eps=1e-6, rtol=1e-6, atol=1e-8, seed=0,
              names=None):
    """The dot-product test: ⟨g, J v⟩ (central differences) == Σ_i ⟨vjp(g, *args)_i, v_i⟩.

    Parameters
    ----------
    fun : callable
        ``fun(*args) -> y``, an array.
    vjp : callable
        ``vjp(g, *args) -> tuple``: one gradient per argument, each with the structure
        and shapes of its argument (``g`` has the shape of ``y``).
    args : tuple
        The point; each entry a float64 array (or Python float) or a pytree of them.
    cotangent : array, optional
        ``g``; standard normal (from ``seed``) if not given.
    eps, rtol, atol : float
        Finite-difference step; pass if ``|got − expected| <= atol + rtol·|expected|``.
    seed : int
        Seeds ``g`` and the direction ``v``.
    names : sequence of str, optional
        Argument names for messages; default: ``fun``'s parameter names.

    Returns
    -------
    VJPCheckReport

    Raises
    ------
    AssertionError
        Naming the argument (and, for small ones, the entry) that fails, with a hint.
    InputError
        If an argument is not float64.
    """
    __tracebackhide__ = True           # pytest shows the failure, not this function's source
    args = tuple(args)
    names = _argument_names(fun, args, names)
    _check_float64(args, names)
    rng = np.random.default_rng(seed)
    y = fun(*args)
    g = _random_like(rng, y) if cotangent is None else cotangent
    grads = _call_vjp(vjp, g, args, names)
    _check_structure(grads, args, names)
    v = tuple(_random_like(rng, a) for a in args)
    expected = _directional(fun, args, v, g, eps)
    got = to_float(tree_vdot(grads, v))
    abs_err = abs(got - expected)
    rel_err = abs_err / abs(expected) if expected != 0.0 else (0.0 if abs_err == 0.0 else float("inf"))
    if abs_err > atol + rtol * abs(expected):
        raise AssertionError(_failure_message(fun, args, grads, g, v, names, expected, got,
                                              eps, rtol, atol))
    return VJPCheckReport(expected, got, abs_err, rel_err, eps, tuple(names))


def _call_vjp(vjp, g, args, names):
    """vjp(g, *args); an exception becomes an AssertionError saying where it was raised."""
    __tracebackhide__ = True
    try:
        return vjp(g, *args)
    except RefnodeError:
        raise                          # refnode's own check of the VJP already says what is wrong
    except Exception as err:
        call = f"vjp(g, {', '.join(names)})"
        raise AssertionError(describe_call_error(
            err, call, f"the VJP takes the cotangent g and then the {len(args)} arguments "
                       f"({', '.join(names)})")) from err


def _argument_names(fun, args, names):
    if names is not None:
        if len(names) != len(args):
            raise ValueError(f"names has {len(names)} entries for {len(args)} arguments")
        return list(names)
    try:
        params = [p.name for p in inspect.signature(fun).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return params[:len(args)] if len(params) >= len(args) else [f"args[{i}]" for i in range(len(args))]


def _check_float64(args, names):
    """Central differences with ε = 1e-6 need float64: in float32, u/ε ≈ 0.1 (no digits left)."""
    for name, arg in zip(names, args):
        for path, leaf in leaf_paths(arg, name):
            dtype = np.asarray(to_numpy(leaf)).dtype
            if dtype != np.float64:
                raise InputError(f"check_vjp needs float64 arguments; '{path}' has dtype {dtype}. "
                                 "Cast it with .astype(numpy.float64) (central differences in "
                                 "lower precision cannot resolve a 1e-6 tolerance).")


def _random_like(rng, tree):
    """A standard normal pytree with the structure, shapes and backend of ``tree``."""
    def draw(leaf):
        xp = array_module(leaf)
        return xp.asarray(rng.standard_normal(np.shape(leaf)), dtype=xp.asarray(leaf).dtype)
    return tree_map(draw, tree)


def _directional(fun, args, v, g, eps):
    """⟨g, J v⟩ with J v by central differences."""
    jv = central_difference(lambda a: fun(*a), args, v, eps)
    return to_float(tree_vdot(g, jv))


def _check_structure(grads, args, names):
    """Each gradient must have the structure and shapes of its argument."""
    __tracebackhide__ = True
    if not isinstance(grads, (tuple, list)) or len(grads) != len(args):
        n = len(grads) if isinstance(grads, (tuple, list)) else "not a tuple"
        raise AssertionError(f"vjp must return one gradient per argument ({len(args)}: "
                             f"{', '.join(names)}); got {n}.")
    for name, grad, arg in zip(names, grads, args):
        grad_paths, arg_paths = leaf_paths(grad, name), leaf_paths(arg, name)
        if [p for p, _ in grad_paths] != [p for p, _ in arg_paths]:
            raise AssertionError(f"gradient w.r.t. '{name}' has leaves {[p for p, _ in grad_paths]}; "
                                 f"the argument has {[p for p, _ in arg_paths]}.")
        for (path, dg), (_, a) in zip(grad_paths, arg_paths):
            if np.shape(dg) != np.shape(a):
                raise AssertionError(f"gradient w.r.t. '{path}' has shape {np.shape(dg)}; "
                                     f"the argument has shape {np.shape(a)}."
                                     f"{shape_hint(np.shape(dg), np.shape(a))}")


def _failure_message(fun, args, grads, g, v, names, expected, got, eps, rtol, atol):
    lines = ["check_vjp: the dot-product test failed.",
             "  reference: central differences, ⟨g, (fun(x + εv) − fun(x − εv)) / 2ε⟩, "
             f"ε = {eps:g}",
             f"  expected ⟨g, J v⟩ = {expected:.10g}; got Σ⟨vjp_i, v_i⟩ = {got:.10g} "
             f"(tolerance {atol:g} + {rtol:g}·|expected|)",
             "  argument by argument (direction v in that array only):"]
    for i, name in enumerate(names):
        pairs = zip(leaf_paths(v[i], name), leaf_paths(grads[i], name))
        for k, ((path, v_k), (_, grad_k)) in enumerate(pairs):
            exp_k = _directional(fun, args, _only_leaf(args, i, k, v_k), g, eps)
            got_k = to_float(array_module(v_k).sum(grad_k * v_k))
            bad = abs(got_k - exp_k) > atol + rtol * abs(exp_k)
            lines.append(f"    {path:>12}: expected {exp_k:.10g}, got {got_k:.10g}"
                         + ("   <-- wrong" if bad else ""))
            if bad:
                lines.append(f"      hint: {_hint(exp_k, got_k)}")
                lines += _entrywise_report(fun, args, grad_k, g, path, i, k, eps)
    return "\n".join(lines)


def _hint(expected, got):
    if got == 0.0:
        return "the VJP returns zero here; is this gradient computed at all?"
    hint = factor_hint(got / expected) if expected != 0.0 else None
    if hint is not None:
        return hint + "."
    return ("check the derivation term by term; a transposed weight or a missing "
            "factor shows in the worst entry (reported for small arrays).")


def factor_hint(factor, batch=None, rtol=1e-3):
    """The likely cause of a gradient off by a constant factor, got ≈ factor · expected.

    Shared by :func:`check_vjp` and ``refnode verify``. Recognised: −1 (a sign error),
    1/n and n for an integer n > 1 (a mean where a sum belongs, or a sum where a mean
    does; named as the batch when n equals ``batch``).

    Parameters
    ----------
    factor : float
        got / expected (a least-squares fit for arrays).
    batch : int, optional
        The batch size B, when the quantity belongs to a batched problem.
    rtol : float
        How close to −1, n or 1/n the factor must be.

    Returns
    -------
    str or None
        A phrase such as "got ≈ −expected: a sign error", or None when the factor
        matches none of these.
    """
    if abs(factor + 1.0) < rtol:
        return "got ≈ −expected: a sign error"
    if factor == 0.0:
        return None
    for n, shrunk in ((1.0 / factor, True), (factor, False)):
        k = round(n)
        if k > 1 and abs(n - k) < rtol * k:
            if k == batch:
                return (f"got ≈ expected {'/' if shrunk else '×'} {k}, the batch size: a "
                        + ("mean over the batch where the sum belongs" if shrunk else
                           "sum over the batch where one sample's value (or a mean) belongs"))
            if shrunk:
                return (f"got ≈ expected / {k}: a missing sum (over a batch axis of that "
                        "size?) or a mean where a sum belongs")
            return (f"got ≈ {k} × expected: a sum (over an axis of that size?) where a mean "
                    "belongs")
    return None


def is_transpose(got, expected, rtol=1e-5):
    """Whether the 2-D array ``got`` equals ``expected`` transposed (and not ``expected``)."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if got.ndim != 2 or got.shape != expected.T.shape:
        return False
    close = lambda a, b: relative_error(a, b) <= rtol  # noqa: E731
    return close(got, expected.T) and not (got.shape == expected.shape and close(got, expected))


def _entrywise_report(fun, args, grad, g, path, i, k, eps):
    """For a small leaf: ⟨g, J e_j⟩ for every entry j, the worst entry, a pattern hint."""
    leaf = tree_leaves(args[i])[k]
    shape = np.shape(leaf)
    if np.size(leaf) > ENTRYWISE_MAX_SIZE:
        return [f"      ({path} has more than {ENTRYWISE_MAX_SIZE} entries: no entry-by-entry check)"]
    expected = np.reshape([_directional(fun, args, _only_leaf(args, i, k, _unit(leaf, j)), g, eps)
                           for j in np.ndindex(shape)], shape)
    got = np.asarray(to_numpy(grad), dtype=float)
    err = np.abs(got - expected)
    j = np.unravel_index(int(np.argmax(err)), shape) if shape else ()
    lines = [f"      worst entry: {path}{[int(n) for n in j] if shape else ''}: "
             f"expected {expected[j]:.10g}, got {got[j]:.10g} (abs err {err[j]:.3g})"]
    if got.shape == expected.shape and is_transpose(got, expected):
        lines.append(f"      hint: the gradient w.r.t. {path} equals the expected one transposed.")
    return lines


def _unit(leaf, j):
    """An array like ``leaf``: 1 at index ``j``, 0 elsewhere (built without in-place writes)."""
    shape = np.shape(leaf)
    flat = np.ravel_multi_index(j, shape) if shape else 0
    e = np.reshape(np.arange(int(np.prod(shape))) == flat, shape)
    xp = array_module(leaf)
    return xp.asarray(e, dtype=xp.asarray(leaf).dtype)


def _only_leaf(args, i, k, value):
    """A direction like ``args``: zero except leaf ``k`` of argument ``i``, which is ``value``."""
    counter = iter(range(len(tree_leaves(args[i]))))
    pick = lambda leaf: value if next(counter) == k else 0.0 * leaf  # noqa: E731
    return tuple(tree_map(pick, a) if n == i else tree_map(lambda x: 0.0 * x, a)
                 for n, a in enumerate(args))


# ------------------------------------------------------------------ compare_gradients

GradientRow = namedtuple("GradientRow", "method quantity max_abs_err rel_err passed worst hint",
                         defaults=("",))
GradientRow.__doc__ = """One line of a :class:`GradientTable`; ``worst`` = (index, got, expected);
``hint``: a likely cause when the whole array shows one (:func:`array_hint`)."""


class GradientTable:
    """The rows of :func:`compare_gradients`; ``str(table)`` is an aligned table."""

    HEADER = ("method", "quantity", "max abs err", "rel err", "pass")

    def __init__(self, rows, reference, rtol, atol):
        self.rows, self.reference, self.rtol, self.atol = list(rows), reference, rtol, atol

    @property
    def passed(self):
        return all(row.passed for row in self.rows)

    @property
    def failures(self):
        return [row for row in self.rows if not row.passed]

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __str__(self):
        cells = [self.HEADER] + [(r.method, r.quantity, f"{r.max_abs_err:.3e}", f"{r.rel_err:.3e}",
                                  "ok" if r.passed else "FAIL") for r in self.rows]
        widths = [max(len(row[k]) for row in cells) for k in range(len(self.HEADER))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        title = (f"reference: {self.reference}; pass if max abs err <= "
                 f"{self.atol:g} + {self.rtol:g}·max|reference|")
        return title + "\n" + "\n".join(lines)

    def failure_message(self):
        lines = [f"gradients disagree with '{self.reference}':"]
        for r in self.failures:
            index, got, expected = r.worst
            lines.append(f"  {r.method}, {r.quantity}{index}: got {got!r}, expected {expected!r} "
                         f"(max abs err {r.max_abs_err:.3e}, rel err {r.rel_err:.3e})")
            if r.hint:
                lines.append(f"    hint: {r.hint}")
        return "\n".join(lines) + "\n" + str(self)


def compare_gradients(results, reference=None, rtol=1e-6, atol=1e-8, raise_on_failure=False):
    """Compare named gradient sets leaf by leaf against one of them.

    Parameters
    ----------
    results : dict of str -> pytree
        E.g. ``{"autograd": g1, "adjoint": g2, "finite differences": g3}``; every entry
        has the same structure and shapes (a dict at the top names the quantities).
    reference : str, optional
        The key compared against; default the first key of ``results``.
    rtol, atol : float
        A leaf passes if ``max|x − ref| <= atol + rtol·max|ref|``.
    raise_on_failure : bool
        Raise AssertionError naming method, quantity and worst index if any row fails.

    Returns
    -------
    GradientTable
        Rows (method, quantity, max_abs_err, rel_err, passed, worst) for each
        method other than the reference and each leaf.
    """
    if not results:
        raise ValueError("compare_gradients needs at least one gradient set")
    reference = next(iter(results)) if reference is None else reference
    __tracebackhide__ = True
    if reference not in results:
        raise ValueError(f"reference '{reference}' is not one of {list(results)}")
    ref_paths = leaf_paths(results[reference])
    rows = []
    for method, grads in results.items():
        if method == reference:
            continue
        paths = leaf_paths(grads)
        if [p for p, _ in paths] != [p for p, _ in ref_paths]:
            raise AssertionError(f"'{method}' has quantities {[p for p, _ in paths]}; "
                                 f"'{reference}' has {[p for p, _ in ref_paths]}")
        rows += [_compare_leaf(method, path, x, y, rtol, atol)
                 for (path, x), (_, y) in zip(paths, ref_paths)]
    table = GradientTable(rows, reference, rtol, atol)
    if raise_on_failure and not table.passed:
        raise AssertionError(table.failure_message())
    return table


def _compare_leaf(method, path, x, y, rtol, atol):
    x, y = np.asarray(to_numpy(x), dtype=float), np.asarray(to_numpy(y), dtype=float)
    if x.shape != y.shape:
        return GradientRow(method, path, float("inf"), float("inf"), False,
                           ("", f"shape {x.shape}", f"shape {y.shape}"))
    diff = np.abs(x - y)
    diff = np.where(np.isnan(diff), np.inf, diff)  # a NaN never passes
    max_abs = float(np.max(diff, initial=0.0))
    scale = float(np.max(np.abs(y), initial=0.0))
    if x.size == 0:
        return GradientRow(method, path, 0.0, 0.0, True, ("", None, None))
    index = np.unravel_index(int(np.argmax(diff)), x.shape)
    worst = (str([int(k) for k in index]) if x.ndim else "", float(x[index]), float(y[index]))
    rel = relative_error(x, y) if np.isfinite(max_abs) else float("inf")
    passed = max_abs <= atol + rtol * scale
    return GradientRow(method, path, max_abs, rel, passed, worst, "" if passed else array_hint(x, y))


def array_hint(got, expected):
    """A likely cause when ``got`` is a multiple of ``expected`` (sign, a missing sum over a
    batch) or its transpose; "" when no pattern fits. Float arrays of the same shape."""
    if not (np.all(np.isfinite(got)) and np.any(expected != 0.0)):
        return ""
    if not np.any(got != 0.0):
        return "the gradient is zero everywhere; is it computed at all?"
    c = float(np.sum(got * expected) / np.sum(got * got))          # expected ≈ c · got
    if np.allclose(c * got, expected, rtol=1e-6, atol=1e-12 * np.max(np.abs(expected))):
        hint = _hint(c, 1.0)
        return "" if hint.startswith("check the derivation") else hint
    if got.ndim == 2 and got.shape[::-1] == expected.shape and np.allclose(got.T, expected, rtol=1e-6):
        return "the gradient equals the expected one transposed."
    return ""
