"""The IDX reader checks the header before reading data and reads no more than it promises.

Round trips and the ordinary corrupt-file messages are in test_data.py; here are the
adversarial files: gzip bombs, headers whose sizes overflow 64-bit integers, and
compressed files under any name.
"""

import gzip
import tracemalloc
import zlib

import numpy as np
import pytest

from refnode.data import idx, read_idx
from refnode.errors import InputError

pytestmark = pytest.mark.data


def header(type_code, shape):
    return bytes([0, 0, type_code, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape)


def gzip_of(parts):
    """gzip bytes of the concatenation of ``parts`` (an iterable of bytes), compressed
    piece by piece so that a large uncompressed payload is never held in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip container
    return b"".join(compressor.compress(p) for p in parts) + compressor.flush()


def peak_bytes(function):
    """Peak memory traced by tracemalloc while ``function()`` runs, and its result/error."""
    tracemalloc.start()
    try:
        try:
            outcome = function()
        except InputError as exc:
            outcome = exc
        return tracemalloc.get_traced_memory()[1], outcome
    finally:
        tracemalloc.stop()


def test_gzip_bomb_is_refused_after_reading_only_what_the_header_promises(tmp_path):
    # 18 bytes of images declared, then 64 MiB of zeros: about 64 kB compressed.
    bomb = 64 << 20
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(gzip_of([header(0x08, (2, 3, 3)), bytes(18)] + [bytes(1 << 20)] * (bomb >> 20)))
    assert path.stat().st_size < bomb // 500
    peak, outcome = peak_bytes(lambda: read_idx(path))
    assert isinstance(outcome, InputError)
    assert "trailing bytes" in str(outcome) and "bomb-idx3-ubyte.gz" in str(outcome)
    assert peak < 4 << 20, f"peak {peak} bytes while rejecting a 64 MiB bomb"


def test_header_promising_more_than_a_gzip_file_can_hold_is_refused_before_reading(tmp_path):
    path = tmp_path / "short-idx3-ubyte.gz"
    path.write_bytes(gzip_of([header(0x08, (60000, 280, 280)), bytes(1000)]))
    peak, outcome = peak_bytes(lambda: read_idx(path))
    assert isinstance(outcome, InputError) and "cannot hold that many" in str(outcome)
    assert "short-idx3-ubyte.gz" in str(outcome)
    assert peak < 1 << 20


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("shape, type_code", [
    ((2**31, 2**31, 4), 0x08),       # 2^64 elements: np.prod(..., uint32/int64) wraps to 0
    ((2**32 - 1,) * 3, 0x0E),        # ~6e29 bytes
    ((2**16, 2**16, 2, 1), 0x0B),    # 16 GiB of int16: twice the limit
])
def test_absurd_declared_sizes_are_refused_with_python_integers(tmp_path, compress, shape, type_code):
    data = header(type_code, shape) + bytes(64)
    path = tmp_path / ("huge.gz" if compress else "huge")
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(InputError, match=r"more than the limit of 8589934592.*MAX_IDX_BYTES") as info:
        read_idx(path)
    assert "huge" in str(info.value) and str(shape) in str(info.value)


@pytest.mark.parametrize("shape", [(0, 2**31, 2**31, 2**31), (2**32 - 1, 0, 2**32 - 1)])
def test_zero_sized_shape_with_huge_dimensions_is_input_error(tmp_path, shape):
    # Found by tests/test_fuzz_files.py: 0 bytes of data, but NumPy refuses the shape.
    path = tmp_path / "empty-idx"
    path.write_bytes(header(0x08, shape))
    with pytest.raises(InputError, match="no data, but its other dimensions span"):
        read_idx(path)


def test_declared_size_at_the_limit_is_checked_against_the_file_not_allocated(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(header(0x08, (2**16, 2**16, 2)) + bytes(8))   # exactly MAX_IDX_BYTES
    assert 2**16 * 2**16 * 2 == idx.MAX_IDX_BYTES
    peak, outcome = peak_bytes(lambda: read_idx(path))
    assert isinstance(outcome, InputError) and "the file has 8" in str(outcome)
    assert peak < 1 << 20


def test_gzip_is_recognised_by_its_magic_number_whatever_the_name(tmp_path):
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "train-images-idx3-ubyte"   # no .gz, but compressed
    path.write_bytes(gzip.compress(header(0x08, images.shape) + images.tobytes()))
    np.testing.assert_array_equal(read_idx(path), images)


def test_gzip_with_garbage_after_the_stream_is_an_input_error(tmp_path):
    images = np.zeros((2, 2), np.uint8)
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(header(0x08, images.shape) + images.tobytes()) + b"junk")
    with pytest.raises(InputError, match="x.gz"):
        read_idx(path)


def test_directory_and_unreadable_paths_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_idx(tmp_path)
