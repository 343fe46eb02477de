"""A checkpoint's file on disk: reading it without trusting it, and its temporaries.

:func:`numpy.load` trusts the sizes a file declares: a corrupt ``.npy`` header inside the
archive can ask for terabytes before any data is read, and a damaged ZIP directory ends
in whatever exception the ``zipfile`` module meets first. This reader checks each part
against the next before using it:

* the file is a ZIP archive, not a bare ``.npy`` array;
* every entry is stored uncompressed and unencrypted (as :func:`numpy.savez` writes
  them), so its size is bounded by the file's;
* every entry is a ``.npy`` array (format 1.0 or 2.0, NumPy's "NEP 1" header) whose
  declared shape and dtype need exactly the bytes the entry holds, computed with
  Python integers, and whose dtype holds no Python objects (nothing is unpickled);
* only then are the bytes read, and the ZIP CRC-32 of each entry is verified.

Anything else raises :class:`MalformedFile` with the reason; the caller adds the path.

Writers (:func:`refnode.checkpoint.save_checkpoint`) name their temporary files
``.tmp-<pid>-*.npz``, so that :func:`remove_stale_temporaries` can tell the files of a
killed writer from those of one still at work.
"""

import math
import os
import re
import struct
import tokenize
import zipfile

import numpy as np

from .files import sync_directory  # noqa: F401  (re-exported: checkpoints sync their directory)

#: A single array file (``numpy.save``) starts with these bytes (NEP 1, "Format Version 1.0").
NPY_MAGIC = b"\x93NUMPY"
_CHUNK = 1 << 20
_TEMPORARY = re.compile(r"\.tmp-(?:([0-9]+)-)?[A-Za-z0-9_]+\.npz\Z")


class MalformedFile(Exception):
    """The file is not a well-formed ``.npz`` of plain arrays; the message says why."""


def read_npz(path, file_size):
    """All entries of the ``.npz`` at ``path`` as ``{name without .npy: ndarray}``.

    Parameters
    ----------
    path : str
    file_size : int
        The size of the file in bytes; no entry may claim more.

    Raises
    ------
    MalformedFile
        Whatever is wrong with the file, first problem found.
    """
    try:
        with open(path, "rb") as raw:
            if raw.read(len(NPY_MAGIC)) == NPY_MAGIC:
                raise MalformedFile("it is a single .npy array (numpy.save), not a checkpoint .npz")
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            if len(set(names)) != len(names):
                raise MalformedFile("it has two entries with the same name")
            contents = {}
            for info in infos:
                _check_entry(info, file_size)
                contents[info.filename[:-len(".npy")]] = _read_entry(archive, info, file_size)
            return contents
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError, OverflowError, struct.error) as exc:
        # zipfile raises NotImplementedError for unknown compression methods and
        # RuntimeError for encrypted entries; a damaged directory can give any of these.
        raise MalformedFile(f"it is not a readable .npz archive ({type(exc).__name__}: {exc})") from None


def _check_entry(info, file_size):
    name = info.filename
    if not name.endswith(".npy"):
        raise MalformedFile(f"entry {name!r} is not a .npy array")
    if info.flag_bits & 0x1:
        raise MalformedFile(f"entry {name!r} is encrypted")
    if info.compress_type != zipfile.ZIP_STORED:
        raise MalformedFile(f"entry {name!r} is compressed (method {info.compress_type}); "
                            "checkpoints store their arrays uncompressed")
    if info.file_size != info.compress_size or info.file_size > file_size:
        raise MalformedFile(f"entry {name!r} declares {info.file_size} bytes, stored as "
                            f"{info.compress_size}, in a file of {file_size}")


def _read_header(f, name):
    """(shape, fortran_order, dtype) from a .npy header, parsed by NumPy without eval.

    NumPy's parser raises ValueError for most bad headers, but also SyntaxError or
    tokenize.TokenError (it re-tokenizes headers of old files) for some.
    """
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f)
    except (ValueError, SyntaxError, TypeError, tokenize.TokenError, RecursionError) as exc:
        raise MalformedFile(f"entry {name!r} has a malformed .npy header ({exc})") from None
    raise MalformedFile(f"entry {name!r} has .npy format version {version}")


def _read_entry(archive, info, file_size):
    """One ``.npy`` entry: header checked against the entry's size, then the data read."""
    name = info.filename
    with archive.open(info) as f:
        shape, fortran_order, dtype = _read_header(f, name)
        if dtype.hasobject:
            raise MalformedFile(f"entry {name!r} holds Python objects ({dtype}), which would "
                                "need a pickle; checkpoints hold plain arrays only")
        if dtype.fields is not None or dtype.subdtype is not None:
            raise MalformedFile(f"entry {name!r} has a structured dtype {dtype}; checkpoints "
                                "hold plain arrays only")
        if dtype.itemsize == 0 or any(d < 0 for d in shape):
            raise MalformedFile(f"entry {name!r} declares dtype {dtype} and shape {shape}")
        count = math.prod(shape)
        n_bytes = count * dtype.itemsize           # Python ints: cannot overflow
        if math.prod(max(d, 1) for d in shape) * dtype.itemsize > file_size:
            raise MalformedFile(f"entry {name!r} declares shape {shape} of {dtype}, beyond "
                                f"what a file of {file_size} bytes can hold")
        holds = info.file_size - f.tell()
        if n_bytes != holds:
            raise MalformedFile(f"entry {name!r} declares shape {shape} of {dtype}, "
                                f"{n_bytes} bytes, but holds {holds}")
        data = bytearray(n_bytes)                  # bounded by the file's size
        view, filled = memoryview(data), 0
        while filled < n_bytes:
            got = f.readinto(view[filled:filled + _CHUNK])
            if not got:
                raise MalformedFile(f"entry {name!r} ends after {filled} of {n_bytes} bytes")
            filled += got
        if f.read(1):
            raise MalformedFile(f"entry {name!r} has bytes after its data")
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran_order else "C")


def _process_exists(pid):
    """Whether process ``pid`` runs on this machine (os.kill(pid, 0) only asks on POSIX)."""
    if os.name != "posix":
        return True  # on Windows os.kill would end the process: never remove such files
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process (or an odd pid): leave its file alone
    return True


def remove_stale_temporaries(directory):
    """Delete the ``.tmp-*.npz`` files in ``directory`` left by writers that no longer run.

    A temporary written by this version is named ``.tmp-<pid>-*.npz`` and is removed once
    no process <pid> exists on this machine. A ``.tmp-*.npz`` without a pid was written by
    an earlier version and is removed (were such a writer at work in this directory at
    this moment, that one save would fail, and its previous checkpoint stay intact).

    Returns
    -------
    list of str
        The names removed.
    """
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if match is None:
            continue
        pid = match.group(1)
        if pid is not None and (int(pid) == os.getpid() or _process_exists(int(pid))):
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed.append(name)
        except OSError:
            pass  # cleaned by another process first, or a directory we may not write
    return removed
