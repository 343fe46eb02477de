"""Training-run support: atomic checkpoints (round trip, crash safety, RNG resume) and the
progress bar (TTY redraws, plain log lines, throttling)."""

import io
import os

import numpy as np
import pytest

pytestmark = pytest.mark.training

import refnode.checkpoint as checkpoint
from refnode.checkpoint import load_checkpoint, save_checkpoint
from refnode.errors import InputError
from refnode.progress import progress


def assert_same_tree(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same_tree(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tree(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b or (a != a and b != b)  # NaN == NaN here


# --- round trip -------------------------------------------------------------------------


def test_nested_tree_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    tree = {
        "theta": ({"W": rng.normal(size=(3, 4)), "b": np.zeros(4, np.float32)}, [np.arange(5)]),
        "epoch": 12, "lr": 0.01, "done": False, "name": "odenet", "note": None,
        "best": float("inf"), "flags": np.array([True, False]), "empty": [], "pair": (1, 2.5),
        "np_scalar": np.float64(2.5), "int_scalar": np.int32(-3), "zero_d": np.array(7.0),
    }
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, tree, {"epoch": 12, "args": {"method": "dopri5"}})
    loaded, metadata = load_checkpoint(path)
    assert_same_tree(tree, loaded)
    assert metadata == {"epoch": 12, "args": {"method": "dopri5"}}


def test_file_is_plain_npz_without_pickles(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"W": np.eye(2)}, {"epoch": 1})
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"leaf_0", "__format__", "__structure__", "__metadata__",
                                  "__checksum__"}
        np.testing.assert_array_equal(npz["leaf_0"], np.eye(2))


def test_overwrite_replaces_previous_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"x": np.zeros(3)})
    save_checkpoint(path, {"x": np.ones(3)})
    np.testing.assert_array_equal(load_checkpoint(path)[0]["x"], np.ones(3))
    assert os.listdir(tmp_path) == ["ckpt.npz"]


# --- crash safety -------------------------------------------------------------------------


def test_failure_during_write_keeps_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"x": np.arange(4.0)}, {"epoch": 1})

    def crash_half_way(file, named_arrays):
        file.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("simulated crash during write")

    monkeypatch.setattr(checkpoint, "_write_arrays", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"x": np.full(4, -1.0)}, {"epoch": 2})
    monkeypatch.undo()
    tree, metadata = load_checkpoint(path)
    np.testing.assert_array_equal(tree["x"], np.arange(4.0))
    assert metadata == {"epoch": 1}
    assert os.listdir(tmp_path) == ["ckpt.npz"]


# --- random generator resume ----------------------------------------------------------------


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937, np.random.Philox])
def test_generator_resumes_same_stream(tmp_path, bit_generator):
    rng = np.random.Generator(bit_generator(1234))
    rng.normal(size=17)  # advance part-way, including a cached uint32 half
    rng.integers(0, 10, size=3)
    save_checkpoint(tmp_path / "rng.npz", {"rng": rng, "step": 3})
    expected = (rng.normal(size=50), rng.permutation(100), rng.random())
    loaded, _ = load_checkpoint(tmp_path / "rng.npz")
    resumed = loaded["rng"]
    assert isinstance(resumed.bit_generator, bit_generator)
    got = (resumed.normal(size=50), resumed.permutation(100), resumed.random())
    np.testing.assert_array_equal(expected[0], got[0])
    np.testing.assert_array_equal(expected[1], got[1])
    assert expected[2] == got[2]


# --- errors ------------------------------------------------------------------------------------


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.npz")


def test_truncated_file_is_input_error(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, {"x": np.arange(1000.0)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_foreign_npz_is_input_error(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(2))
    with pytest.raises(InputError, match="not a refnode checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("tree, metadata", [
    ({1: np.zeros(2)}, {}),                       # non-str dict key
    ({"x": np.array([object()])}, {}),            # object array would need a pickle
    ({"x": {1, 2}}, {}),                          # a set is not a supported container
    ({"x": np.zeros(2)}, {"bad": np.zeros(2)}),   # metadata must be JSON
])
def test_unstorable_input_is_input_error_and_writes_nothing(tmp_path, tree, metadata):
    with pytest.raises(InputError):
        save_checkpoint(tmp_path / "c.npz", tree, metadata)
    assert os.listdir(tmp_path) == []


# --- progress bar ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, step):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_yields_every_item_unchanged():
    items = list(progress(iter("abc"), enabled=False))
    assert items == ["a", "b", "c"]


def test_progress_log_lines_are_throttled_and_show_metrics():
    stream = io.StringIO()
    bar = progress(range(100), desc="train", stream=stream, clock=FakeClock(1.0), interval_s=30.0)
    for i in bar:
        bar.set(loss=1.0 / (i + 1), nfe=26)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    # the fake clock advances 1 s per call (one per item, one more per draw): a line
    # about every 30 items, not one per item
    assert 4 <= len(lines) <= 10
    assert lines[0].startswith("train  1/100 [  1%]")
    assert lines[-1].startswith("train  100/100 [100%]")
    assert "loss=0.01 " in lines[-1] + " " and "nfe=26" in lines[-1]


def test_progress_on_tty_redraws_one_line():
    stream = FakeTTY()
    bar = progress(range(5), stream=stream, clock=FakeClock(1.0), interval_s=0.0)
    for _ in bar:
        bar.set(loss=np.float64(0.5), nfe=np.int64(123456), method="rk4")
    text = stream.getvalue()
    assert text.count("\r") == 6  # five items plus the final draw
    assert text.endswith("\n") and text.count("\n") == 1
    assert "5/5 [100%]" in text and "loss=0.5  nfe=123456  method=rk4" in text


def test_progress_disabled_writes_nothing_and_unknown_total():
    stream = io.StringIO()
    for _ in progress((i for i in range(3)), enabled=False, stream=stream):
        pass
    assert stream.getvalue() == ""
    stream = io.StringIO()
    for _ in progress((i for i in range(3)), stream=stream, interval_s=0.0, desc="gen"):
        pass
    assert stream.getvalue().splitlines()[-1].startswith("gen  3 it")
