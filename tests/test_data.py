"""Data: spirals, toy densities and targets, IDX reading and MNIST download verification.

Everything here is generated in the test (tiny IDX files included); nothing uses a network.
"""

import gzip
import hashlib
import math
import os

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

pytestmark = pytest.mark.data

from refnode.data import idx
from refnode.data import (TARGET_LOG_DENSITIES, TOY_DATASETS, generate_spirals,
                          irregular_subsample, load_mnist, normalize, read_idx, sample,
                          split_windows, target_log_density, target_score)
from refnode.errors import InputError

# --- spirals -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spirals():
    return generate_spirals(n_spirals=1000, n_total=100, noise_std=0.1, seed=0)


def test_spiral_shapes_and_half_clockwise(spirals):
    assert spirals.t.shape == (100,)
    assert spirals.z_true.shape == spirals.z_obs.shape == (1000, 100, 2)
    assert spirals.clockwise.dtype == bool and spirals.clockwise.sum() == 500
    np.testing.assert_allclose(np.diff(spirals.t), spirals.t[1] - spirals.t[0], rtol=1e-12)
    assert len(np.unique(spirals.phi0)) == 1000  # every spiral starts somewhere else


def test_spirals_are_reproducible_and_seed_dependent(spirals):
    again = generate_spirals(n_spirals=1000, n_total=100, noise_std=0.1, seed=0)
    np.testing.assert_array_equal(again.z_obs, spirals.z_obs)
    np.testing.assert_array_equal(again.clockwise, spirals.clockwise)
    other = generate_spirals(n_spirals=1000, n_total=100, noise_std=0.1, seed=1)
    assert not np.allclose(other.z_obs, spirals.z_obs)


def test_spiral_sense_of_rotation(spirals):
    # The cross product z x dz has the sign of the angular velocity: > 0 counter-clockwise.
    z = spirals.z_true
    dz = np.diff(z, axis=1)
    cross = z[:, :-1, 0] * dz[..., 1] - z[:, :-1, 1] * dz[..., 0]
    assert np.all(cross[spirals.clockwise] < 0)
    assert np.all(cross[~spirals.clockwise] > 0)


def test_spirals_are_archimedean(spirals):
    # r = b * phi with phi = phi0 + t, so dr/dt = b and r(0) = b * phi0.
    r = np.linalg.norm(spirals.z_true, axis=-1)
    dt = spirals.t[1] - spirals.t[0]
    np.testing.assert_allclose(np.diff(r, axis=1) / dt, 0.3, rtol=1e-9)
    np.testing.assert_allclose(r[:, 0], 0.3 * spirals.phi0, rtol=1e-12)


def test_spiral_noise_is_gaussian_with_requested_std(spirals):
    noise = (spirals.z_obs - spirals.z_true).ravel()  # 200 000 draws
    assert abs(noise.mean()) < 5 * 0.1 / math.sqrt(noise.size)
    # standard error of the sample std is about sigma / sqrt(2 N) = 1.6e-4
    assert noise.std() == pytest.approx(0.1, abs=1e-3)
    assert np.mean(np.abs(noise) < 0.1) == pytest.approx(0.6827, abs=0.005)


def test_noise_free_spirals():
    data = generate_spirals(n_spirals=4, n_total=10, noise_std=0.0, seed=3)
    np.testing.assert_array_equal(data.z_obs, data.z_true)


def test_split_windows_halves_the_grid():
    train, extrapolate = split_windows(100)
    assert (train, extrapolate) == (slice(0, 50), slice(50, 100))
    assert split_windows(10, train_fraction=0.8) == (slice(0, 8), slice(8, 10))
    with pytest.raises(InputError, match="empty window"):
        split_windows(10, train_fraction=1.0)


def test_irregular_subsample_draws_sorted_subsets_in_window(spirals):
    train, _ = split_windows(100)
    sub = irregular_subsample(spirals, 30, np.random.default_rng(5), window=train)
    assert sub.index.shape == sub.t.shape == (1000, 30) and sub.z.shape == (1000, 30, 2)
    assert np.all(np.diff(sub.index, axis=1) > 0)
    assert sub.index.min() >= 0 and sub.index.max() < 50
    rows = np.arange(1000)[:, None]
    np.testing.assert_array_equal(sub.t, spirals.t[sub.index])
    np.testing.assert_array_equal(sub.z, spirals.z_obs[rows, sub.index])
    assert np.all(sub.mask.sum(axis=1) == 30) and not sub.mask[:, 50:].any()
    assert len({tuple(row) for row in sub.index}) > 990  # each spiral its own times
    # every grid point of the window is equally likely: 1000 * 30 / 50 = 600 draws each
    counts = sub.mask[:, :50].sum(axis=0)
    assert np.all(np.abs(counts - 600) < 5 * math.sqrt(600 * (1 - 30 / 50)))


def test_irregular_subsample_reproducible_and_full(spirals):
    a = irregular_subsample(spirals, 50, 7)
    b = irregular_subsample(spirals, 50, 7)
    np.testing.assert_array_equal(a.index, b.index)
    full = irregular_subsample(spirals, 100, 7)
    np.testing.assert_array_equal(full.index, np.broadcast_to(np.arange(100), (1000, 100)))


@pytest.mark.parametrize("n_obs", [0, 51, 2.5])
def test_irregular_subsample_rejects_bad_counts(spirals, n_obs):
    with pytest.raises(InputError, match="n_obs"):
        irregular_subsample(spirals, n_obs, 0, window=slice(0, 50))


@pytest.mark.parametrize("kwargs", [dict(n_spirals=0), dict(n_total=1), dict(noise_std=-0.1),
                                    dict(start=(0.0, 1.0)), dict(start=(3.0, 2.0)), dict(dt=0.0)])
def test_generate_spirals_rejects_bad_arguments(kwargs):
    with pytest.raises(InputError):
        generate_spirals(**kwargs)


# --- toy samplers ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_toy_samplers_shape_and_reproducible(name):
    x = sample(name, 500, 0)
    assert x.shape == (500, 2) and x.dtype == np.float64 and np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, sample(name, 500, np.random.default_rng(0)))
    assert not np.array_equal(x, sample(name, 500, 1))


@pytest.mark.parametrize("name", ["two_circles", "eight_gaussians", "pinwheel", "rings"])
def test_symmetric_toy_sets_have_zero_mean_and_isotropic_covariance(name):
    # k-fold rotational symmetry (k >= 3) forces mean 0 and covariance proportional to the
    # identity. (Not the checkerboard: a quarter turn swaps its dark and light squares.)
    x = sample(name, 40000, 0)
    cov = np.cov(x.T)
    scale = math.sqrt(cov[0, 0] / x.shape[0])  # standard error of a mean coordinate
    assert np.all(np.abs(x.mean(axis=0)) < 5 * scale)
    assert cov[0, 0] == pytest.approx(cov[1, 1], rel=0.05)
    assert abs(cov[0, 1]) < 0.05 * cov[0, 0]


def test_checkerboard_points_lie_on_dark_squares():
    x = sample("checkerboard", 5000, 0)
    column, row = np.floor(x / 2.0 + 2.0).astype(int).T
    assert np.all((0 <= column) & (column < 4) & (0 <= row) & (row < 4))
    assert np.all((column + row) % 2 == 0)
    dark = (np.add.outer(np.arange(4), np.arange(4)) % 2 == 0).ravel()
    counts = np.bincount(4 * row + column, minlength=16)[dark]
    assert np.all(np.abs(counts - 5000 / 8) < 5 * math.sqrt(5000 / 8))  # all 8 squares equally


def test_rings_and_circles_radii():
    r = np.linalg.norm(sample("rings", 4000, 0), axis=1)
    nearest = np.abs(r[:, None] - np.array([0.75, 1.5, 2.25, 3.0])).min(axis=1)
    assert np.percentile(nearest, 99) < 0.3
    r = np.linalg.norm(sample("two_circles", 4000, 0), axis=1)
    assert np.mean(r > 2.25) == pytest.approx(0.5, abs=0.03)


def test_eight_gaussians_centres():
    x = sample("eight_gaussians", 8000, 0)
    angle = np.arctan2(x[:, 1], x[:, 0])
    sector = np.round(angle / (np.pi / 4)).astype(int) % 8
    counts = np.bincount(sector, minlength=8)
    assert np.all(np.abs(counts - 1000) < 5 * math.sqrt(1000))


def test_unknown_toy_name_lists_choices():
    with pytest.raises(InputError, match="two_moons"):
        sample("swiss_roll", 10, 0)
    with pytest.raises(InputError):
        sample("two_moons", 0, 0)


# --- density-matching targets ----------------------------------------------------------------


def test_target_values_by_hand():
    z = np.array([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    u1, u2, u3, u4 = (target_log_density(n)(z) for n in ("u1", "u2", "u3", "u4"))
    # U1 at (2, 0): on the ring, at a lobe centre: -ln(1 + exp(-(4/0.6)^2 / 2))
    assert u1[0] == pytest.approx(math.log1p(math.exp(-0.5 * (4 / 0.6) ** 2)), abs=1e-15)
    assert u2[1] == 0.0  # on the ridge w1(0) = 0
    # at z1 = 1: w1 = 1, w2 = 3, w3 = 3/2, so at z2 = 1 the first term is exp(0)
    assert u3[2] == pytest.approx(math.log1p(math.exp(-0.5 * (3 / 0.35) ** 2)), abs=1e-15)
    assert u4[3] == pytest.approx(math.log1p(math.exp(-0.5 * (1.5 / 0.35) ** 2)), abs=1e-15)


def test_target_symmetries():
    z = np.random.default_rng(0).normal(scale=2.0, size=(200, 2))
    u1 = TARGET_LOG_DENSITIES["u1"]
    np.testing.assert_allclose(u1(-z), u1(z), rtol=1e-13)
    np.testing.assert_allclose(u1(z * [1, -1]), u1(z), rtol=1e-13)
    u2 = TARGET_LOG_DENSITIES["u2"]
    np.testing.assert_allclose(u2(z + [4.0, 0.0]), u2(z), rtol=1e-10, atol=1e-12)  # period 4 in z1


@pytest.mark.parametrize("name", sorted(TARGET_LOG_DENSITIES))
def test_targets_finite_far_away_and_differentiable_by_autograd(name):
    log_p = TARGET_LOG_DENSITIES[name]
    far = np.array([[0.0, 60.0], [-50.0, -50.0]])
    assert np.all(np.isfinite(log_p(far)))
    z = np.random.default_rng(1).normal(size=(5, 2))
    grad = autograd.grad(lambda x: anp.sum(log_p(x)))(z)
    h = 1e-6
    for i in range(2):
        e = np.zeros(2)
        e[i] = h
        central = (log_p(z + e) - log_p(z - e)) / (2 * h)
        np.testing.assert_allclose(grad[:, i], central, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(TARGET_LOG_DENSITIES))
def test_hand_derived_scores_equal_autograds_gradient(name):
    """The scores the device path uses (autograd cannot trace CuPy arrays) are the
    gradients autograd gives on the CPU, near the modes and far from them."""
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(scale=2.5, size=(500, 2)), [[0.0, 60.0], [-50.0, -50.0]]])
    expected = autograd.elementwise_grad(target_log_density(name))(z)
    np.testing.assert_allclose(target_score(name)(z), expected, rtol=1e-12, atol=1e-13)


def test_hand_derived_scores_run_on_device_arrays():
    from refnode import device
    z = np.random.default_rng(3).normal(size=(7, 2))
    for name in sorted(TARGET_LOG_DENSITIES):
        on = target_score(name)(device.to_device(z, "strict"))
        assert device.device_of(on) == "strict"
        assert np.array_equal(device.to_host(on), target_score(name)(z))


def test_unknown_target_and_bad_shape():
    with pytest.raises(InputError, match="u1"):
        target_log_density("banana")
    with pytest.raises(InputError, match="u1"):
        target_score("banana")
    with pytest.raises(InputError, match=r"\(N, 2\)"):
        target_log_density("u2")(np.zeros(3))


# --- IDX files ------------------------------------------------------------------------------------


def idx_bytes(array, type_code=0x08):
    """Encode ``array`` as IDX, written by hand from the format description."""
    dtype = idx.IDX_DTYPES[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.asarray(array, dtype=dtype).tobytes()


def write(path, data, compress=False):
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("type_code, values", [
    (0x08, np.arange(24).reshape(2, 3, 4)), (0x09, np.array([-3, 0, 7])),
    (0x0B, np.array([[-300, 2], [5, 30000]])), (0x0C, np.array([2**31 - 1, -(2**31)])),
    (0x0D, np.array([1.5, -2.25])), (0x0E, np.array([[np.pi]])),
])
def test_read_idx_round_trip(tmp_path, compress, type_code, values):
    path = write(tmp_path / ("x.idx.gz" if compress else "x.idx"), idx_bytes(values, type_code), compress)
    got = read_idx(path)
    assert got.shape == values.shape and got.dtype.isnative
    assert got.dtype == idx.IDX_DTYPES[type_code].newbyteorder("=")
    np.testing.assert_array_equal(got, values)
    got[...] = 0  # a writable copy


@pytest.mark.parametrize("corrupt, message", [
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "trailing bytes"),
    (lambda b: b[:6], "truncated inside its header"),
    (lambda b: b[:3], "no header"),
    (lambda b: b"\x01" + b[1:], "not an IDX file"),
    (lambda b: b[:2] + b"\x0a" + b[3:], "unknown element type 0x0a"),
    (lambda b: b[:3] + b"\x00", "0 dimensions"),
])
def test_read_idx_rejects_corrupt_files(tmp_path, corrupt, message):
    path = write(tmp_path / "bad-idx3-ubyte", corrupt(idx_bytes(np.zeros((2, 3, 3)))))
    with pytest.raises(InputError, match=message) as info:
        read_idx(path)
    assert "bad-idx3-ubyte" in str(info.value) and "download the file again" in str(info.value)


def test_read_idx_truncated_gzip_and_missing(tmp_path):
    path = write(tmp_path / "x.gz", idx_bytes(np.arange(1000) % 256), compress=True)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match="could not be decompressed"):
        read_idx(path)
    with pytest.raises(InputError, match="does not exist"):
        read_idx(tmp_path / "missing")


def make_mnist_dir(directory, n=6, compress=True, n_labels=None, label_max=9):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28))
    labels = np.arange(n if n_labels is None else n_labels) % (label_max + 1)
    for kind in ("train", "test"):
        image_name, label_name = idx.MNIST_FILES[kind]
        suffix = ".gz" if compress else ""
        write(directory / (image_name + suffix), idx_bytes(images), compress)
        write(directory / (label_name + suffix), idx_bytes(labels), compress)
    return images, labels


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("kind", ["train", "test"])
def test_load_mnist(tmp_path, compress, kind):
    images, labels = make_mnist_dir(tmp_path, compress=compress)
    got_images, got_labels = load_mnist(tmp_path, kind)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    x = normalize(got_images)
    assert x.shape == (6, 1, 28, 28) and x.dtype == np.float64
    np.testing.assert_allclose(x[:, 0] * 255.0, images, rtol=1e-14)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_load_mnist_count_mismatch_and_bad_labels(tmp_path):
    make_mnist_dir(tmp_path, n_labels=5)
    with pytest.raises(InputError, match="6 images but .* 5 labels"):
        load_mnist(tmp_path, "train")
    make_mnist_dir(tmp_path, n=12, label_max=10)
    with pytest.raises(InputError, match="label 10"):
        load_mnist(tmp_path, "test")


def test_load_mnist_missing_files_and_kind(tmp_path):
    with pytest.raises(InputError, match=r"train-images-idx3-ubyte\[.gz\].*--data DIR"):
        load_mnist(tmp_path, "train")
    with pytest.raises(InputError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(InputError, match="kind"):
        load_mnist(tmp_path, "validation")


def test_normalize_rejects_floats():
    with pytest.raises(InputError, match="uint8"):
        normalize(np.zeros((2, 28, 28)))


def test_fashion_mnist_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(idx, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(InputError, match="apt-get install dataset-fashion-mnist, or pass --data DIR"):
        idx.fashion_mnist_dir()
    monkeypatch.setattr(idx, "FASHION_MNIST_DIR", str(tmp_path))
    assert idx.fashion_mnist_dir() == str(tmp_path)


def test_published_checksums_are_well_formed():
    assert set(idx.MNIST_SHA256) == {name + ".gz" for pair in idx.MNIST_FILES.values() for name in pair}
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in idx.MNIST_SHA256.values())


# --- download verification (no network: the fetch is replaced) -----------------------------------


@pytest.fixture
def fake_mirror(tmp_path, monkeypatch):
    """Local stand-ins for the four files, with their checksums installed as the expected ones."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    make_mnist_dir(mirror)
    checksums = {name: hashlib.sha256((mirror / name).read_bytes()).hexdigest() for name in idx.MNIST_SHA256}
    monkeypatch.setattr(idx, "MNIST_SHA256", checksums)
    fetched = []

    def fetch(url, destination):
        fetched.append(url)
        with open(destination, "wb") as f:
            f.write((mirror / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(idx, "_fetch", fetch)
    return mirror, checksums, fetched


def test_download_verifies_and_skips_valid_files(tmp_path, fake_mirror):
    _, _, fetched = fake_mirror
    cache = tmp_path / "cache"
    assert idx.download_mnist(cache, base_url="https://example.invalid/") == str(cache)
    assert len(fetched) == 4 and sorted(os.listdir(cache)) == sorted(idx.MNIST_SHA256)
    load_mnist(cache, "train")
    idx.download_mnist(cache, base_url="https://example.invalid/")
    assert len(fetched) == 4  # all four present and valid: nothing fetched again


def test_download_rejects_bad_checksum_and_keeps_nothing(tmp_path, fake_mirror, monkeypatch):
    _, checksums, _ = fake_mirror
    wrong = dict(checksums, **{"t10k-labels-idx1-ubyte.gz": "0" * 64})
    monkeypatch.setattr(idx, "MNIST_SHA256", wrong)
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match="checksum mismatch for t10k-labels-idx1-ubyte.gz"):
        idx.download_mnist(cache, base_url="https://example.invalid/")
    assert "t10k-labels-idx1-ubyte.gz" not in os.listdir(cache)
    assert not [name for name in os.listdir(cache) if name.endswith(".part")]


def test_download_replaces_a_corrupt_cached_file(tmp_path, fake_mirror):
    mirror, _, fetched = fake_mirror
    cache = tmp_path / "cache"
    idx.download_mnist(cache, base_url="https://example.invalid/")
    (cache / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    idx.download_mnist(cache, base_url="https://example.invalid/")
    assert len(fetched) == 5
    name = "train-labels-idx1-ubyte.gz"
    assert (cache / name).read_bytes() == (mirror / name).read_bytes()
