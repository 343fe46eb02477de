"""Checkpoints: a pytree of arrays and scalars, written atomically to one ``.npz`` file.

A checkpoint holds whatever a training run needs to resume bit-exactly: parameters,
optimizer state (:mod:`refnode.optim` states are dicts of pytrees), the epoch, and the
``numpy.random.Generator`` that draws minibatches and noise.

File layout (a plain NumPy ``.npz``, readable with ``np.load(path, allow_pickle=False)``)::

    leaf_0, leaf_1, ...   the arrays of the tree, in tree order
    __format__            "refnode-checkpoint-1"
    __structure__         JSON: the tree's containers, scalars and generator states
    __metadata__          JSON: the caller's metadata dict

No pickles: containers are described in JSON and rebuilt by :func:`load_checkpoint`, so a
checkpoint from an untrusted source cannot run code. Writing goes to a temporary file in
the same directory, which then replaces the target in one ``os.replace``: a crash mid-write
leaves the previous checkpoint intact.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

from .backend import to_numpy
from .errors import InputError

FORMAT = "refnode-checkpoint-1"
_RESERVED = ("__format__", "__structure__", "__metadata__")


# --- tree <-> (JSON structure, named arrays) --------------------------------------------


def _is_array(x):
    """True for NumPy/CuPy arrays, autograd boxes and NumPy scalars (np.float64(1.0), ...)."""
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _encode(node, arrays):
    """JSON description of ``node``; its arrays are appended to ``arrays``."""
    if isinstance(node, np.random.Generator):
        bit_generator = node.bit_generator
        return {"kind": "generator", "bit_generator": type(bit_generator).__name__,
                "state": _json_safe(bit_generator.state)}
    if isinstance(node, dict):
        if not all(isinstance(k, str) for k in node):
            raise InputError(f"checkpoint dict keys must be str, got {list(node)!r}")
        return {"kind": "dict", "keys": list(node), "items": [_encode(v, arrays) for v in node.values()]}
    if isinstance(node, (list, tuple)):
        if hasattr(node, "_fields"):
            raise InputError(f"cannot store NamedTuple {type(node).__name__}; convert it to a dict")
        return {"kind": type(node).__name__, "items": [_encode(v, arrays) for v in node]}
    if _is_array(node):
        array = to_numpy(node)
        if array.dtype.hasobject:
            raise InputError("cannot store an object array (it would need a pickle); use numeric arrays")
        arrays.append(array)
        return {"kind": "scalar_array" if isinstance(node, np.generic) else "array", "index": len(arrays) - 1}
    if node is None or isinstance(node, (bool, int, float, str)):
        return {"kind": "value", "value": node}
    raise InputError(f"cannot store a {type(node).__name__} in a checkpoint; "
                     "use arrays, numbers, str, None, Generators, and dicts/lists/tuples of them")


def _decode(desc, arrays):
    """Rebuild the node described by ``desc``; ``arrays`` maps "leaf_<i>" to arrays."""
    kind = desc["kind"]
    if kind == "dict":
        return {k: _decode(v, arrays) for k, v in zip(desc["keys"], desc["items"])}
    if kind in ("list", "tuple"):
        items = [_decode(v, arrays) for v in desc["items"]]
        return items if kind == "list" else tuple(items)
    if kind == "array":
        return arrays[f"leaf_{desc['index']}"]
    if kind == "scalar_array":
        return arrays[f"leaf_{desc['index']}"][()]
    if kind == "value":
        return desc["value"]
    if kind == "generator":
        return _restore_generator(desc["bit_generator"], _from_json_safe(desc["state"]))
    raise InputError(f"unknown entry kind {kind!r} in checkpoint structure")


def _json_safe(value):
    """A bit generator's state with its arrays (MT19937, Philox keys) as tagged lists."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.integer):
        return int(value)
    return value


def _from_json_safe(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"])
        return {k: _from_json_safe(v) for k, v in value.items()}
    return value


def _restore_generator(name, state):
    cls = getattr(np.random, name, None)
    if not (isinstance(cls, type) and issubclass(cls, np.random.BitGenerator)):
        raise InputError(f"checkpoint names an unknown NumPy bit generator {name!r}")
    bit_generator = cls()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


# --- files --------------------------------------------------------------------------------


def _write_arrays(file, named_arrays):
    """Write ``named_arrays`` as an uncompressed ``.npz`` into the open binary ``file``."""
    np.savez(file, **named_arrays)


def save_checkpoint(path, tree, metadata=None):
    """Write ``tree`` and ``metadata`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file (``.npz`` by convention); its directory must exist.
    tree : pytree
        Arrays, Python/NumPy scalars, str, None and ``numpy.random.Generator`` objects,
        nested in dicts (str keys), lists and tuples. Device arrays are copied to the host.
    metadata : dict, optional
        JSON-serialisable information (epoch, command line, versions, ...).
    """
    path = os.fspath(path)
    metadata = {} if metadata is None else metadata
    arrays = []
    structure = _encode(tree, arrays)
    try:
        metadata_json = json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise InputError(f"checkpoint metadata must be JSON-serialisable: {exc}") from None
    named = {f"leaf_{i}": a for i, a in enumerate(arrays)}
    named["__format__"] = np.array(FORMAT)
    named["__structure__"] = np.array(json.dumps(structure))
    named["__metadata__"] = np.array(metadata_json)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"cannot save checkpoint {path!r}: directory {directory!r} does not exist")
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as file:
            _write_arrays(file, named)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        os.unlink(tmp_path)
        raise


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    tree : pytree
        The saved tree with the same containers (dict/list/tuple) and NumPy arrays in
        place of the saved arrays; Generators resume their stream where it was saved.
    metadata : dict
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"no checkpoint at {path!r}: check the path, or start without --resume")
    try:
        with np.load(path, allow_pickle=False) as npz:
            contents = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"checkpoint {path!r} is corrupt or truncated ({exc}); "
                         "use an earlier checkpoint or start again") from None
    if any(name not in contents for name in _RESERVED) or str(contents["__format__"]) != FORMAT:
        raise InputError(f"{path!r} is not a refnode checkpoint (no {FORMAT!r} marker)")
    try:
        structure = json.loads(str(contents["__structure__"]))
        metadata = json.loads(str(contents["__metadata__"]))
        return _decode(structure, contents), metadata
    except (KeyError, ValueError) as exc:
        raise InputError(f"checkpoint {path!r} is inconsistent ({exc!r}); "
                         "use an earlier checkpoint or start again") from None
