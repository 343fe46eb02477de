"""The golden files: one JSON document per reference problem, readable without refnode.

Layout (schema version :data:`SCHEMA_VERSION`; the JSON Schema is ``golden/schema.json``
and docs/verify.md explains every field)::

    {"schema_version": "1.0", "refnode_version": "0.1.0",
     "name": "linear", "description": "...",
     "dynamics": {"equation": "...", "convention": "...", "parameters": {"A": "..."}},
     "parameters": {"A": [[...]]},            # named arrays as nested lists
     "z0": [...], "t": [...],
     "loss": "L = sum_i <g_i, z(t_i)>", "cotangents": [...],      # g, shape (N, *z0.shape)
     "states": [...],                                             # z(t_i), shape (N, *z0.shape)
     "gradients": {"z0": [...], "theta": {"A": [[...]]}, "t": [...]},
     "extras": {"log_density": [...]},                            # may be {}
     "expected_spread": {...},        # only for a non-smooth field (docs/verify.md)
     "accuracy": {"states": 1e-13, "gradients": {"z0": ..., "theta": {"A": ...}, "t": [...]},
                  "extras": {...}},
     "provenance": {"states": "...", "gradients": "..."}}

Arrays are nested lists in C order (a scalar is a bare number); floats are written with
Python's shortest round-trip repr, so reading them back gives the same float64 bits.
``accuracy`` entries are relative: max|error| / max|value| of that quantity.
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputError

SCHEMA_VERSION = "1.0"
#: Where the shipped golden files live (package data).
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
#: The convention every golden file states.
CONVENTION = ("f(t, z, theta), time first (refnode, SciPy, torchdiffeq, diffrax); states are "
              "row vectors, a batch is (B, D); parameter gradients are summed over the batch; "
              "L = sum_i <g_i, z(t_i)> and every gradient is of L.")
SPREAD_NOTE = ("The field is not differentiable everywhere, so no pass/fail rule C * rtol "
               "applies: refnode verify reports each quantity against this spread instead. "
               "Each entry is the largest relative error, over the quantities of that kind, of "
               "refnode's own solve (method, atol = rtol) at the listed rtol.")
LOSS = "L = sum_i <g_i, z(t_i)>, g = cotangents, g.flat[k] = sin(k + 1)"


def _lists(tree):
    """Arrays -> nested lists (and bare floats for scalars), recursively through dicts/lists."""
    if isinstance(tree, dict):
        return {k: _lists(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_lists(v) for v in tree]
    if isinstance(tree, (str, int)) and not isinstance(tree, bool):
        return tree
    return np.asarray(tree, dtype=np.float64).tolist()


def golden_record(problem, values, refnode_version):
    """The JSON document (a dict of plain Python values) of one problem's golden values."""
    record = {
        "schema_version": SCHEMA_VERSION, "refnode_version": refnode_version,
        "name": problem.name, "description": problem.description,
        "dynamics": {"equation": problem.equation, "convention": CONVENTION,
                     "parameters": dict(problem.parameter_notes)},
        "parameters": _lists(problem.theta), "z0": _lists(problem.z0), "t": _lists(problem.t),
        "loss": LOSS, "cotangents": _lists(problem.cotangents),
        "states": _lists(values["states"]), "gradients": _lists(values["gradients"]),
        "extras": _lists(values["extras"]), "accuracy": _lists(values["accuracy"]),
        "provenance": dict(values["provenance"]),
    }
    if "spread" in values:
        record["expected_spread"] = dict(values["spread"], note=SPREAD_NOTE)
    return record


def write_json(path, document):
    """Write ``document`` to ``path`` atomically (temp file in the same directory, then replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
        os.chmod(tmp, 0o644)                     # mkstemp makes it private; these are shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


#: The largest JSON file read (a results file of all ten problems is about 100 kB; the cap
#: keeps /dev/zero or a mistaken multi-gigabyte path from filling the memory).
MAX_JSON_BYTES = 16 * 2**20
#: The most digits a JSON integer may have: float64 ends at about 1.8e308.
MAX_INT_DIGITS = 309


class _DocumentError(ValueError):
    """Something JSON allows but a refnode document may not contain (read_json says what)."""


def _unique_keys(pairs):
    """object_pairs_hook: a dict, or _DocumentError when a key appears twice in one object."""
    document = {}
    for key, value in pairs:
        if key in document:
            raise _DocumentError(f"the key {key!r} appears twice in one object (JSON readers "
                                 "keep one of them silently); give each key once")
        document[key] = value
    return document


def _integer(text):
    """parse_int: an int, refusing numbers of more digits than any float64 has."""
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _DocumentError(f"an integer of {digits} digits (numbers must fit a float64)")
    return int(text)


def read_json(path):
    """A JSON document from ``path``, with a clear error when it is missing or malformed.

    Refused with an :class:`InputError`: a file larger than :data:`MAX_JSON_BYTES`, text
    that is not UTF-8 JSON, nesting too deep to parse, a key given twice in one object,
    and an integer of more than :data:`MAX_INT_DIGITS` digits.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise InputError(f"{path} is larger than {MAX_JSON_BYTES // 2**20} MiB (or endless, "
                             "like a device); a results file is a few hundred kB at most.")
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys,
                          parse_int=_integer)
    except FileNotFoundError as err:
        raise InputError(f"no such file: {path}") from err
    except IsADirectoryError as err:
        raise InputError(f"{path} is a directory; give a JSON file.") from err
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not a UTF-8 text file (binary?); give a JSON file.") from err
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON ({err}).") from err
    except _DocumentError as err:
        raise InputError(f"{path}: {err}.") from err
    except RecursionError as err:
        raise InputError(f"{path} nests its JSON too deeply to read; the results layout is "
                         "at most a few levels deep (docs/verify.md).") from err
    except (OSError, MemoryError) as err:
        raise InputError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}.") from err


def load_golden(name, directory=None):
    """The golden document of problem ``name`` as plain JSON values (lists, floats, dicts)."""
    directory = GOLDEN_DIR if directory is None else Path(directory)
    document = read_json(directory / f"{name}.json")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"{directory / (name + '.json')} has schema version "
                         f"{document.get('schema_version')!r}; this refnode reads "
                         f"{SCHEMA_VERSION!r}. Regenerate it: python -m refnode.reference.regenerate")
    return document


def as_arrays(document, keys=("parameters", "z0", "t", "cotangents", "states", "gradients",
                              "extras")):
    """A copy of a golden document with the array fields as float64 NumPy arrays."""
    def arrays(tree):
        if isinstance(tree, dict):
            return {k: arrays(v) for k, v in tree.items()}
        return np.asarray(tree, dtype=np.float64)
    return {k: (arrays(v) if k in keys else v) for k, v in document.items()}
