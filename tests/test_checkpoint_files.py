"""Malformed checkpoint files: every one is an InputError naming the file and saying what to
do, never a raw error from zipfile or NumPy, a giant allocation, or a silently wrong tree.
Also the housekeeping of writing: stale temporaries, the directory sync, the checksum."""

import io
import json
import os
import stat
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

import refnode.checkpoint as checkpoint
import refnode.files
from refnode.checkpoint import MAX_DEPTH, load_checkpoint, save_checkpoint
from refnode.checkpoint_file import remove_stale_temporaries
from refnode.errors import InputError
from refnode.files import WriteError

pytestmark = pytest.mark.training

TREE = {"theta": [np.arange(6.0).reshape(2, 3), np.float32(1.5)], "step": 7,
        "rng": np.random.default_rng(3)}


def assert_rejected(path, match):
    with pytest.raises(InputError, match=match) as info:
        load_checkpoint(path)
    assert os.fspath(path) in str(info.value)
    return str(info.value)


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_zip(path, entries):
    """An uncompressed zip of ``{name: bytes}``, as numpy.savez lays one out."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def write_format1(path, structure, leaves=(), metadata="{}"):
    """A checkpoint as version 1 wrote it (no checksum), with any structure JSON."""
    entries = {f"leaf_{i}.npy": npy_bytes(a) for i, a in enumerate(leaves)}
    entries.update({"__format__.npy": npy_bytes(np.array("refnode-checkpoint-1")),
                    "__structure__.npy": npy_bytes(np.array(structure)),
                    "__metadata__.npy": npy_bytes(np.array(metadata))})
    write_zip(path, entries)


# --- files that are not checkpoints ------------------------------------------------------------


def test_npy_file_passed_as_checkpoint_is_input_error(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.eye(3))
    assert_rejected(path, "single .npy array")


@pytest.mark.parametrize("content", [b"", b"PK", b"not a zip at all", b"PK\x05\x06" + bytes(18)])
def test_non_archives_are_input_errors(tmp_path, content):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    assert_rejected(path, "corrupt or truncated|not a refnode checkpoint")


def test_huge_declared_shape_is_refused_before_allocating(tmp_path):
    # A .npy header declaring 10^7 x 10^6 float64 (72.8 TiB) in front of 8 bytes of data.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                 "shape": (10**7, 10**6)})
    path = tmp_path / "huge.npz"
    write_format1(path, json.dumps({"kind": "array", "index": 0}))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("leaf_0.npy", header.getvalue() + bytes(8))
    tracemalloc.start()
    try:
        message = assert_rejected(path, r"declares shape \(10000000, 1000000\)")
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()
    assert "delete it" in message


def test_zero_sized_entry_with_huge_dimensions_is_input_error(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                 "shape": (0, 2**40, 2**40)})
    path = tmp_path / "empty.npz"
    write_format1(path, json.dumps({"kind": "array", "index": 0}))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("leaf_0.npy", header.getvalue())
    assert_rejected(path, r"declares shape \(0, 1099511627776, 1099511627776\)")


@pytest.mark.parametrize("header_text", ["[", "{'descr': '<f8', 'fortran_order': False, 'shape': (", "(" * 300])
def test_malformed_npy_header_text_is_input_error(tmp_path, header_text):
    # Found by tests/test_fuzz_files.py: NumPy's header parser raised tokenize.TokenError.
    text = header_text.encode()
    body = text + b" " * ((-(10 + len(text) + 1)) % 64) + b"\n"
    path = tmp_path / "header.npz"
    write_format1(path, json.dumps({"kind": "array", "index": 0}))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("leaf_0.npy", b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body)
    assert_rejected(path, "malformed .npy header")


def test_object_array_entry_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    write_format1(path, json.dumps({"kind": "array", "index": 0}))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("leaf_0.npy", header.getvalue() + b"\x80\x04N.")  # a pickle of None
    assert_rejected(path, "Python objects")


# --- crafted structures (written as version 1, which had no checksum) --------------------------


def nested(depth):
    """A structure of lists inside lists, ``depth`` deep."""
    return '{"kind": "list", "items": []}' if depth == 0 else \
        '{"kind": "list", "items": [' + nested(depth - 1) + "]}"


CRAFTED = {  # id: (structure JSON, leaves, message)
    "not-an-object": ("1", (), "structure entry"),                          # TypeError before
    "list-not-object": ('["kind"]', (), "structure entry"),
    "keys-without-items": (
        '{"kind": "dict", "keys": ["a", "b"], "items": [{"kind": "value", "value": 1}]}', (),
        "keys"),                                                             # "b" dropped before
    "duplicate-keys": ('{"kind": "dict", "keys": ["a", "a"], "items": [{"kind": "value", '
                       '"value": 1}, {"kind": "value", "value": 2}]}', (), "keys"),
    "missing-leaf": ('{"kind": "array", "index": 3}', (np.zeros(2),), "leaf_3, which is missing"),
    "string-index": ('{"kind": "array", "index": "0"}', (np.zeros(2),), "no int 'index'"),
    "bool-index": ('{"kind": "array", "index": true}', (np.zeros(2),), "no int 'index'"),
    "leaf-twice": ('{"kind": "list", "items": [{"kind": "array", "index": 0}, '
                   '{"kind": "array", "index": 0}]}', (np.zeros(2),), "used twice"),
    "unused-leaf": ('{"kind": "list", "items": []}', (np.zeros(2),), r"arrays \['leaf_0'\] are not in"),
    "scalar-not-0d": ('{"kind": "scalar_array", "index": 0}', (np.zeros(2),), "should be a scalar"),
    "value-list": ('{"kind": "value", "value": [1, 2]}', (), "value entry holds a list"),
    "unknown-kind": ('{"kind": "set", "items": []}', (), "unknown entry kind 'set'"),
    "generator-name-list": ('{"kind": "generator", "bit_generator": ["PCG64"], "state": {}}', (),
                            "no str 'bit_generator'"),
    "generator-not-bit": ('{"kind": "generator", "bit_generator": "Generator", "state": {}}', (),
                          "unknown NumPy bit"),
    "generator-state": ('{"kind": "generator", "bit_generator": "PCG64", '
                        '"state": {"bit_generator": "PCG64"}}', (), "generator state is invalid"),
    "generator-object-key": ('{"kind": "generator", "bit_generator": "MT19937", "state": '
                             '{"bit_generator": "MT19937", "state": {"key": {"__ndarray__": [1], '
                             '"dtype": "|O"}, "pos": 0}}}', (), "generator state is invalid"),
    "json-100000-deep": ("[" * 100_000 + "]" * 100_000, (), "not readable JSON"),  # RecursionError
    "structure-too-deep": (None, (), f"nested deeper than {MAX_DEPTH}"),
    "not-json": ("{not json", (), "not readable JSON"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_structures_are_input_errors(tmp_path, case):
    structure, leaves, match = CRAFTED[case]
    structure = nested(MAX_DEPTH + 5) if structure is None else structure
    path = tmp_path / "crafted.npz"
    write_format1(path, structure, leaves)
    message = assert_rejected(path, match)
    assert "--resume" not in message


def test_reserved_entry_of_the_wrong_type_is_input_error(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, __format__=np.array("refnode-checkpoint-1"), __structure__=np.arange(3),
             __metadata__=np.array("{}"))
    assert_rejected(path, "__structure__ should be a string")


def test_unknown_entries_are_input_errors(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"x": np.zeros(2)})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("extra.npy", npy_bytes(np.zeros(1)))
    assert_rejected(path, "'extra'.* unexpected")


# --- corruption: bit flips and the checksum ----------------------------------------------------


def test_zip_flag_and_method_flips_are_input_errors_not_runtime_errors(tmp_path):
    # Bit 0 of the general-purpose flag means "encrypted" (zipfile: RuntimeError), and the
    # compression method 0 -> 1 is "shrunk" (zipfile: NotImplementedError).
    path = tmp_path / "c.npz"
    save_checkpoint(path, TREE)
    data = path.read_bytes()
    central = data.index(b"PK\x01\x02")  # the first central-directory record
    for offset, match in ((central + 8, "encrypted"), (central + 10, "compressed")):
        flipped = bytearray(data)
        flipped[offset] ^= 0x01
        path.write_bytes(bytes(flipped))
        assert_rejected(path, match)


def flip_bits(tmp_path, stride):
    """Flip one bit in every ``stride``-th byte of a checkpoint, one byte at a time: each
    load is an InputError naming the file, or gives the saved tree exactly."""
    path = tmp_path / "c.npz"
    save_checkpoint(path, TREE, {"epoch": 2})
    data = path.read_bytes()
    expected_rng = np.random.default_rng(3).normal(size=4)
    outcomes = {"rejected": 0, "identical": 0}
    for offset in range(0, len(data), stride):
        corrupted = bytearray(data)
        corrupted[offset] ^= 1 << (offset % 8)
        path.write_bytes(bytes(corrupted))
        try:
            tree, metadata = load_checkpoint(path)
        except InputError as exc:
            assert str(path) in str(exc)
            outcomes["rejected"] += 1
            continue
        # Bytes the content does not depend on (timestamps, header padding) may change.
        assert metadata == {"epoch": 2} and tree["step"] == 7
        np.testing.assert_array_equal(tree["theta"][0], TREE["theta"][0])
        assert tree["theta"][1] == np.float32(1.5)
        np.testing.assert_array_equal(tree["rng"].normal(size=4), expected_rng)
        outcomes["identical"] += 1
    return outcomes


def test_bit_flips_in_every_13th_byte_are_detected_or_harmless(tmp_path):
    outcomes = flip_bits(tmp_path, stride=13)
    assert outcomes["rejected"] > 0.8 * sum(outcomes.values()), outcomes


@pytest.mark.slow
def test_bit_flips_in_every_byte_are_detected_or_harmless(tmp_path):
    outcomes = flip_bits(tmp_path, stride=1)
    assert outcomes["rejected"] > 0.8 * sum(outcomes.values()), outcomes


def test_checksum_detects_a_changed_array_inside_a_valid_archive(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"W": np.ones(3)})
    with np.load(path, allow_pickle=False) as npz:
        entries = {name: npz[name] for name in npz.files}
    entries["leaf_0"] = np.array([1.0, 1.0, 2.0])  # a consistent archive, CRC-32 and all
    np.savez(path, **entries)
    assert_rejected(path, "checksum")


def test_version_1_checkpoints_without_checksum_still_load(tmp_path):
    path = tmp_path / "old.npz"
    structure = {"kind": "dict", "keys": ["W", "epoch"],
                 "items": [{"kind": "array", "index": 0}, {"kind": "value", "value": 3}]}
    write_format1(path, json.dumps(structure), (np.eye(2),), '{"run": "a"}')
    tree, metadata = load_checkpoint(path)
    np.testing.assert_array_equal(tree["W"], np.eye(2))
    assert tree["epoch"] == 3 and metadata == {"run": "a"}


# --- messages ---------------------------------------------------------------------------------


def test_messages_say_what_to_do_and_name_no_missing_flag(tmp_path):
    with pytest.raises(InputError) as missing:
        load_checkpoint(tmp_path / "absent.npz")
    path = tmp_path / "c.npz"
    path.write_bytes(b"garbage")
    corrupt = assert_rejected(path, "corrupt")
    for message in (str(missing.value), corrupt):
        assert "--resume" not in message
    assert "delete it to train that model from the beginning" in corrupt
    assert "--runs DIR" in corrupt and "--run-dir DIR" in corrupt
    assert "--checkpoint-dir" not in corrupt          # no command has that flag


def test_self_containing_list_is_input_error_on_save(tmp_path):
    loop = []
    loop.append(loop)
    with pytest.raises(InputError, match="nested deeper"):
        save_checkpoint(tmp_path / "c.npz", {"x": loop})
    assert os.listdir(tmp_path) == []


# --- housekeeping: orphaned temporaries and the directory sync ----------------------------------

KILLED_WRITER = """
import os, signal, sys
import numpy as np
import refnode.checkpoint as checkpoint
import refnode.files

def write_half_then_die(file, named_arrays):
    file.write(b"PK\\x03\\x04" + bytes(100_000))
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)

checkpoint._write_arrays = write_half_then_die
checkpoint.save_checkpoint(sys.argv[1], {"x": np.zeros(3)})
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and pids of this machine")
def test_temporary_of_a_killed_writer_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"x": np.ones(3)})
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)],
                            env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert result.returncode == -9
    orphans = [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]
    assert len(orphans) == 1 and (tmp_path / orphans[0]).stat().st_size > 100_000
    np.testing.assert_array_equal(load_checkpoint(path)[0]["x"], np.ones(3))
    assert os.listdir(tmp_path) == ["ckpt.npz"]      # the load cleaned it


def test_stale_temporaries_go_and_live_writers_keep_theirs(tmp_path):
    live = f".tmp-{os.getppid()}-abc123.npz"          # our parent process is running
    for name in (".tmp-k2j4x9_q.npz", ".tmp-999999999-zzz.npz", live, "notes.tmp-1.npz",
                 ".tmp-odd.npy"):
        (tmp_path / name).write_bytes(b"x")
    save_checkpoint(tmp_path / "ckpt.npz", {"x": np.zeros(1)})
    assert sorted(os.listdir(tmp_path)) == sorted([".tmp-odd.npy", live, "ckpt.npz",
                                                   "notes.tmp-1.npz"])
    assert remove_stale_temporaries(tmp_path) == []


def test_directory_is_synced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(src, dst):
        synced.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_checkpoint(tmp_path / "c.npz", {"x": np.zeros(2)})
    assert synced == ["file", "rename", "dir"] if os.name == "posix" else ["file", "rename"]


def test_int_too_long_for_json_is_input_error_on_save(tmp_path):
    with pytest.raises(InputError, match="cannot store the tree.*4300"):
        save_checkpoint(tmp_path / "c.npz", {"n": 10**5000})
    assert os.listdir(tmp_path) == []


def test_unwritable_directory_is_a_write_error_on_save(tmp_path, monkeypatch):
    def refuse(**kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(refnode.files.tempfile, "mkstemp", refuse)
    with pytest.raises(WriteError, match="cannot write .*c.npz.*Permission denied.*another path"):
        save_checkpoint(tmp_path / "c.npz", {"x": np.zeros(1)})


def test_load_from_a_directory_it_cannot_clean_still_works(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "c.npz", {"x": np.arange(3)})
    (tmp_path / ".tmp-orphan.npz").write_bytes(b"x")

    def refuse(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "unlink", refuse)
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "c.npz")[0]["x"], np.arange(3))


def test_a_write_that_fails_midway_leaves_no_archive_open():
    """The archive is closed when the disk fills mid-write (NumPy 2.0's savez left its
    ZipFile open, and Python reported it when the garbage collector found it)."""
    import errno
    import gc

    from refnode.checkpoint import _write_arrays

    class FillsUp(io.BytesIO):
        def write(self, data):
            if self.tell() + len(data) > 500:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    reported = []
    previous, sys.unraisablehook = sys.unraisablehook, reported.append
    try:
        with pytest.raises(OSError, match="No space"):
            _write_arrays(FillsUp(), {"z": np.zeros(1000), "t": np.ones(3)})
        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert reported == []
