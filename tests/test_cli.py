"""The ``refnode`` command: help, the quick demo end to end, argument errors."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from refnode import cli
from refnode import demo as demo_logic
from refnode.commands import demo as demo_command

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parent.parent
#: The environment of a fresh ``refnode`` process: this checkout first on the path.
ENV = dict(os.environ, MPLBACKEND="Agg",
           PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def run_refnode(args, cwd):
    """``python -m refnode.cli ARGS`` in a fresh interpreter, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "refnode.cli", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_every_available_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in cli.available_commands()
    for name, module in cli.available_commands().items():
        assert name in out and module.HELP[:30] in out


def test_version_prints_the_package_version_and_exits_0(capsys):
    import refnode
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"refnode {refnode.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", refnode.__version__)


def test_the_version_is_written_once():
    """pyproject.toml takes the version from refnode.__version__; it states no other."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'version = {attr = "refnode.__version__"}' in pyproject
    assert not re.search(r"^version\s*=\s*\"", pyproject, flags=re.M)


def test_version_from_a_new_interpreter():
    """As a user runs it (the package metadata is built from the same refnode.__version__)."""
    import refnode
    result = run_refnode(["--version"], ROOT)
    assert result.returncode == 0 and result.stdout == f"refnode {refnode.__version__}\n"


def test_no_command_prints_help_and_exits_0(capsys):
    assert cli.main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_demo_quick_prints_tables_and_writes_figures(tmp_path):
    result = run_refnode(["demo", "--quick", "--out", str(tmp_path / "figs")], cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for method in ("euler", "rk4", "dopri5", "dop853"):           # the solver table
        assert f"\n   {method} " in out
    for column in ("NFE", "accepted/rejected", "max error"):
        assert column in out
    for method in ("autograd", "finite differences", "adjoint"):  # the gradient tables
        assert f"\n   {method} " in out
    assert "All gradients agree." in out and "FAIL" not in out
    assert "loss=" in result.stderr and "nfe_backward=" in result.stderr  # the progress bar
    for name in ("solvers.png", "demo_spiral.png"):
        path = tmp_path / "figs" / name
        assert path.stat().st_size > 1000, f"{name} missing or empty"
    assert not list((tmp_path / "figs").glob("*.tmp*")), "a temporary figure was left behind"


def test_demo_exits_nonzero_when_gradients_disagree(tmp_path, monkeypatch, capsys):
    """Plant a 1% error in the adjoint gradient: the check must catch it and fail the run."""
    honest = demo_logic.loss_and_gradient

    def biased(f, theta, batch, gradient="adjoint"):
        loss, grads, nfe = honest(f, theta, batch, gradient)
        if gradient == "adjoint":
            grads = {"z0": grads["z0"], "theta": [{k: 1.01 * v for k, v in layer.items()}
                                                  for layer in grads["theta"]]}
        return loss, grads, nfe

    monkeypatch.setattr(demo_logic, "loss_and_gradient", biased)
    monkeypatch.setattr(demo_command, "plot_fit", lambda *args: None)
    args = cli.build_parser().parse_args(["demo", "--quick", "--iterations", "1",
                                          "--out", str(tmp_path)])
    assert demo_command.run(args) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "disagree" in out


def test_first_training_gradient_matches_finite_differences_directly():
    """The demo's FD gradient and its discrete adjoint agree (its own tables, recomputed)."""
    rng = np.random.default_rng(3)
    t = demo_logic.spiral_times(200)
    z_true = demo_logic.reference_solution(t)
    f, theta = demo_logic.make_model(rng)
    batch = demo_logic.sample_windows(rng, t, z_true, batch_time=4, batch_size=3)
    tables = demo_logic.check_gradient(f, theta, batch)
    assert [table.rows[0].method for table, _ in tables] == ["autograd", "finite differences",
                                                             "adjoint"]
    assert all(table.passed for table, _ in tables), "\n".join(str(t) for t, _ in tables)


@pytest.mark.parametrize("argv, message", [
    (["demo", "--iterations", "0"], "positive integer"),
    (["demo", "--iterations", "many"], "positive integer"),
    (["demo", "--seed", "x"], "expected an integer >= 0"),
    (["demo", "--seed", "-1"], "expected an integer >= 0"),
    (["demo", "--bogus"], "unrecognized arguments"),
    (["no-such-command"], "invalid choice"),
])
def test_bad_arguments_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_listed_module_that_fails_to_import_is_an_error_naming_it():
    with pytest.raises(ImportError, match="refnode.experiments.no_such_experiment"):
        cli.import_modules({"typo": "refnode.experiments.no_such_experiment"})


def test_every_listed_experiment_is_offered_by_reproduce(capsys):
    from refnode.commands import reproduce
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--help"])
    out = capsys.readouterr().out
    for name in reproduce.EXPERIMENTS:
        assert name in out


# --- every number and output path checked before any work; user errors are one line --------


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "table1", "--epochs", "-1"], "--epochs: expected a finite number > 0"),
    (["reproduce", "table1", "--epochs", "inf"], "--epochs: expected a finite number > 0"),
    (["reproduce", "table1", "--train-size", "-5"], "--train-size: expected a positive integer"),
    (["reproduce", "table1", "--test-size", "0"], "--test-size: expected a positive integer"),
    (["reproduce", "table1", "--batch-size", "0"], "--batch-size: expected a positive integer"),
    (["reproduce", "table1", "--lr", "nan"], "--lr: expected a finite number > 0"),
    (["reproduce", "table1", "--seed", "-3"], "--seed: expected an integer >= 0"),
    (["reproduce", "cnf", "--seeds", "0"], "--seeds: expected a number of seeds from 1 to 1000"),
    (["reproduce", "cnf", "--seed", "-1"], "--seed: expected an integer >= 0"),
    (["reproduce", "cnf", "--quick", "--tiny"], "not allowed with argument"),
])
def test_bad_numbers_of_reproduce_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def blocked_path(tmp_path):
    """A path that cannot be created: its parent is a regular file."""
    (tmp_path / "a_file").write_text("not a directory")
    return str(tmp_path / "a_file" / "sub")


@pytest.mark.parametrize("argv", [
    ["demo", "--quick", "--out", "{blocked}"],
    ["reproduce", "cnf", "--tiny", "--out", "{blocked}"],
    ["reproduce", "cnf", "--tiny", "--json", "{blocked}/r.json"],
    ["reproduce", "table1", "--tiny", "--json", "{blocked}/r.json"],
    ["reproduce", "table1", "--tiny", "--out", "{blocked}"],
    ["reproduce", "table1", "--tiny", "--no-figures", "--runs", "{blocked}"],
])
def test_an_unwritable_output_path_stops_the_command_before_any_work(argv, tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{blocked}", blocked_path(tmp_path)) for a in argv]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""                                       # nothing was run
    assert captured.err.count("\n") == 1 and "a_file" in captured.err
    assert captured.err.startswith(f"refnode {' '.join(a for a in argv[:2] if a[0] != '-')}")


def test_a_refnode_error_is_one_line_and_exit_2_not_a_traceback(tmp_path):
    """No data set given for a full Table 1 run: a user error, said in one line."""
    result = run_refnode(["reproduce", "table1", "--runs", str(tmp_path / "ck")], cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "refnode reproduce table1: error: no MNIST directory given" in result.stderr


def test_a_corrupt_checkpoint_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "ck"
    runs.mkdir()
    (runs / "mnist-mlp-48-float32.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    argv = ["reproduce", "table1", "--tiny", "--models", "mlp", "--no-figures", "--runs",
            str(runs)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mnist-mlp-48-float32.npz" in err


def test_a_table1_subset_larger_than_the_data_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["reproduce", "table1", "--tiny", "--no-figures", "--train-size", "5000"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--train-size 5000: the data set has only 1024 training examples" in err


# --- figures go to the run directory unless --out says otherwise ---------------------------


def output_of(argv):
    """The figure directory a command would write to (checked, nothing run)."""
    from refnode.commands import reproduce_cnf, reproduce_table1
    args = cli.build_parser().parse_args(argv)
    if args.command == "demo":
        return demo_command.output_dir(args)
    if args.experiment == "cnf":
        return reproduce_cnf.check_outputs(args, "quick" if args.quick else "full")
    return reproduce_table1.check_outputs(args, reproduce_table1.settings(args))


@pytest.mark.parametrize("command, name", [(["demo"], "demo"), (["reproduce", "cnf"], "cnf"),
                                           (["reproduce", "table1"], "table1")])
def test_runs_without_out_never_write_into_figures(command, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert output_of(command + ["--quick"]) == os.path.join("runs", f"{name}-quick")
    assert output_of(command) == os.path.join("runs", name)
    assert output_of(command + ["--quick", "--out", "figures"]) == "figures"
    assert (tmp_path / "runs" / f"{name}-quick").is_dir()


@pytest.mark.parametrize("argv", [["reproduce", "table1", "--quick", "--out", "\0"],
                                  ["reproduce", "latent", "--quick", "--json", "a\0b.json"],
                                  ["reproduce", "cnf-curves", "--quick", "--run-dir", "runs\0x"],
                                  ["reproduce", "cnf-curves", "--quick", "--run-dir", ""],
                                  ["reproduce", "latent", "--quick", "--out", ""],
                                  ["tutorials", "--notebooks", ""], ["verify", "--results", ""]])
def test_a_path_with_a_nul_byte_or_empty_is_a_usage_error(argv, capsys):
    """Refused at parsing: before, an empty --run-dir ran in the default run directory."""
    from refnode.cli import main
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert "not a usable path" in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize("argv", [["bench", "--list"], ["verify", "--list"], ["tutorials"],
                                  ["course", "list"]])
def test_a_stdout_closed_by_its_reader_ends_quietly_with_141(argv):
    """``refnode bench --list | head -1``: the reader is gone before refnode writes (the
    read end of the pipe is closed first, so every write fails). Before: a BrokenPipeError
    traceback and exit 1."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([sys.executable, "-m", "refnode.cli", *argv], stdout=write,
                                stderr=subprocess.PIPE, text=True, env=ENV, timeout=120)
    finally:
        os.close(write)
    assert result.returncode == cli.CLOSED_STDOUT == 141, result.stderr
    assert result.stderr == ""
