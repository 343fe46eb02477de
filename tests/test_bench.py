"""The benchmark commands: ``refnode bench workprecision`` and benchmarks/bench_training.py.

These check what the runs compute (answers, step counts, that the two libraries run the
same network), never how long they take: timings are benchmark output, not test claims.
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from refnode import cli
from refnode.methods import ADAPTIVE_METHODS

from problems import GPU

pytestmark = pytest.mark.cli

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `refnode bench workprecision --quick` run, from an empty working directory."""
    tmp = tmp_path_factory.mktemp("workprecision")
    out, json_path = tmp / "figures", tmp / "records.json"
    status = cli.main(["bench", "workprecision", "--quick", "--json", str(json_path),
                       "--out", str(out)])
    return status, out, json.loads(json_path.read_text())


def test_workprecision_quick_writes_records_and_figures(quick_run):
    status, out, result = quick_run
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == ["workprecision_forward.png",
                                                     "workprecision_gradients.png"]
    assert result["settings"]["quick"] is True
    forward = [r for r in result["records"] if r["part"] == "forward"]
    drawn = {(r["library"], r["method"]) for r in forward}
    assert drawn == ({("refnode", m) for m in ADAPTIVE_METHODS}
                     | {("scipy", "RK45"), ("scipy", "DOP853")})


def test_workprecision_dopri5_takes_scipys_steps_and_converges(quick_run):
    """refnode's dopri5 and SciPy's RK45 share Hairer's controller: same NFE, same answer."""
    _, _, result = quick_run
    ok = [r for r in result["records"] if r["part"] == "forward" and "error" in r]
    ours = {r["tol"]: r for r in ok if r["method"] == "dopri5"}
    scipy = {r["tol"]: r for r in ok if r["method"] == "RK45"}
    assert set(ours) == set(scipy) and len(ours) >= 2
    for tol in ours:
        assert ours[tol]["nfe"] == scipy[tol]["nfe"]
        assert ours[tol]["error"] == pytest.approx(scipy[tol]["error"], rel=1e-6, abs=1e-13)
    loose, tight = max(ours), min(ours)
    assert ours[tight]["error"] < ours[loose]["error"] / 100
    assert ours[tight]["error"] < 100 * tight


def test_workprecision_failed_sweeps_are_recorded_not_dropped(quick_run):
    """heun_euler cannot reach tol 1e-6 within the quick step cap: the record says so."""
    _, _, result = quick_run
    heun = [r for r in result["records"] if r.get("method") == "heun_euler"]
    assert any("failed" in r and "max_steps" in r["failed"] for r in heun)


def test_workprecision_gradients_are_close_to_the_reference(quick_run):
    _, _, result = quick_run
    grads = [r for r in result["records"] if r["part"] == "gradient"]
    assert {r["gradient"] for r in grads} == {"adjoint", "adjoint seminorm", "discrete"}
    for r in grads:
        assert 0.0 <= r["error"] < 10 * r["tol"], r


def test_bench_json_and_out_need_workprecision(capsys, tmp_path):
    assert cli.main(["bench", "--json", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "--json belongs to `refnode bench workprecision`" in err and err.count("\n") == 1


def _load(name):
    """The benchmark script ``benchmarks/<name>.py`` as a module (its folder on sys.path
    while it imports, for common.py and its sibling scripts)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def _load_bench_training():
    return _load("bench_training")


@pytest.mark.parametrize("name", ["mlp", "resnet", "rknet"])
def test_bench_training_runs_the_same_network_in_torch(name):
    """Same weights, same batch: PyTorch's loss and gradients equal refnode's (float64)."""
    pytest.importorskip("torch")
    pytest.importorskip("torchdiffeq")
    from refnode.params import tree_map
    bench = _load_bench_training()
    model, theta, x, labels = bench.problem(name, batch=4)
    theta, x = tree_map(lambda a: a.astype(np.float64), theta), x.astype(np.float64)
    loss, grads, _ = bench.refnode_step_fn(model, theta, x, labels)()
    loss_t, grads_t, _ = bench.torch_step_fn(bench.to_torch(model, theta), x, labels)()
    assert loss == pytest.approx(loss_t, rel=1e-12)
    assert len(grads) == len(grads_t)
    for g, g_t in zip(grads, grads_t):
        np.testing.assert_allclose(g, g_t.numpy(), rtol=1e-9, atol=1e-12)


# --- bench_training.py --device gpu ---------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "odenet"])
def test_bench_training_gpu_mode_refnode_side_on_strict_arrays_equals_the_cpu(name):
    """The GPU mode's refnode half (weights, images and labels moved once, the step on the
    device, a sync after it) run on refnode.strict: CuPy's rules, NumPy's numbers."""
    from refnode import device
    bench = _load_bench_training()
    runs = {}
    for where in ("cpu", "strict"):
        step, _ = bench.refnode_runner(name, 3, where)
        runs[where] = step()
    (loss, grads, nfe), (loss_d, grads_d, nfe_d) = runs["cpu"], runs["strict"]
    assert device.device_of(grads_d) == "strict"
    assert loss_d == loss and nfe_d == nfe and len(grads_d) == len(grads)
    for g, g_d in zip(grads, grads_d):
        assert np.array_equal(device.to_host(g_d), g)


def test_bench_training_gpu_targets_are_1_5x_for_the_odenet_and_2x_for_the_rest():
    bench = _load_bench_training()
    rows = [dict(model="odenet", ratio=1.6, device="gpu"), dict(model="mlp", ratio=1.9,
                                                                 device="gpu"),
            dict(model="odenet", ratio=1.6, device="cpu")]
    assert [line.rsplit(" ", 1)[1] for line in bench.verdicts(rows)] == ["MISSED", "met", "met"]
    assert "<= 1.5x, odenet" in bench.verdicts(rows)[0]


def test_bench_training_device_gpu_without_cupy_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)
    bench = _load_bench_training()
    assert bench.main(["--device", "gpu"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--device gpu needs CuPy" in err


def test_bench_training_refuses_layers_on_the_gpu(monkeypatch, capsys):
    bench = _load_bench_training()
    monkeypatch.setattr(bench, "gpu_problem", lambda: None)        # as if a GPU were there
    assert bench.main(["--device", "gpu", "--layers"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--layers" in err


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="needs CuPy and a GPU")
@pytest.mark.parametrize("name", ["mlp", "resnet", "rknet"])
def test_bench_training_gpu_mode_runs_the_same_network_on_cupy_and_cuda(name):
    """What --device gpu times, in float64: refnode on CuPy and PyTorch on CUDA agree
    (the ODE-Net's two adjoints take their own steps, so agree only to the tolerance)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchdiffeq")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA device")
    from refnode import device
    from refnode.params import tree_map
    bench = _load_bench_training()
    model, theta, x, labels = bench.problem(name, batch=4)
    theta, x = tree_map(lambda a: a.astype(np.float64), theta), x.astype(np.float64)
    on_gpu = device.to_device((theta, x, labels), "gpu")
    loss, grads, _ = bench.refnode_step_fn(model, *on_gpu, bench.device_sync("gpu"))()
    module = bench.to_torch(model, theta).to("cuda")
    loss_t, grads_t, _ = bench.torch_step_fn(module, x, labels, "cuda")()
    assert loss == pytest.approx(loss_t, rel=1e-12)
    assert len(grads) == len(grads_t)
    for g, g_t in zip(grads, grads_t):
        np.testing.assert_allclose(device.to_host(g), g_t.cpu().numpy(), rtol=1e-9, atol=1e-12)


# --- benchmarks/gpu_check.py: the one-call GPU check ---------------------------------------------


def _load_gpu_check():
    return _load("gpu_check")


FAKE_DEVICE = {"gpu": "Fake GPU 1", "gpu_memory_gib": 80.0, "cuda_runtime": 13000,
               "cupy": "14.0", "torch": "2.9", "torch_cuda": "13.0", "python": "3.12",
               "commit": "abc1234", "date": "2026-12-05 10:00:00 UTC"}


def test_gpu_check_without_a_gpu_stops_at_once_with_one_line(tmp_path):
    """The shell wrapper, as a user runs it, on this machine (no CuPy): one line, exit 2,
    no report directory."""
    import subprocess
    if GPU:
        pytest.skip("this machine has a GPU")
    out = tmp_path / "report"
    done = subprocess.run(["sh", str(BENCHMARKS / "gpu_check.sh"), str(out)], text=True,
                          capture_output=True, timeout=120,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("gpu_check: ")
    assert not out.exists()


def test_gpu_check_names_the_missing_packages(monkeypatch):
    check = _load_gpu_check()
    monkeypatch.setattr(check, "_importable", lambda name: name not in ("autograd", "torch"))
    line = check.unavailable()
    assert "autograd, torch" in line and "pip install autograd torch" in line


def test_gpu_check_counts_the_tests_from_pytests_junit_xml(tmp_path):
    check = _load_gpu_check()
    path = tmp_path / "pytest.xml"
    path.write_text('<testsuites><testsuite name="pytest" errors="0" failures="1" '
                    'skipped="2" tests="7"></testsuite></testsuites>')
    assert check.pytest_counts(path) == {"tests": 7, "failures": 1, "errors": 0, "skipped": 2,
                                         "passed": 4}
    assert check.pytest_counts(tmp_path / "missing.xml") is None


def _fake_steps(out):
    """Cheap stand-ins for the three steps: a passing test run, a benchmark writing JSON
    (with a NaN, which JSON cannot hold) and a target line, and one that hangs."""
    python = sys.executable
    training = [dict(model="odenet", refnode_s=0.012, torch_s=0.01, ratio=1.2,
                     nfe_refnode=[26, 44], grad_rel_diff=float("nan"))]
    write = (f"import json; json.dump({training!r}, open({str(out / 'bench_training.json')!r}, "
             "'w')); print('target refnode/PyTorch <= 1.5x, odenet: 1.20x, met')")
    write = write.replace("nan", "float('nan')")
    junit = ('<testsuite errors="0" failures="0" skipped="1" tests="3"></testsuite>')
    return [("pytest", [python, "-c", f"open({str(out / 'pytest.xml')!r}, 'w').write({junit!r})"],
             30.0, None),
            ("bench_training", [python, "-c", write], 30.0, out / "bench_training.json"),
            ("bench_gpu", [python, "-c", "import time; time.sleep(30)"], 1.0, None)]


def test_gpu_check_runs_its_steps_and_writes_both_reports(tmp_path, monkeypatch, capsys):
    check = _load_gpu_check()
    monkeypatch.setattr(check, "unavailable", lambda: None)           # as if a GPU were there
    monkeypatch.setattr(check, "device_info", lambda: FAKE_DEVICE)
    monkeypatch.setattr(check, "steps", _fake_steps)
    out = tmp_path / "report"
    assert check.main([str(out)]) == 1                                 # the hanging step failed
    markdown = (out / "gpu_check.md").read_text()
    data = json.loads((out / "gpu_check.json").read_text())
    assert markdown.startswith("# GPU check: Fake GPU 1")
    assert "2 passed, 0 failed, 0 errors, 1 skipped (of 3 GPU tests)" in markdown
    assert "| odenet | 12.0 ms | 10.0 ms | 1.20x | 26/44 | n/a |" in markdown
    assert "- target refnode/PyTorch <= 1.5x, odenet: 1.20x, met" in markdown
    assert "| bench_gpu | TIMED OUT" in markdown and "a step FAILED" in markdown
    assert data["device"]["gpu"] == "Fake GPU 1" and data["all_passed"] is False
    steps = {s["name"]: s for s in data["steps"]}
    assert steps["pytest"]["counts"]["passed"] == 2 and steps["bench_gpu"]["timed_out"]
    assert steps["bench_training"]["results"][0]["grad_rel_diff"] is None
    assert sorted(p.name for p in out.iterdir()) == [
        "bench_gpu.log", "bench_training.json", "bench_training.log", "gpu_check.json",
        "gpu_check.md", "pytest.log", "pytest.xml"]


def test_gpu_check_report_of_passing_steps_with_the_gpu_benchmark_table():
    check = _load_gpu_check()
    bench_gpu = [{"batch": 65536, "dtype": "float32",
                  "ratios": {"numpy/cupy fwd": 114.0, "cupy/torch fwd": 0.5,
                             "numpy/cupy adj": 49.0, "cupy/torch adj": None},
                  "times": {"cupy": {"fwd": 0.05, "adj": 0.2}, "numpy": {"fwd": 5.7, "adj": 9.8}}}]
    step = {"name": "bench_gpu", "command": "benchmarks/bench_gpu.py --device gpu",
            "returncode": 0, "seconds": 60.0, "timed_out": False, "tail": [],
            "targets": ["target cupy/torch adj <= 1.25x at batch 65536 (float32): n/a -> n/a"],
            "results": bench_gpu}
    markdown, data = check.build_report(FAKE_DEVICE, [step], 61.0)
    assert "all steps passed" in markdown and data["all_passed"] is True
    assert ("| 65536 | float32 | 50.0 ms | n/a | 5700.0 ms | 200.0 ms | n/a | 9800.0 ms | "
            "0.50x | n/a | 114.00x | 49.00x |") in markdown
    assert "Last lines" not in markdown


def test_gpu_check_report_carries_the_gradient_precision_table():
    check = _load_gpu_check()
    rows = [{"model": "odenet", "run": "cupy float32", "nfe": [32, 32], "distance": 1.1e-3,
             "distance_float32": 4.8e-4}]
    step = {"name": "grad_precision", "command": "benchmarks/grad_precision.py",
            "returncode": 0, "seconds": 20.0, "timed_out": False, "tail": [], "targets": [],
            "results": rows}
    markdown, _ = check.build_report(FAKE_DEVICE, [step], 21.0)
    assert "| odenet | cupy float32 | 32/32 | 1.1e-03 | 4.8e-04 |" in markdown


def test_gpu_check_has_four_steps_that_write_json_where_a_table_reads_it(tmp_path):
    check = _load_gpu_check()
    steps = check.steps(tmp_path)
    assert [name for name, *_ in steps] == ["pytest", "bench_gpu", "bench_training",
                                            "grad_precision"]
    for name, command, _, json_path in steps[1:]:
        assert json_path == tmp_path / f"{name}.json" and str(json_path) in command


def _load_grad_precision():
    return _load("grad_precision")


def test_grad_precision_measures_each_gradient_against_float64():
    """On the CPU: the float64 row is the reference (distance 0), the MLP's float32
    gradient lies at float32 rounding from it; the ODE-Net adds the discrete-adjoint row."""
    gp = _load_grad_precision()
    rows = {r["run"]: r for r in gp.rows_for("mlp", 4)}
    assert rows["numpy float64 (reference)"]["distance"] == 0.0
    assert 0.0 < rows["numpy float32"]["distance"] < 1e-5
    assert rows["numpy float32"]["distance_float32"] == 0.0
    assert 0.0 < rows["numpy float32, x·(1+1e-7·ε)"]["distance_float32"] < 1e-5
    assert "cupy float32" not in rows or GPU
    odenet = {r["run"]: r for r in gp.rows_for("odenet", 2)}
    forward, backward = odenet["numpy float64, discrete adjoint"]["nfe"]
    assert forward > 0 and backward > 0 and backward % 7 == 0   # each step's 7 dopri5 stages
    assert odenet["numpy float64, discrete adjoint"]["distance"] > 0.0


def test_grad_precision_distance_is_the_largest_difference_over_the_largest_entry():
    gp = _load_grad_precision()
    reference = [np.array([1.0, -4.0]), np.array([2.0])]
    assert gp.distance([np.array([1.0, -3.0]), np.array([2.5])], reference) == 1.0 / 4.0


# --- benchmarks/count_device_ops.py: operations a GPU would launch, counted on the CPU ------------


def _load_count_device_ops():
    return _load("count_device_ops")


def test_count_device_ops_counts_operations_and_views_apart_and_restores_strict():
    from refnode import strict
    counter = _load_count_device_ops()
    add, getattr_ = strict.StrictArray.__add__, strict._Namespace.__getattr__
    x = strict.to_device(np.ones(3))
    with counter.counting() as counts:
        y = strict.namespace.exp(x + 1.0)[0:2]
        window = y[0:1]
        window += 1.0
    assert counts["(outside refnode)", "op"] == 3          # +, exp, +=
    assert counts["(outside refnode)", "view"] == 2        # the two slices
    assert strict.StrictArray.__add__ is add and strict._Namespace.__getattr__ is getattr_


def test_count_device_ops_charges_refnode_functions_and_reports_them():
    counter = _load_count_device_ops()
    counts = counter.count(counter.adjoint_gradient(8, dim=4, hidden=8))
    assert all(".py:" in where or where == "(outside refnode)" for where, _ in counts)
    assert counts["rk_step.py:weighted_sum", "op"] > 0 and counts["nn/dense.py:forward", "op"] > 0
    text = counter.report(counts, top=3)
    assert text.splitlines()[0].endswith("views") and len(text.splitlines()) == 4 + 3


def test_bench_solvers_breakdown_replays_the_solves_own_steps(monkeypatch):
    """--breakdown times rk_step over exactly the solve's attempted steps, and splits both
    libraries' times into parts that are positive and add up."""
    bench = _load("bench_solvers")
    calls = []
    original = bench.rk_step
    monkeypatch.setattr(bench, "rk_step", lambda *a: calls.append(a[2:5:2]) or original(*a))
    p = bench.mlp_problem("tiny", 2, 4, 1)
    p["t"] = np.linspace(0.0, 1.0, 5)
    row = bench.breakdown(p, repeats=1)
    trace = bench.rn.solve(p["f"], p["z0"], p["t"], p["theta"], method="dopri5", rtol=bench.RTOL,
                           atol=bench.ATOL, control=bench.rn.StepControl(trace=True)).trace
    assert calls == [(r.t, r.h) for r in trace]
    assert 0 < row["steps"] and 0 < row["scipy_f"] < row["scipy"]
    table = bench.breakdown_table({"tiny": row})
    assert table.splitlines()[0].startswith("| problem | refnode solve | its rk_step calls")


def test_page_faults_counts_the_pages_a_call_touches_for_the_first_time():
    """A call that writes a fresh 64 MiB buffer (above any threshold of the C allocator,
    so mapped and unmapped each time) faults in its pages on every call: at least one
    fault per 2 MiB, the largest (huge) page; a call that allocates nothing, almost none."""
    pytest.importorskip("resource")
    common = _load("common")
    fresh = common.page_faults(lambda: np.ones(2**23), repeats=3)     # 64 MiB of float64
    assert fresh >= 32
    assert common.page_faults(lambda: None, repeats=3) < 4


def test_bench_gradients_refnode_only_times_refnode_and_counts_its_page_faults(capsys,
                                                                              monkeypatch):
    bench = _load("bench_gradients")
    monkeypatch.setattr(bench, "PROBLEMS", (("mlp-small (D=2, H=50, B=1)", 2, 50, 1),))
    assert bench.main(["--repeats", "1", "--refnode-only"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| mlp-small"))
    assert row.count("n/a") == 6     # neither torch's nor JAX's time, ratio or NFE
    assert "minor page faults per refnode gradient (after the timed runs): " in out


def test_bench_memory_writes_its_figure_to_a_run_directory_unless_told(tmp_path, monkeypatch,
                                                                      capsys):
    """By default the plot goes to runs/bench_memory under the working directory; the
    committed figures/ is written only when asked (``--out figures``)."""
    pytest.importorskip("matplotlib")
    bench = _load("bench_memory")
    monkeypatch.chdir(tmp_path)
    assert bench.main(["--horizons", "0.1", "0.2"]) == 0
    assert (tmp_path / "runs" / "bench_memory" / "memory.png").is_file()
    assert not (tmp_path / "figures").exists()
    assert "wrote runs/bench_memory/memory.png" in capsys.readouterr().out
