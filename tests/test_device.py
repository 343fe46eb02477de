"""``--device``: the commands' GPU path, run on the CPU through strict arrays.

``refnode.strict`` arrays obey CuPy's rules (no NumPy call on device data, no host array
mixed in, no hidden host synchronisation), so a command run with the test-only device
``strict`` fails wherever ``--device gpu`` would. Its arithmetic is NumPy's, so it must
also give the CPU's numbers exactly. The tests marked ``gpu`` run the same on CuPy where
a GPU exists.
"""

import json
import sys

import numpy as np
import pytest

from refnode import demo, device, strict
from refnode.cli import main
from refnode.errors import InputError
from refnode.experiments import table1
from refnode.models import build_model
from refnode.models.classifier import TrainConfig, predict, train
from refnode.params import flatten

from problems import GPU


pytestmark = pytest.mark.cli




def assert_same_tree(a, b):
    for x, y in zip(flatten(device.to_host(a))[0], flatten(device.to_host(b))[0]):
        assert x == y


# --- the device module ------------------------------------------------------------------------


@pytest.mark.cli
def test_cpu_moves_nothing_and_strict_moves_only_arrays():
    tree = {"W": np.ones((2, 3)), "step": 4, "rng": np.random.default_rng(0), "name": "x"}
    assert device.to_device(tree, "cpu") is tree
    on = device.to_device(tree, "strict")
    assert isinstance(on["W"], strict.StrictArray) and on["step"] == 4
    assert on["rng"] is tree["rng"] and device.device_of(on) == "strict"
    back = device.to_host(on)
    assert type(back["W"]) is np.ndarray and np.array_equal(back["W"], tree["W"])
    assert device.device_of(back) == "cpu"


@pytest.mark.cli
def test_a_missing_cupy_is_an_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)             # import cupy -> ImportError
    with pytest.raises(InputError, match="--device gpu needs CuPy"):
        device.check_device("gpu")


COMMANDS = [["demo", "--quick"], ["reproduce", "table1", "--tiny"],
            ["reproduce", "latent", "--quick"], ["reproduce", "cnf", "--tiny"],
            ["reproduce", "cnf-curves", "--quick"], ["bench", "--quick"]]


@pytest.mark.cli
@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_device_gpu_without_cupy_is_one_line_and_exit_2_before_any_work(
        command, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.chdir(tmp_path)
    assert main(command + ["--device", "gpu"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--device gpu needs CuPy" in err
    assert list(tmp_path.iterdir()) == []                        # nothing written


@pytest.mark.cli
def test_an_unknown_device_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--device", "tpu"])
    assert exit_.value.code == 2 and "expected one of cpu, gpu, got 'tpu'" in capsys.readouterr().err


# --- demo ---------------------------------------------------------------------------------------


def _demo_training(name, iterations=3):
    rng = np.random.default_rng(0)
    t = demo.spiral_times(200)
    z_true = demo.reference_solution(t)
    f, theta = demo.make_model(rng)
    t_d, z_d, theta_d = device.to_device((t, z_true, theta), name)
    theta_d, history = demo.train(f, theta_d, t_d, z_d, rng, iterations, show_progress=False)
    return theta_d, history, demo.predict(f, theta_d, t_d)


@pytest.mark.adjoint
def test_demo_training_on_strict_arrays_equals_the_cpu_run_bit_for_bit():
    theta_cpu, history_cpu, z_cpu = _demo_training("cpu")
    theta_dev, history_dev, z_dev = _demo_training("strict")
    assert device.device_of(theta_dev) == "strict" and device.device_of(z_dev) == "strict"
    assert history_dev["loss"] == history_cpu["loss"]
    assert history_dev["nfe_backward"] == history_cpu["nfe_backward"]
    assert_same_tree(theta_dev, theta_cpu)
    assert np.array_equal(device.to_host(z_dev), z_cpu)


@pytest.mark.cli
def test_demo_quick_runs_on_the_device_path(tmp_path, capsys):
    assert main(["demo", "--quick", "--iterations", "2", "--device", "strict",
                 "--out", str(tmp_path)]) == 0
    assert "on device strict" in capsys.readouterr().out
    assert (tmp_path / "demo_spiral.png").is_file()


# --- Table 1 ------------------------------------------------------------------------------------


def _classifier_problem():
    x = np.random.default_rng(0).uniform(size=(24, 1, 12, 12))
    labels = np.arange(24) % 10
    model = build_model("odenet", channels=4)
    return model, model.init(np.random.default_rng(0)), x, labels


@pytest.mark.odenet
def test_odenet_training_on_strict_arrays_equals_the_cpu_run_bit_for_bit():
    model, theta0, x, labels = _classifier_problem()
    config = TrainConfig(batch_size=8, epochs=1.0, seed=5)
    runs = {}
    for name in ("cpu", "strict"):
        x_d, labels_d, theta_d = device.to_device((x, labels, theta0), name)
        theta, history = train(model, theta_d, x_d, labels_d, config, show_progress=False)
        runs[name] = theta, history, predict(model, theta, x_d, batch_size=10)
    assert runs["strict"][1]["loss"] == runs["cpu"][1]["loss"]
    assert_same_tree(runs["strict"][0], runs["cpu"][0])
    assert np.array_equal(device.to_host(runs["strict"][2]), runs["cpu"][2])


@pytest.mark.odenet
@pytest.mark.parametrize("first, then", [("strict", "cpu"), ("cpu", "strict")])
def test_a_checkpoint_written_on_one_device_resumes_on_the_other(tmp_path, first, then):
    model, theta0, x, labels = _classifier_problem()
    config = TrainConfig(batch_size=8, epochs=2.0, seed=5, checkpoint_every=1)
    straight, history = train(model, theta0, x, labels, config, show_progress=False)
    path = str(tmp_path / "ckpt.npz")
    for name, stop in ((first, 4), (then, None)):
        x_d, labels_d, theta_d = device.to_device((x, labels, theta0), name)
        resumed, resumed_history = train(model, theta_d, x_d, labels_d, config, checkpoint=path,
                                         stop_after=stop, show_progress=False)
    assert device.device_of(resumed) == then
    assert resumed_history["loss"] == history["loss"]
    assert_same_tree(resumed, straight)


@pytest.mark.odenet
def test_table1_tiny_on_the_device_path_gives_the_cpu_records(tmp_path):
    records = {}
    for name in ("cpu", "strict"):
        path = tmp_path / f"{name}.json"
        assert main(["reproduce", "table1", "--tiny", "--models", "mlp", "odenet", "--no-figures",
                     "--device", name, "--json", str(path)]) == 0
        records[name] = json.loads(path.read_text())
    for cpu, dev in zip(records["cpu"], records["strict"]):
        for key in ("model", "test_error", "params", "nfe_forward", "nfe_backward"):
            assert dev[key] == cpu[key]


@pytest.mark.odenet
def test_random_crop_keeps_the_images_on_their_device():
    from refnode.data.batches import random_crop
    images = np.random.default_rng(1).uniform(size=(3, 1, 6, 6))
    cpu = random_crop(images, np.random.default_rng(2), padding=2)
    dev = random_crop(device.to_device(images, "strict"), np.random.default_rng(2), padding=2)
    assert np.array_equal(device.to_host(dev), cpu)


# --- on a real GPU --------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="needs CuPy and a GPU")
@pytest.mark.parametrize("command", [["demo", "--quick", "--iterations", "3"],
                                     ["reproduce", "table1", "--tiny", "--no-figures"],
                                     ["reproduce", "cnf", "--tiny", "--seeds", "1"],
                                     ["reproduce", "cnf-curves", "--quick"]])
def test_commands_run_on_the_gpu(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(command + ["--device", "gpu"]) == 0


# --- latent ----------------------------------------------------------------------------------


@pytest.mark.latent
def test_latent_quick_on_the_device_path_gives_the_cpu_records(tmp_path):
    """Every model (RNN, RNN with scheduled sampling, latent ODE), trained and scored."""
    results = {}
    for name in ("cpu", "strict"):
        run_dir = tmp_path / name
        assert main(["reproduce", "latent", "--quick", "--seeds", "1", "--device", name,
                     "--run-dir", str(run_dir)]) == 0
        results[name] = json.loads((run_dir / "results.json").read_text())["records"]
    assert results["strict"] == results["cpu"]


@pytest.mark.latent
@pytest.mark.parametrize("first, then", [("strict", "cpu"), ("cpu", "strict")])
def test_a_latent_checkpoint_resumes_on_the_other_device(tmp_path, monkeypatch, first, then):
    from dataclasses import replace
    from refnode.data.spirals import irregular_subsample
    from refnode.experiments import common, latent
    config = replace(latent.Config(), **dict(latent.QUICK, iterations=4))
    data = latent.make_data(config)
    sub = irregular_subsample(data, 30, np.random.default_rng([0, 30]))
    model = latent.make_model("latent_ode", config, data.noise_std)
    straight, _ = latent.train("latent_ode", model, sub, data, config, 30, None)
    path = str(tmp_path / "ckpt.npz")
    common_train = common.train
    monkeypatch.setattr(common, "train", lambda *a, **k: common_train(*a, **k, stop_after=2))
    latent.train("latent_ode", model, sub, data, config, 30, path, first)
    monkeypatch.setattr(common, "train", common_train)
    resumed, _ = latent.train("latent_ode", model, sub, data, config, 30, path, then)
    assert device.device_of(resumed) == then
    assert_same_tree(resumed, straight)


# --- cnf, cnf-curves --------------------------------------------------------------------------


def _without_timings(record):
    return {k: v for k, v in record.items() if k not in ("seconds", "seconds_per_iteration", "training_s")}


@pytest.mark.cnf
def test_cnf_tiny_on_the_device_path_gives_the_cpu_records(tmp_path):
    """Maximum likelihood: bit for bit. Density matching: to rounding, because its score
    ∇ log p̃ is autograd's on the CPU and the hand-derived one on a device (autograd cannot
    trace CuPy arrays; tests/test_data.py checks the two agree to 1e-12)."""
    runs = {}
    for name in ("cpu", "strict"):
        path = tmp_path / f"{name}.json"
        assert main(["reproduce", "cnf", "--tiny", "--seeds", "1", "--no-figures",
                     "--device", name, "--json", str(path)]) == 0
        runs[name] = json.loads(path.read_text())
    assert runs["strict"]["likelihood"] == runs["cpu"]["likelihood"]
    assert len(runs["strict"]["density_matching"]) == len(runs["cpu"]["density_matching"]) > 0
    for cpu, dev in zip(runs["cpu"]["density_matching"], runs["strict"]["density_matching"]):
        assert _without_timings({**dev, "final_loss": 0.0}) == \
            _without_timings({**cpu, "final_loss": 0.0})
        assert dev["final_loss"] == pytest.approx(cpu["final_loss"], rel=1e-10)


@pytest.mark.cnf
def test_cnf_figures_are_drawn_from_host_copies_on_the_device_path(tmp_path):
    out = tmp_path / "figures"
    assert main(["reproduce", "cnf", "--tiny", "--seeds", "1", "--device", "strict",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cnf_density_matching.png",
                                                     "cnf_transformation.png"]


@pytest.mark.cnf
def test_cnf_curves_quick_on_the_device_path_gives_the_cpu_records(tmp_path):
    records = {}
    for name in ("cpu", "strict"):
        run_dir = tmp_path / name
        assert main(["reproduce", "cnf-curves", "--quick", "--device", name,
                     "--run-dir", str(run_dir)]) == 0
        records[name] = json.loads((run_dir / "results.json").read_text())["records"]
    strip = lambda r: dict(_without_timings(r), curve=[[i, nll] for i, _, nll in r["curve"]])
    assert [strip(r) for r in records["strict"]] == [strip(r) for r in records["cpu"]]
    assert len(records["cpu"]) == 3


@pytest.mark.cnf
@pytest.mark.parametrize("model", ["planar_nf", "ffjord_cnf"])
@pytest.mark.parametrize("first, then", [("strict", "cpu"), ("cpu", "strict")])
def test_a_cnf_curves_checkpoint_resumes_on_the_other_device(tmp_path, monkeypatch, model,
                                                              first, then):
    from refnode.experiments import cnf_curves, common
    cfg = dict(cnf_curves.CONFIGS["quick"], iterations=4, nf_iterations=4, nf_eval_every=2)
    straight = cnf_curves.curve(model, "two_circles", cfg, 0)
    path = str(tmp_path / "ckpt.npz")
    common_train = common.train
    monkeypatch.setattr(cnf_curves, "train", lambda *a, **k: common_train(*a, **k, stop_after=2))
    cnf_curves.curve(model, "two_circles", cfg, 0, path, device=first)
    monkeypatch.setattr(cnf_curves, "train", common_train)
    resumed = cnf_curves.curve(model, "two_circles", cfg, 0, path, device=then)
    assert [p[2] for p in resumed["curve"]] == [p[2] for p in straight["curve"]]
    assert resumed["best_nll"] == straight["best_nll"]


# --- bench --------------------------------------------------------------------------------------


@pytest.mark.cli
def test_bench_on_the_gpu_runs_only_the_scripts_with_a_gpu_mode(monkeypatch):
    from refnode.commands import bench
    monkeypatch.setattr(device, "_cupy", lambda: None)             # as if a GPU were there
    args = cli_args(["bench", "--device", "gpu"])
    bench.check(args)
    assert [bench.short_name(p) for p in args.scripts] == ["gpu", "training"]


@pytest.mark.cli
def test_bench_gpu_script_without_a_gpu_is_one_line_and_exit_2(monkeypatch, capsys):
    import importlib.util
    from pathlib import Path
    monkeypatch.setitem(sys.modules, "cupy", None)
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--device", "gpu"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--device gpu needs CuPy" in err


def cli_args(argv):
    from refnode.cli import build_parser
    return build_parser().parse_args(argv)
