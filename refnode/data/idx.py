"""MNIST and Fashion-MNIST from IDX files, without a network in tests.

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"), all
integers big-endian::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                              0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    4 * d       the size of each dimension, uint32
    the rest    the elements, C order

:func:`load_mnist` reads the four standard files (plain or ``.gz``) from a directory.
Fashion-MNIST (Xiao et al. 2017) uses the same names and format; Debian's
``dataset-fashion-mnist`` package installs it under ``/usr/share/datasets/fashion-mnist``.
:func:`download_mnist` fetches MNIST where a network exists and checks SHA-256 sums.
"""

import gzip
import hashlib
import math
import os
import shutil
import tempfile
import urllib.request
import zlib

import numpy as np

from ..errors import InputError, RefnodeError

IDX_DTYPES = {
    0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NUM_CLASSES = 10
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian: dataset-fashion-mnist

# The mirror TensorFlow Datasets downloads from, and its published sizes and SHA-256 sums
# (tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt).
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

_REDOWNLOAD = "download the file again (or check the path)"

#: The largest IDX data section read (8 GiB), far above any data set refnode uses (MNIST's
#: training images are 47 MB); a header declaring more is refused before anything is read.
MAX_IDX_BYTES = 2**33
#: Deflate expands at most about 1032:1 (zlib's technical details, "Maximum compression
#: factor"), so a gzip file of C bytes cannot hold more than 1032 * C bytes of data.
DEFLATE_MAX_RATIO = 1032
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def _open(path):
    """(stream, raw file, gzipped): the file as a binary stream, gzip recognised by its
    magic number whatever the file is called."""
    raw = open(path, "rb")
    gzipped = raw.read(2) == _GZIP_MAGIC
    raw.seek(0)
    return (gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw), raw, gzipped


def _read_at_most(stream, n):
    """Up to ``n`` bytes from ``stream`` (fewer only where the data ends), read in chunks so
    that memory grows with the data actually present, not with what a header claims."""
    data = bytearray()
    while len(data) < n:
        chunk = stream.read(min(_CHUNK, n - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def _parse_header(head, path):
    """(dtype, ndim) from the first four bytes of the header, each checked."""
    if len(head) < 4:
        raise InputError(f"IDX file {path!r} is truncated: {len(head)} bytes, no header; {_REDOWNLOAD}")
    if head[0] != 0 or head[1] != 0:
        raise InputError(f"{path!r} is not an IDX file: magic number starts {head[:2].hex()}, "
                         f"expected 0000; {_REDOWNLOAD}")
    type_code, ndim = head[2], head[3]
    if type_code not in IDX_DTYPES:
        raise InputError(f"IDX file {path!r} has unknown element type 0x{type_code:02x} "
                         f"(known: {', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}); {_REDOWNLOAD}")
    if ndim == 0:
        raise InputError(f"IDX file {path!r} declares 0 dimensions; {_REDOWNLOAD}")
    return IDX_DTYPES[type_code], ndim


def _data_size(path, dtype, shape, compressed_size, header_size, gzipped):
    """Bytes of data the header promises, as a Python int; absurd sizes are refused."""
    n_bytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    # With a zero dimension n_bytes is 0, but NumPy still refuses shapes whose other
    # dimensions multiply beyond its index range: bound those too.
    span = math.prod(max(d, 1) for d in shape) * dtype.itemsize
    if span > MAX_IDX_BYTES:
        raise InputError(f"IDX file {path!r} declares shape {shape} of {dtype.name}, "
                         f"{n_bytes if span == n_bytes else f'no data, but its other dimensions span {span}'} "
                         f"bytes, more than the limit of {MAX_IDX_BYTES} "
                         f"(refnode.data.idx.MAX_IDX_BYTES); the header is corrupt, {_REDOWNLOAD}")
    available = (DEFLATE_MAX_RATIO * compressed_size if gzipped
                 else compressed_size - header_size)
    if n_bytes > available:
        holds = (f"a gzip file of {compressed_size} bytes cannot hold that many" if gzipped
                 else f"the file has {available}")
        raise InputError(f"IDX file {path!r} is truncated: shape {shape} needs {n_bytes} bytes "
                         f"of data, {holds}; {_REDOWNLOAD}")
    return n_bytes


def read_idx(path):
    """Read one IDX file (plain or gzip-compressed).

    The header is read and checked first; then exactly the number of bytes it promises is
    read (a gzip file is decompressed as a stream), so a corrupt header or a compressed
    file with more data than declared never makes the reader allocate more than that.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ndarray
        Shape from the header, dtype the element type in native byte order.

    Raises
    ------
    InputError
        Missing file, bad magic number, unknown element type, a declared size above
        :data:`MAX_IDX_BYTES`, truncated header or data, or trailing bytes. The message
        names the file, the problem and what to do.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"IDX file {path!r} does not exist; check the path or pass --data DIR")
    gzipped = False
    try:
        stream, raw, gzipped = _open(path)
        with raw, stream:
            dtype, shape, data = _read_contents(stream, path, os.fstat(raw.fileno()).st_size, gzipped)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"IDX file {path!r} could not be {'decompressed' if gzipped else 'read'} "
                         f"({exc}); {_REDOWNLOAD}") from None
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def _read_contents(stream, path, file_size, gzipped):
    """(dtype, shape, data) of an open IDX stream, each part checked before the next is read."""
    dtype, ndim = _parse_header(_read_at_most(stream, 4), path)
    header_size = 4 + 4 * ndim
    dims = _read_at_most(stream, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise InputError(f"IDX file {path!r} is truncated inside its header "
                         f"({4 + len(dims)} of {header_size} bytes); {_REDOWNLOAD}")
    shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(ndim))
    expected = _data_size(path, dtype, shape, file_size, header_size, gzipped)
    data = _read_at_most(stream, expected)
    if len(data) < expected:
        raise InputError(f"IDX file {path!r} is truncated: shape {shape} needs {expected} bytes "
                         f"of data, found {len(data)}; {_REDOWNLOAD}")
    if stream.read(1):
        raise InputError(f"IDX file {path!r} has trailing bytes (corrupt?): shape {shape} needs "
                         f"{expected} bytes of data, the file holds more; {_REDOWNLOAD}")
    return dtype, shape, data


def _find(directory, name):
    """``directory/name`` or ``directory/name.gz``, whichever exists (plain first)."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise InputError(f"no {name}[.gz] in {directory!r}; put the four MNIST-format IDX files "
                     "there, run refnode.data.download_mnist(DIR), or pass --data DIR")


def load_mnist(directory, kind="train"):
    """Load MNIST-format images and labels from ``directory``.

    Parameters
    ----------
    directory : str or os.PathLike
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each plain or ``.gz``).
    kind : {"train", "test"}

    Returns
    -------
    images : ndarray of uint8, shape (N, H, W)
    labels : ndarray of int64, shape (N,), values in [0, 10)
    """
    if kind not in MNIST_FILES:
        raise InputError(f"kind must be one of {sorted(MNIST_FILES)}, got {kind!r}")
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise InputError(f"data directory {directory!r} does not exist; pass --data DIR")
    image_path, label_path = (_find(directory, name) for name in MNIST_FILES[kind])
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise InputError(f"{image_path!r} should hold uint8 images (N, H, W), "
                         f"got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise InputError(f"{label_path!r} should hold uint8 labels (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise InputError(f"{image_path!r} has {len(images)} images but {label_path!r} has "
                         f"{len(labels)} labels; the files come from different sets")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise InputError(f"{label_path!r} has label {labels.max()}, outside [0, {NUM_CLASSES})")
    return images, labels.astype(np.int64)


def normalize(images, dtype=np.float64):
    """uint8 images (N, H, W) -> floats in [0, 1] with a channel axis, (N, 1, H, W)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise InputError(f"normalize expects uint8 images (N, H, W), got {images.dtype} {images.shape}")
    return (images[:, None, :, :] / 255.0).astype(dtype)


def fashion_mnist_dir():
    """Where Debian's ``dataset-fashion-mnist`` package puts Fashion-MNIST; checked to exist."""
    if not os.path.isdir(FASHION_MNIST_DIR):
        raise InputError(f"Fashion-MNIST not found at {FASHION_MNIST_DIR}: "
                         "apt-get install dataset-fashion-mnist, or pass --data DIR")
    return FASHION_MNIST_DIR


# --- downloading ---------------------------------------------------------------------------------


def sha256_of(path):
    """Hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url, destination):
    """Copy ``url`` to the local file ``destination`` (tests replace this function)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as f:
        shutil.copyfileobj(response, f)


def download_mnist(cache_dir, base_url=MNIST_URL):
    """Download the four MNIST files into ``cache_dir`` unless valid copies are there.

    Each file is fetched into a temporary file in ``cache_dir``, its SHA-256 compared with
    :data:`MNIST_SHA256`, and only then moved into place, so a failed or tampered download
    never leaves a file that :func:`load_mnist` would read.

    Returns
    -------
    str
        ``cache_dir``, ready for :func:`load_mnist`.
    """
    cache_dir = os.fspath(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    for name, expected in MNIST_SHA256.items():
        destination = os.path.join(cache_dir, name)
        if os.path.isfile(destination) and sha256_of(destination) == expected:
            continue
        fd, partial = tempfile.mkstemp(dir=cache_dir, prefix=f".{name}.", suffix=".part")
        os.close(fd)
        try:
            try:
                _fetch(base_url + name, partial)
            except OSError as exc:
                raise RefnodeError(f"could not download {base_url + name} ({exc}); without a "
                                   f"network, copy the four MNIST files into {cache_dir!r} by hand") from None
            found = sha256_of(partial)
            if found != expected:
                raise InputError(f"checksum mismatch for {name} from {base_url}: SHA-256 {found}, "
                                 f"expected {expected}; the mirror or the transfer is bad, try again")
            os.replace(partial, destination)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return cache_dir
