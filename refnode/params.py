"""Parameter pytrees: an array, or tuples/lists/dicts of them, nested.

``theta`` keeps whatever structure the user gives it, and every gradient w.r.t. theta
comes back in that same structure. These helpers are the only place that walks the
structure; solvers and adjoints call them and never index into theta themselves.
"""

import numpy as np

from .backend import array_module


def tree_map(fn, tree, *rest):
    """Apply ``fn`` leaf-wise to ``tree`` (and the matching leaves of ``rest``)."""
    if isinstance(tree, dict):
        return {k: tree_map(fn, tree[k], *[r[k] for r in rest]) for k in tree}
    if isinstance(tree, (list, tuple)):
        items = [tree_map(fn, *children) for children in zip(tree, *rest, strict=True)]
        if hasattr(tree, "_fields"):  # a NamedTuple, e.g. the adjoint's AugmentedState
            return type(tree)(*items)
        return type(tree)(items)
    return fn(tree, *rest)


def tree_leaves(tree):
    """The arrays of ``tree`` in a fixed order (dict keys in insertion order)."""
    if isinstance(tree, dict):
        return [leaf for k in tree for leaf in tree_leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [leaf for x in tree for leaf in tree_leaves(x)]
    return [tree]


def tree_zeros_like(tree):
    """A tree of zeros with the shapes and dtypes of ``tree``."""
    return tree_map(lambda x: array_module(x).zeros_like(x), tree)


def tree_add(x, y):
    """Leaf-wise x + y (new arrays; nothing is written in place)."""
    return tree_map(lambda a, b: a + b, x, y)


def tree_scale(alpha, x):
    """Leaf-wise alpha * x."""
    return tree_map(lambda a: alpha * a, x)


def tree_axpy(alpha, x, y):
    """Leaf-wise alpha * x + y."""
    return tree_map(lambda a, b: alpha * a + b, x, y)


def tree_vdot(x, y):
    """Σ over leaves of the inner products <x, y>."""
    return sum(array_module(a).sum(a * b) for a, b in zip(tree_leaves(x), tree_leaves(y)))


def copy_tree(tree):
    """A copy of every array leaf (Python numbers are immutable and kept).

    What a gradient closure keeps must not change when the caller later writes into the
    arrays it passed.
    """
    return tree_map(copy_leaf, tree)


def copy_leaf(x):
    """A new array equal to ``x`` (any backend); ``x`` itself if it is not an array."""
    if not hasattr(x, "shape") or type(x).__module__.startswith("autograd"):
        return x                        # a number, or a traced value (never written into)
    if hasattr(x, "copy"):
        return x.copy()
    return array_module(x).asarray(x, copy=True)


def flatten(tree):
    """Concatenate the leaves of ``tree`` into one vector.

    Returns
    -------
    vector : ndarray, shape (P,)
    unflatten : callable
        ``unflatten(vector)`` rebuilds a tree of the same structure, shapes and dtypes.
    """
    leaves = tree_leaves(tree)
    xp = array_module(*leaves) if leaves else np
    shapes = [np.shape(leaf) for leaf in leaves]
    sizes = [int(np.prod(s)) for s in shapes]
    vector = xp.concatenate([xp.reshape(xp.asarray(leaf), (-1,)) for leaf in leaves]) if leaves else np.zeros(0)

    def unflatten(v):
        pieces, start = [], 0
        for shape, size in zip(shapes, sizes):
            pieces.append(array_module(v).reshape(v[start:start + size], shape))
            start += size
        it = iter(pieces)
        return tree_map(lambda _: next(it), tree)

    return vector, unflatten


class Packing:
    """Where each leaf of a tree lies in one vector that holds them all, end to end.

    ``pack(tree)`` copies the leaves of a tree shaped like the template into that vector;
    ``unpack(y)`` gives the tree back, its leaves views into y. y may carry leading axes,
    y of shape (n, size) unpacking to leaves of shape (n, *leaf shape): the rows of a
    solution. Unlike :func:`flatten`, the layout is computed once and packing keeps the
    leaves' dtype (the caller makes sure they share one). The template's structure is
    read once too (:func:`structure`), so that each call walks only the containers.
    """

    def __init__(self, template):
        self.template, self.structure = template, structure(template)
        self.shapes = [np.shape(leaf) for leaf in tree_leaves(template)]
        self.sizes = [int(np.prod(shape, dtype=np.int64)) for shape in self.shapes]
        self.ends = np.cumsum([0] + self.sizes).tolist()

    def pack(self, tree):
        leaves = []
        gather(self.structure, tree, leaves)       # in the template's order, dicts by key
        return array_module(*leaves).concatenate([leaf.reshape(-1) for leaf in leaves])

    def unpack(self, y):
        lead = tuple(np.shape(y)[:-1])
        pieces = []
        for shape, start, stop in zip(self.shapes, self.ends[:-1], self.ends[1:]):
            piece = y[..., start:stop]
            pieces.append(piece if piece.shape == lead + shape else piece.reshape(lead + shape))
        return build(self.structure, iter(pieces))


#: A leaf in a :func:`structure`.
LEAF = None


def structure(tree):
    """The containers of ``tree`` without its leaves: ``LEAF`` for a leaf, else
    (container type, dict keys or None, [structure of each child])."""
    if isinstance(tree, dict):
        return (type(tree), list(tree), [structure(tree[k]) for k in tree])
    if isinstance(tree, (list, tuple)):
        return (type(tree), None, [structure(x) for x in tree])
    return LEAF


def gather(struct, tree, leaves):
    """Append the leaves of ``tree`` to ``leaves`` in the order of ``struct`` (a dict's
    entries by the structure's keys)."""
    if struct is LEAF:
        leaves.append(tree)
        return
    kind, keys, children = struct
    items = [tree[k] for k in keys] if keys is not None else tree
    for child, item in zip(children, items, strict=True):
        gather(child, item, leaves)


def build(struct, leaves):
    """The tree of ``struct`` with the leaves taken in order from the iterator ``leaves``."""
    if struct is LEAF:
        return next(leaves)
    kind, keys, children = struct
    items = [build(child, leaves) for child in children]
    if keys is not None:
        return kind(zip(keys, items))
    return kind(*items) if hasattr(kind, "_fields") else kind(items)


def as_plain(tree):
    """``tree`` with every tuple or list subclass (a NamedTuple) as a plain tuple or list,
    and every dict subclass as a dict: the containers autograd differentiates."""
    if isinstance(tree, dict):
        return {k: as_plain(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return (list if isinstance(tree, list) else tuple)(as_plain(x) for x in tree)
    return tree


def like(template, tree):
    """The leaves of ``tree`` in the containers of ``template`` (undoes :func:`as_plain`)."""
    return tree_map(lambda _, leaf: leaf, template, tree)
