"""The experiments' shared pieces: atomic files, the training loop, seed summaries, CLI checks."""

import argparse
import json

import numpy as np
import pytest

from refnode.errors import InputError
from refnode.experiments import common, common_cli
from refnode.optim import Adam, step_schedule

pytestmark = pytest.mark.training


# --- files --------------------------------------------------------------------------------


def figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


def test_save_figure_writes_a_png_and_creates_its_directory(tmp_path):
    path = common.save_figure(figure(), tmp_path / "new" / "f.png")
    data = (tmp_path / "new" / "f.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 500
    assert str(path).endswith("f.png")
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["f.png"]


def test_an_interrupted_figure_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.png"
    target.write_bytes(b"old")
    fig = figure()

    def crash(file, **kwargs):
        file.write(b"half a png")
        raise KeyboardInterrupt

    fig.savefig = crash
    with pytest.raises(KeyboardInterrupt):
        common.save_figure(fig, target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_write_json_converts_numpy_and_refuses_nan(tmp_path):
    path = tmp_path / "r.json"
    common.write_json(path, {"a": np.float64(1.5), "b": np.arange(3), "c": None})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": None}
    with pytest.raises(ValueError):
        common.write_json(path, {"a": float("nan")})
    assert json.loads(path.read_text())["a"] == 1.5          # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


# --- training -----------------------------------------------------------------------------


TARGET = np.array([1.0, -2.0, 0.5])


def noisy_quadratic_step(params, iteration, rng):
    """Loss |p - target - noise|²/2 on a random draw: the loop must pass and save rng."""
    noise = 0.01 * rng.standard_normal(3)
    r = params["p"] - TARGET - noise
    return float(0.5 * r @ r), {"p": r}, {"iteration": iteration}


def run_quadratic(rng, **kwargs):
    return common.train(noisy_quadratic_step, {"p": np.zeros(3)}, Adam(0.1), 200, rng=rng,
                        schedule=step_schedule(0.1, [150], 0.1), show_progress=False, **kwargs)


def test_train_minimises_and_records_history():
    params, history = run_quadratic(np.random.default_rng(0))
    assert np.max(np.abs(params["p"] - TARGET)) < 0.05
    assert len(history["loss"]) == len(history["seconds"]) == 200
    assert history["iteration"] == list(range(200))
    assert history["loss"][-1] < 1e-2 * history["loss"][0]


def test_train_resumed_from_a_checkpoint_is_bit_identical(tmp_path):
    whole_rng = np.random.default_rng(1)
    whole, whole_history = run_quadratic(whole_rng)
    path = tmp_path / "ckpt" / "q.npz"
    first_rng = np.random.default_rng(1)
    run_quadratic(first_rng, checkpoint=str(path), checkpoint_every=7, stop_after=25)
    resumed_rng = np.random.default_rng(99)          # a fresh process: another generator
    resumed, history = run_quadratic(resumed_rng, checkpoint=str(path), checkpoint_every=7)
    np.testing.assert_array_equal(resumed["p"], whole["p"])
    assert history["loss"] == whole_history["loss"]
    assert resumed_rng.random() == whole_rng.random()  # the caller's generator continues
    again, _ = run_quadratic(np.random.default_rng(5), checkpoint=str(path))
    np.testing.assert_array_equal(again["p"], whole["p"])  # a finished run is not retrained


def test_train_refuses_a_checkpoint_from_another_run(tmp_path):
    path = str(tmp_path / "q.npz")
    run_quadratic(np.random.default_rng(0), checkpoint=path, metadata={"seed": 0}, stop_after=3)
    with pytest.raises(InputError, match=r"q.npz.*another run.*seed: 0 in the checkpoint, 1 "
                                         r"here; delete it .* another run directory") as err:
        run_quadratic(np.random.default_rng(0), checkpoint=path, metadata={"seed": 1})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("iterations", [-1, 2.5, True])
def test_train_refuses_a_bad_iteration_count(iterations):
    with pytest.raises(InputError, match="iterations"):
        common.train(noisy_quadratic_step, {"p": np.zeros(3)}, Adam(), iterations)


# --- seeds --------------------------------------------------------------------------------


def test_summarize_gives_mean_sample_sd_and_count_per_setting():
    records = [dict(model="a", n=1, seed=s, rmse=v) for s, v in enumerate((1.0, 2.0, 4.0))]
    records.append(dict(model="b", n=1, seed=0, rmse=3.0))
    a, b = common.summarize(records, ("model", "n"), "rmse")
    assert a == dict(model="a", n=3, mean=pytest.approx(7 / 3), sd=pytest.approx(np.std(
        [1.0, 2.0, 4.0], ddof=1)))
    assert b == dict(model="b", n=1, mean=3.0, sd=None)
    assert common.mean_sd(a) == "2.333 ± 1.528" and common.mean_sd(b) == "3.000"


# --- command-line checks ------------------------------------------------------------------


@pytest.mark.parametrize("kind, text", [
    (common_cli.positive_int, "0"), (common_cli.positive_int, "-5"),
    (common_cli.positive_int, "1.5"), (common_cli.nonnegative_int, "-1"),
    (common_cli.positive_float, "0"), (common_cli.positive_float, "-1"),
    (common_cli.positive_float, "inf"), (common_cli.positive_float, "nan"),
])
def test_number_types_refuse_out_of_range_values(kind, text):
    with pytest.raises(argparse.ArgumentTypeError):
        kind(text)


def test_number_types_accept_valid_values():
    assert common_cli.positive_int("3") == 3 and common_cli.nonnegative_int("0") == 0
    assert common_cli.positive_float("0.25") == 0.25


def test_output_checks_refuse_paths_under_a_file_and_directories_as_files(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="--out .*is a file"):
        common_cli.check_output_dir(str(blocker / "figs"), "--out")
    with pytest.raises(InputError, match="--json .*is a file"):
        common_cli.check_output_file(str(blocker / "r.json"), "--json")
    with pytest.raises(InputError, match="--json .*is a directory"):
        common_cli.check_output_file(str(tmp_path), "--json")
    common_cli.check_output_dir(str(tmp_path / "new" / "dir"), "--out")
    assert (tmp_path / "new" / "dir").is_dir()
    assert not list((tmp_path / "new" / "dir").iterdir())     # the probe file is gone


def test_train_with_validate_returns_the_best_validated_parameters(tmp_path):
    """Validation = distance to a point the loss passes on its way: the best is kept."""
    waypoint = 0.5 * TARGET
    validate = lambda params: float(np.sum((params["p"] - waypoint) ** 2))
    path = str(tmp_path / "v.npz")
    params, history = run_quadratic(np.random.default_rng(2), validate=validate,
                                    checkpoint_every=5, checkpoint=path, stop_after=100)
    iterations, values = zip(*history["validation"])
    assert iterations == tuple(range(5, 101, 5))
    best = int(np.argmin(values))
    assert history["best_iteration"] == iterations[best] < 100
    assert validate(params) == values[best] < values[-1]
    resumed, resumed_history = run_quadratic(np.random.default_rng(2), validate=validate,
                                             checkpoint_every=5, checkpoint=path)
    assert len(resumed_history["validation"]) == 40       # 200 steps, the first 100 resumed
    assert resumed_history["validation"][:20] == history["validation"]
