"""Fuzzing the file readers: the IDX reader and checkpoint loading.

Every drawn file — random bytes, mutated valid files, crafted headers and structures —
must give either the right result or an InputError naming the file; any other exception,
a silently different result, or an allocation far beyond the file's size fails.

Examples per property: twice the hypothesis profile's ``max_examples`` (``ci``: 40,
``thorough``: 600). With ``REFNODE_FUZZ_REPORT=path`` the counts of inputs tried,
results and clear errors per reader are written there as JSON when the module finishes.
"""

import gzip
import io
import json
import math
import os
import tracemalloc
import zipfile
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refnode.checkpoint import BIT_GENERATORS, checksum, load_checkpoint, save_checkpoint
from refnode.data import idx, read_idx
from refnode.errors import InputError

pytestmark = [pytest.mark.data, pytest.mark.training]

EXAMPLES = settings(max_examples=2 * settings.default.max_examples, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
#: An allocation beyond this while reading a file of a few kB means a size was trusted.
MAX_PEAK_BYTES = 16 << 20
COUNTS = Counter()


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    """Durability is tested in test_checkpoint_files.py; here fsync only costs time."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    target = os.environ.get("REFNODE_FUZZ_REPORT")
    if target:
        with open(target, "w") as f:
            json.dump(dict(sorted(COUNTS.items())), f, indent=1)


def follows_the_rule(reader, path, label):
    """``reader(path)``'s result, or None after an InputError naming the file; the rule's
    other outcomes (another exception, a large allocation) fail the test."""
    COUNTS[f"{label}: tried"] += 1
    tracemalloc.start()
    try:
        result = reader(path)
    except InputError as exc:
        assert os.fspath(path) in str(exc), str(exc)
        COUNTS[f"{label}: clear error"] += 1
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MAX_PEAK_BYTES, f"{label}: {peak} bytes traced reading {path}"
    COUNTS[f"{label}: result"] += 1
    return result


# --- IDX -------------------------------------------------------------------------------------

TYPE_CODES = list(idx.IDX_DTYPES)


def idx_file(type_code, shape, data):
    return bytes([0, 0, type_code, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape) + data


def encode(array):
    """The IDX bytes of a result, to compare with the file that gave it."""
    code = next(c for c, dt in idx.IDX_DTYPES.items() if dt.newbyteorder("=") == array.dtype)
    return idx_file(code, array.shape, array.astype(idx.IDX_DTYPES[code]).tobytes())


def check_idx(tmp_path, content, compress):
    path = tmp_path / ("f.gz" if compress else "f")
    path.write_bytes(gzip.compress(content, mtime=0) if compress else content)
    array = follows_the_rule(read_idx, path, "idx")
    if array is not None:
        assert encode(array) == content  # the right result: exactly what the file holds
    return array


valid_idx = st.builds(
    lambda code, shape, seed: idx_file(code, shape, np.random.default_rng(seed).integers(
        0, 256, size=math.prod(shape) * idx.IDX_DTYPES[code].itemsize, dtype=np.uint8).tobytes()),
    st.sampled_from(TYPE_CODES), st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple),
    st.integers(0, 2**32))

mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=20), st.just(0)),
    st.tuples(st.just("set_byte"), st.floats(0, 1), st.integers(0, 255)),
)


def mutate(content, mutations):
    content = bytearray(content)
    for kind, where, value in mutations:
        at = min(int(where * len(content)), len(content) - 1) if isinstance(where, float) else 0
        if kind == "flip" and content:
            content[at] ^= 1 << value
        elif kind == "set_byte" and content:
            content[at] = value
        elif kind == "truncate":
            del content[at:]
        elif kind == "append":
            content += where
    return bytes(content)


@EXAMPLES
@given(content=st.binary(max_size=64), compress=st.booleans())
def test_idx_random_bytes(tmp_path, content, compress):
    check_idx(tmp_path, content, compress)


@EXAMPLES
@given(content=valid_idx, mutations=st.lists(mutation, min_size=1, max_size=3),
       compress=st.booleans())
def test_idx_mutated_files(tmp_path, content, mutations, compress):
    check_idx(tmp_path, mutate(content, mutations), compress)


@EXAMPLES
@given(content=valid_idx, mutations=st.lists(mutation, min_size=1, max_size=3))
def test_idx_mutated_gzip_streams(tmp_path, content, mutations):
    path = tmp_path / "f.gz"
    path.write_bytes(mutate(gzip.compress(content, mtime=0), mutations))
    array = follows_the_rule(read_idx, path, "idx gzip stream")
    if array is not None:   # then the stream was intact where it matters
        assert encode(array) == gzip.decompress(path.read_bytes())


extreme_dim = st.one_of(st.integers(0, 4), st.sampled_from([2**31, 2**32 - 1, 2**16, 60000]),
                        st.integers(0, 2**32 - 1))


@EXAMPLES
@given(code=st.one_of(st.sampled_from(TYPE_CODES), st.integers(0, 255)),
       shape=st.lists(extreme_dim, min_size=0, max_size=6), extra=st.integers(-8, 8),
       compress=st.booleans())
def test_idx_crafted_headers(tmp_path, code, shape, extra, compress):
    itemsize = idx.IDX_DTYPES[code].itemsize if code in idx.IDX_DTYPES else 1
    n = math.prod(shape) * itemsize
    data = bytes(max(0, min(n, 4096) + extra))
    check_idx(tmp_path, idx_file(code, shape, data), compress)


# --- checkpoints ---------------------------------------------------------------------------------

leaf_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.uint16, np.bool_,
                           np.complex128, np.dtype("<U3")]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                    st.builds(np.float64, st.floats()), st.builds(np.int32, st.integers(-2**31, 2**31 - 1)))
generators = st.builds(lambda name, seed: np.random.Generator(getattr(np.random, name)(seed)),
                       st.sampled_from(BIT_GENERATORS), st.integers(0, 2**64))
trees = st.recursive(
    st.one_of(leaf_arrays, scalars, generators),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.lists(children, max_size=3).map(tuple),
                               st.dictionaries(st.text(max_size=5), children, max_size=3)),
    max_leaves=8)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=6), children, max_size=3)),
    max_leaves=10)


def same_tree(a, b):
    if isinstance(a, np.random.Generator):
        return isinstance(b, np.random.Generator) and json.dumps(
            a.bit_generator.state, default=str) == json.dumps(b.bit_generator.state, default=str)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_tree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, np.generic)):
        return a.dtype == b.dtype and np.shape(a) == np.shape(b) and \
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    return a == b or (a != a and b != b)


def save_or_input_error(path, tree, metadata):
    try:
        save_checkpoint(path, tree, metadata)
        return True
    except InputError:
        COUNTS["checkpoint save: clear error"] += 1
        return False


@EXAMPLES
@given(tree=trees, metadata=json_values)
def test_checkpoint_round_trip_of_drawn_trees(tmp_path, tree, metadata):
    path = tmp_path / "c.npz"
    COUNTS["checkpoint save: tried"] += 1
    if save_or_input_error(path, tree, metadata):
        loaded = follows_the_rule(load_checkpoint, path, "checkpoint round trip")
        assert loaded is not None and same_tree(loaded[0], tree)
        expected = {} if metadata is None else metadata      # None means "no metadata"
        assert json.dumps(loaded[1]) == json.dumps(expected)


@EXAMPLES
@given(tree=trees, mutations=st.lists(mutation, min_size=1, max_size=3))
def test_checkpoint_mutated_files(tmp_path, tree, mutations):
    path = tmp_path / "c.npz"
    assume(save_or_input_error(path, tree, {"epoch": 1}))
    original = path.read_bytes()
    changed = mutate(original, mutations)
    assume(changed != original)
    path.write_bytes(changed)
    loaded = follows_the_rule(load_checkpoint, path, "checkpoint mutated")
    if loaded is not None:  # only bytes the content does not depend on changed
        assert same_tree(loaded[0], tree) and loaded[1] == {"epoch": 1}


@EXAMPLES
@given(content=st.one_of(st.binary(max_size=200),
                         st.binary(max_size=200).map(lambda b: b"PK\x03\x04" + b),
                         st.binary(max_size=200).map(lambda b: b"\x93NUMPY" + b)))
def test_checkpoint_random_bytes(tmp_path, content):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    follows_the_rule(load_checkpoint, path, "checkpoint random bytes")


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_archive(path, entries, with_checksum):
    """A checkpoint archive of ``{name: array or raw .npy bytes}``, format 2 with a correct
    checksum (so that the structure, not the checksum, is what is tested) or format 1."""
    arrays = {k: v for k, v in entries.items() if isinstance(v, np.ndarray)}
    arrays["__format__"] = np.array("refnode-checkpoint-2" if with_checksum else "refnode-checkpoint-1")
    if with_checksum:
        arrays["__checksum__"] = np.array(checksum(arrays))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, value in {**entries, **arrays}.items():
            archive.writestr(name + ".npy", npy(value) if isinstance(value, np.ndarray) else value)


descs = st.recursive(
    st.one_of(
        st.fixed_dictionaries({"kind": st.just("value"), "value": json_values}),
        st.fixed_dictionaries({"kind": st.sampled_from(["array", "scalar_array"]),
                               "index": st.one_of(st.integers(-2, 4), json_values)}),
        st.fixed_dictionaries({"kind": st.just("generator"),
                               "bit_generator": st.one_of(st.sampled_from(BIT_GENERATORS + ("Generator", "SeedSequence")), json_values),
                               "state": json_values}),
        json_values),
    lambda children: st.one_of(
        st.fixed_dictionaries({"kind": st.sampled_from(["list", "tuple"]),
                               "items": st.lists(children, max_size=3)}),
        st.fixed_dictionaries({"kind": st.just("dict"),
                               "keys": st.lists(st.one_of(st.text(max_size=3), json_values), max_size=3),
                               "items": st.lists(children, max_size=3)})),
    max_leaves=8)


@EXAMPLES
@given(structure=descs, leaves=st.lists(leaf_arrays, max_size=3), metadata=json_values,
       with_checksum=st.booleans())
def test_checkpoint_crafted_structures(tmp_path, structure, leaves, metadata, with_checksum):
    path = tmp_path / "c.npz"
    entries = {f"leaf_{i}": a for i, a in enumerate(leaves)}
    entries["__structure__"] = np.array(json.dumps(structure))
    entries["__metadata__"] = np.array(json.dumps(metadata))
    write_archive(path, entries, with_checksum)
    follows_the_rule(load_checkpoint, path, "checkpoint crafted structure")


def npy_with_header(header_text, data):
    """A .npy entry whose header is ``header_text`` verbatim (NEP 1, version 1.0)."""
    text = header_text.encode("latin1", "replace")
    padding = (-(10 + len(text) + 1)) % 64
    body = text + b" " * padding + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body + data


dims = st.one_of(st.integers(0, 4), st.integers(-3, -1), st.sampled_from([2**31, 10**7, 2**63]))
descrs = st.sampled_from(["<f8", ">f8", "|b1", "<i8", "|O", "<U0", "|V0", "<U2", "|S3", "<c16",
                          "<M8[s]", "[('a', '<f8')]", "('<f8', (2,))", "f8", "bogus", "<f8'"])


@EXAMPLES
@given(descr=descrs, shape=st.lists(dims, max_size=3).map(tuple),
       fortran=st.sampled_from(["False", "True", "0", "'x'"]), size=st.integers(0, 64),
       raw=st.one_of(st.none(), st.text(max_size=40)))
def test_checkpoint_crafted_npy_headers(tmp_path, descr, shape, fortran, size, raw):
    header = raw if raw is not None else \
        f"{{'descr': {descr if descr.startswith(('[', '(')) else repr(descr)}, " \
        f"'fortran_order': {fortran}, 'shape': {shape}, }}"
    path = tmp_path / "c.npz"
    entries = {"leaf_0": npy_with_header(header, bytes(size)),
               "__structure__": np.array('{"kind": "array", "index": 0}'),
               "__metadata__": np.array("{}")}
    write_archive(path, entries, with_checksum=False)
    loaded = follows_the_rule(load_checkpoint, path, "checkpoint crafted npy header")
    if loaded is not None:
        array = loaded[0]
        assert not array.dtype.hasobject and array.nbytes == size
