"""The ``refnode`` command: help, the quick demo end to end, argument errors."""

import os
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


def run_refnode(args, cwd):
    """``python -m refnode.cli ARGS`` in a fresh interpreter, as a user would run it."""
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "refnode.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_every_available_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in cli.available_commands()
    for name, module in cli.available_commands().items():
        assert name in out and module.HELP[:30] in out


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
    (["demo", "--seed", "x"], "invalid int value"),
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
