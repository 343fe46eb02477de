"""Checkpoints: a pytree of arrays and scalars, written atomically to one ``.npz`` file.

A checkpoint holds whatever a training run needs to resume bit-exactly: parameters,
optimizer state (:mod:`refnode.optim` states are dicts of pytrees), the epoch, and the
``numpy.random.Generator`` that draws minibatches and noise.

File layout (a plain NumPy ``.npz``, readable with ``np.load(path, allow_pickle=False)``)::

    leaf_0, leaf_1, ...   the arrays of the tree, in tree order
    __format__            "refnode-checkpoint-2"
    __structure__         JSON: the tree's containers, scalars and generator states
    __metadata__          JSON: the caller's metadata dict
    __checksum__          SHA-256 of every other entry (see :func:`checksum`)

No pickles: containers are described in JSON and rebuilt by :func:`load_checkpoint`, so a
checkpoint from an untrusted source cannot run code. Loading trusts nothing in the file
(:mod:`refnode.checkpoint_file` reads it with every size checked first), checks the
structure and compares the checksum, so corruption is detected rather than inferred.
Checkpoints of format 1 (no checksum) are still read, with every other check: they are
the partial runs of earlier versions, and each of their arrays is still covered by the
archive's CRC-32.

Writing goes to a temporary file ``.tmp-<pid>-*.npz`` in the same directory, which then
replaces the target in one ``os.replace``, and the directory is synced
(:func:`refnode.files.atomic_write`): a crash, a full disk or Ctrl-C mid-write leaves the
previous checkpoint intact, and a failure of the file system is a one-line
:class:`~refnode.files.WriteError`. Temporaries of writers that no longer run (killed
mid-write) are removed by the next save or load in that directory.
"""

import hashlib
import json
import os
import re
import zipfile

import numpy as np

from .backend import to_numpy
from .checkpoint_file import MalformedFile, read_npz, remove_stale_temporaries
from .errors import InputError
from .files import atomic_write

FORMAT = "refnode-checkpoint-2"
#: Formats still read: version 1 had no checksum.
OLDER_FORMATS = ("refnode-checkpoint-1",)
_RESERVED = ("__format__", "__structure__", "__metadata__")
_CHECKSUM = "__checksum__"
#: Deepest nesting of containers saved or loaded: far beyond any parameter tree, and well
#: inside Python's recursion limit (1000), so that a crafted file cannot exhaust it.
MAX_DEPTH = 100
#: NumPy's bit generators (numpy.random, "Bit generators").
BIT_GENERATORS = ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")
_LEAF = re.compile(r"leaf_(0|[1-9][0-9]*)\Z")
#: What a user does about a checkpoint that cannot be used. Training resumes from a
#: checkpoint whenever one exists at its path, so there is no flag to turn resuming off.
WHAT_TO_DO = ("delete it to train that model from the beginning, or put back an earlier "
              "copy (refnode reproduce resumes from the checkpoints that exist in --runs DIR "
              "for table1 and --run-dir DIR for latent; another directory starts afresh)")


# --- whose checkpoint is it --------------------------------------------------------------


def _flatten(tree, prefix=""):
    """{"a.b": value} for the leaves of nested dicts (JSON metadata)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _short(value):
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 24 else text[:20] + "..." + text[-3:]


_ABSENT = object()


def differences(saved, expected):
    """The settings in which checkpoint metadata ``saved`` differs from ``expected``.

    Returns
    -------
    list of str
        ``"key: A in the checkpoint, B here"`` per differing leaf (dotted keys for nested
        dicts), in the order of ``expected``, then keys only the checkpoint has.
    """
    saved = _flatten(json.loads(json.dumps(saved)))
    expected = _flatten(json.loads(json.dumps(expected)))
    found = []
    for key in list(expected) + [k for k in saved if k not in expected]:
        if saved.get(key, _ABSENT) != expected.get(key, _ABSENT):
            there = _short(saved[key]) if key in saved else "absent (an earlier version's)"
            here = _short(expected[key]) if key in expected else "absent"
            found.append(f"{key}: {there} in the checkpoint, {here} here")
    return found



def check_same_run(path, saved, expected, what_to_do):
    """Refuse to resume from the checkpoint at ``path`` unless its metadata is ``expected``.

    Parameters
    ----------
    path : str
    saved, expected : dict
        The checkpoint's metadata and this run's (the identity of the data, model and every
        setting that changes the result).
    what_to_do : str
        The end of the message, e.g. "use another --runs DIR or delete it".

    Raises
    ------
    InputError
        One line naming what differs (at most three settings) and what to do.
    """
    found = differences(saved, expected)
    if found:
        more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
        raise InputError(f"checkpoint {path!r} belongs to another run, not resumed: "
                         f"{'; '.join(found[:3])}{more}; {what_to_do}")


# --- tree <-> (JSON structure, named arrays) --------------------------------------------


def _is_array(x):
    """True for NumPy/CuPy arrays, autograd boxes and NumPy scalars (np.float64(1.0), ...)."""
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _encode(node, arrays, depth=0):
    """JSON description of ``node``; its arrays are appended to ``arrays``."""
    if depth > MAX_DEPTH:
        raise InputError(f"cannot store containers nested deeper than {MAX_DEPTH} "
                         "(refnode.checkpoint.MAX_DEPTH); is a list inside itself?")
    if isinstance(node, np.random.Generator):
        bit_generator = node.bit_generator
        return {"kind": "generator", "bit_generator": type(bit_generator).__name__,
                "state": _json_safe(bit_generator.state)}
    if isinstance(node, dict):
        if not all(isinstance(k, str) for k in node):
            raise InputError(f"checkpoint dict keys must be str, got {list(node)!r}")
        return {"kind": "dict", "keys": list(node),
                "items": [_encode(v, arrays, depth + 1) for v in node.values()]}
    if isinstance(node, (list, tuple)):
        if hasattr(node, "_fields"):
            raise InputError(f"cannot store NamedTuple {type(node).__name__}; convert it to a dict")
        return {"kind": type(node).__name__, "items": [_encode(v, arrays, depth + 1) for v in node]}
    if _is_array(node):
        array = to_numpy(node)
        if array.dtype.hasobject or array.dtype.fields is not None or array.dtype.itemsize == 0:
            raise InputError(f"cannot store an array of dtype {array.dtype}; use numeric arrays "
                             "(object arrays would need a pickle)")
        arrays.append(array)
        return {"kind": "scalar_array" if isinstance(node, np.generic) else "array", "index": len(arrays) - 1}
    if node is None or isinstance(node, (bool, int, float, str)):
        return {"kind": "value", "value": node}
    raise InputError(f"cannot store a {type(node).__name__} in a checkpoint; "
                     "use arrays, numbers, str, None, Generators, and dicts/lists/tuples of them")


def _field(desc, key, kind):
    """``desc[key]``, checked to be a ``kind`` (a JSON bool is not an int)."""
    value = desc.get(key) if isinstance(desc, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedFile(f"structure entry {str(desc)[:80]!r} has no {kind.__name__} {key!r}")
    return value


def _decode(desc, arrays, used, depth=0):
    """Rebuild the node described by ``desc``; ``arrays`` maps "leaf_<i>" to arrays and
    ``used`` collects the leaves taken, each of which may be taken once."""
    if depth > MAX_DEPTH:
        raise MalformedFile(f"its structure is nested deeper than {MAX_DEPTH}")
    kind = _field(desc, "kind", str)
    if kind == "dict":
        keys, items = _field(desc, "keys", list), _field(desc, "items", list)
        if len(keys) != len(items) or not all(isinstance(k, str) for k in keys) \
                or len(set(keys)) != len(keys):
            raise MalformedFile(f"a dict has keys {str(keys)[:80]} for {len(items)} items")
        return {k: _decode(v, arrays, used, depth + 1) for k, v in zip(keys, items)}
    if kind in ("list", "tuple"):
        items = [_decode(v, arrays, used, depth + 1) for v in _field(desc, "items", list)]
        return items if kind == "list" else tuple(items)
    if kind in ("array", "scalar_array"):
        name = f"leaf_{_field(desc, 'index', int)}"
        if name not in arrays or name in used:
            raise MalformedFile(f"its structure refers to {name}, which is "
                                f"{'used twice' if name in used else 'missing'}")
        used.add(name)
        if kind == "array":
            return arrays[name]
        if arrays[name].ndim != 0:
            raise MalformedFile(f"{name} should be a scalar, has shape {arrays[name].shape}")
        return arrays[name][()]
    if kind == "value":
        value = desc.get("value")
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise MalformedFile(f"a value entry holds a {type(value).__name__}")
        return value
    if kind == "generator":
        return _restore_generator(_field(desc, "bit_generator", str), _field(desc, "state", dict))
    raise MalformedFile(f"unknown entry kind {kind[:40]!r} in its structure")


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
            dtype = np.dtype(value["dtype"])
            if dtype.kind not in "ui":
                raise TypeError(f"generator state arrays are integers, not {dtype}")
            return np.array(value["__ndarray__"], dtype=dtype)
        return {k: _from_json_safe(v) for k, v in value.items()}
    return value


def _restore_generator(name, state):
    if name not in BIT_GENERATORS:
        raise MalformedFile(f"it names an unknown NumPy bit generator {name[:40]!r}")
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = _from_json_safe(state)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise MalformedFile(f"its {name} generator state is invalid ({exc})") from None
    return np.random.Generator(bit_generator)


def checksum(named_arrays):
    """Hex SHA-256 over every entry's name, dtype, shape and bytes (C order), by name.

    Parameters
    ----------
    named_arrays : dict of str -> ndarray
        The entries of a checkpoint, ``__checksum__`` excluded.
    """
    digest = hashlib.sha256()
    for name in sorted(named_arrays):
        array = np.ascontiguousarray(named_arrays[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# --- files --------------------------------------------------------------------------------


def _write_arrays(file, named_arrays):
    """Write ``named_arrays`` as an uncompressed ``.npz`` into the open binary ``file``.

    The layout :func:`numpy.savez` writes (one ``NAME.npy`` entry per array, stored), with
    the archive closed even when a write fails: ``numpy.savez`` of NumPy 2.0 left it open,
    and Python then reported the unclosed file at exit.
    """
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in named_arrays.items():
            with archive.open(f"{name}.npy", mode="w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)


def save_checkpoint(path, tree, metadata=None):
    """Write ``tree`` and ``metadata`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file (``.npz`` by convention); its directory must exist.
    tree : pytree
        Arrays, Python/NumPy scalars, str, None and ``numpy.random.Generator`` objects,
        nested in dicts (str keys), lists and tuples, at most :data:`MAX_DEPTH` deep.
        Device arrays are copied to the host.
    metadata : dict, optional
        JSON-serialisable information (epoch, command line, versions, ...).

    Raises
    ------
    InputError
        A tree or metadata that cannot be stored, or a directory that does not exist.
    refnode.files.WriteError
        The file system refused the write (full, read-only, ...); the previous
        checkpoint at ``path``, if any, is intact.
    """
    path = os.fspath(path)
    metadata = {} if metadata is None else metadata
    arrays = []
    structure = _encode(tree, arrays)
    try:
        metadata_json = json.dumps(metadata)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputError(f"checkpoint metadata must be JSON-serialisable: {exc}") from None
    named = {f"leaf_{i}": a for i, a in enumerate(arrays)}
    named["__format__"] = np.array(FORMAT)
    try:
        named["__structure__"] = np.array(json.dumps(structure))
    except ValueError as exc:  # e.g. an int beyond Python's 4300-digit str conversion limit
        raise InputError(f"cannot store the tree in a checkpoint: {exc}; store such a value "
                         "as a str or an array") from None
    named["__metadata__"] = np.array(metadata_json)
    named[_CHECKSUM] = np.array(checksum(named))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"cannot save checkpoint {path!r}: directory {directory!r} does not exist")
    remove_stale_temporaries(directory)
    atomic_write(path, lambda file: _write_arrays(file, named), "wb")


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    tree : pytree
        The saved tree with the same containers (dict/list/tuple) and NumPy arrays in
        place of the saved arrays; Generators resume their stream where it was saved.
    metadata : dict

    Raises
    ------
    InputError
        No file at ``path``, or a file that is not an intact refnode checkpoint; the
        message names the file, what is wrong, and what to do.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"no checkpoint at {path!r}: check the path (training starts from "
                         "the beginning when its checkpoint does not exist)")
    remove_stale_temporaries(os.path.dirname(os.path.abspath(path)))
    try:
        contents = read_npz(path, os.path.getsize(path))
        return _decode_contents(contents)
    except MalformedFile as exc:
        raise InputError(f"checkpoint {path!r} is corrupt or truncated: {exc}; {WHAT_TO_DO}") from None
    except _NotACheckpoint as exc:
        raise InputError(f"{path!r} is not a refnode checkpoint ({exc}); pass a file written "
                         "by refnode.checkpoint.save_checkpoint") from None


class _NotACheckpoint(Exception):
    """An intact archive that save_checkpoint did not write."""


def _text(contents, name):
    """The string held by a reserved entry (a 0-d str array)."""
    array = contents[name]
    if array.dtype.kind != "U" or array.ndim != 0:
        raise MalformedFile(f"entry {name} should be a string, is {array.dtype} {array.shape}")
    return str(array[()])


def _decode_contents(contents):
    """(tree, metadata) from the entries of a checkpoint archive, checked throughout."""
    if "__format__" not in contents:
        raise _NotACheckpoint(f"no {FORMAT!r} marker")
    format_ = _text(contents, "__format__")
    if format_ != FORMAT and format_ not in OLDER_FORMATS:
        raise _NotACheckpoint(f"format {format_[:40]!r}, this version reads {FORMAT!r} "
                              f"and {', '.join(map(repr, OLDER_FORMATS))}")
    expected = _RESERVED + ((_CHECKSUM,) if format_ == FORMAT else ())
    missing = [name for name in expected if name not in contents]
    unknown = [name for name in contents if name not in expected and not _LEAF.match(name)]
    if missing or unknown:
        raise MalformedFile(f"entries {missing} are missing and {unknown[:5]} unexpected")
    if format_ == FORMAT:
        stored = _text(contents, _CHECKSUM)
        found = checksum({k: v for k, v in contents.items() if k != _CHECKSUM})
        if stored != found:
            raise MalformedFile(f"its SHA-256 checksum {found} differs from the one saved, {stored[:64]}")
    try:
        structure = json.loads(_text(contents, "__structure__"))
        metadata = json.loads(_text(contents, "__metadata__"))
    except (ValueError, RecursionError) as exc:
        raise MalformedFile(f"its structure or metadata is not readable JSON ({type(exc).__name__})") from None
    leaves = {name: array for name, array in contents.items() if _LEAF.match(name)}
    used = set()
    tree = _decode(structure, leaves, used)
    if used != set(leaves):
        raise MalformedFile(f"arrays {sorted(set(leaves) - used)[:5]} are not in its structure")
    return tree, metadata
