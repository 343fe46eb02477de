"""``refnode verify``: refnode itself passes; planted bugs fail, naming the quantity."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from refnode import cli, verify
from refnode.reference.golden_files import load_golden
from refnode.reference.problems import PROBLEM_NAMES

from problems import MeanOverBatch

pytestmark = pytest.mark.verify

ROOT = Path(__file__).resolve().parent.parent
RTOL, ATOL = 1e-7, 1e-10
BATCHED = ("linear", "mlp", "cnf")
#: The problems with a pass/fail rule and nonzero time gradients, without the slowest (stiff:
#: 81 output times, 10 s by the adjoint); the planted bugs are about bookkeeping.
RULED = tuple(n for n in PROBLEM_NAMES if n not in ("relu", "stiff", "sensitive"))


def flipped_t0(problem):
    """Bug: the sign of ∂L/∂t0 is flipped."""
    out = verify.refnode_adjoint(problem)
    dt = out["gradients"]["t"]
    out["gradients"]["t"] = np.concatenate([-dt[:1], dt[1:]])
    return out


def missing_batch_sum(problem):
    return verify.refnode_adjoint(dict(problem, f=MeanOverBatch(problem["f"])))


def loose_solve(problem):
    """Bug: the solve runs at rtol = 1e-3 whatever the caller asked for."""
    return verify.refnode_adjoint(dict(problem, rtol=1e-3, atol=1e-3))


def failing(report):
    return {(r.problem, r.quantity) for r in report.failures}


def test_refnode_adjoint_passes_every_problem():
    """At atol = 1e-10: the stiff problem's ∂L/∂t_i = ⟨g_i, A z(t_i)⟩ multiplies the fast
    mode's absolute error (up to atol) by 300, so atol = rtol = 1e-7 misses 12 (up to 4.4e-5)."""
    names = tuple(n for n in PROBLEM_NAMES if n != "stiff")
    report = verify.verify_callable(verify.refnode_adjoint, RTOL, ATOL, names=names)
    assert report.passed, str(report)
    assert {r.problem for r in report.rows} == set(names)
    stiff = verify.verify_callable(verify.refnode_discrete, RTOL, ATOL, names=("stiff",))
    assert stiff.passed, str(stiff)


@pytest.mark.slow
def test_refnode_adjoint_passes_the_stiff_problem():
    report = verify.verify_callable(verify.refnode_adjoint, RTOL, ATOL, names=("stiff",))
    assert report.passed, str(report)
    assert "PASSED" in str(report) and "FAIL" not in str(report)
    # The quantity that needs atol = 1e-10 here: ∂L/∂t_i at every output time.
    time_rows = [r for r in report.rows if r.quantity.startswith("dL/dt[")]
    assert len(time_rows) == len(load_golden("stiff")["t"]) and all(r.status == "ok"
                                                                   for r in time_rows)


def test_sign_flip_in_dL_dt0_fails_naming_the_quantity():
    report = verify.verify_callable(flipped_t0, RTOL, ATOL, names=RULED)
    assert not report.passed
    assert failing(report) == {(name, "dL/dt[0]") for name in RULED}
    assert "FAIL spiral: dL/dt[0]: relative error" in str(report)


def test_missing_batch_sum_fails_dL_dtheta_of_the_batched_problems():
    report = verify.verify_callable(missing_batch_sum, RTOL, names=BATCHED)
    failed = failing(report)
    assert ("linear", "dL/dtheta[A]") in failed and ("mlp", "dL/dtheta[W1]") in failed
    assert all(q.startswith("dL/dtheta") for _, q in failed), failed
    assert {p for p, _ in failed} == set(BATCHED)


def test_loose_tolerance_solve_fails_the_states():
    report = verify.verify_callable(loose_solve, 1e-9, names=("oscillator", "spiral"))
    assert ("oscillator", "state") in failing(report) and ("spiral", "state") in failing(report)
    assert verify.verify_callable(loose_solve, 1e-3, names=("oscillator",)).passed


def test_wrong_shape_and_missing_quantities_fail_with_a_reason():
    golden = verify.as_arrays(load_golden("mlp"))
    results = dict(states=golden["states"], gradients=dict(golden["gradients"]))
    results["gradients"]["theta"] = dict(golden["gradients"]["theta"],
                                         W1=np.stack([golden["gradients"]["theta"]["W1"]] * 3))
    del results["gradients"]["z0"]
    rows = {r.quantity: r for r in verify.compare("mlp", golden, results, RTOL)}
    assert rows["dL/dtheta[W1]"].status == "FAIL" and "batch" in rows["dL/dtheta[W1]"].detail
    assert rows["dL/dz0"].status == "FAIL" and rows["dL/dz0"].detail == "not given"
    assert rows["state"].status == "ok" and rows["dL/dt[2]"].status == "ok"
    nan = dict(results, states=np.full_like(golden["states"], np.nan))
    assert verify.compare("mlp", golden, nan, RTOL)[0].status == "FAIL"


def test_the_golden_files_verify_themselves_and_skip_absent_problems(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps([load_golden("decay"), load_golden("cnf")]))
    report = verify.verify_results(verify.results_from_file(path), 1e-12)
    assert report.passed and set(report.skipped) == set(PROBLEM_NAMES) - {"decay", "cnf"}
    assert all(r.rel_err == 0.0 for r in report.rows)


def test_tolerance_rule():
    assert verify.tolerance(1e-6, 1e-12) == pytest.approx(verify.TOLERANCE_FACTOR * 1e-6 + 1e-12)
    assert verify.tolerance(1e-6, 0.0, factor=10.0) == pytest.approx(1e-5)


def run_cli(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))
    return subprocess.run([sys.executable, "-m", "refnode.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_exit_status_and_table(tmp_path):
    (tmp_path / "planted.py").write_text(textwrap.dedent("""
        import numpy as np
        from refnode.verify import refnode_adjoint

        def flip(problem):
            out = refnode_adjoint(problem)
            out["gradients"]["t"] = -np.asarray(out["gradients"]["t"])
            return out
        """))
    good = run_cli(["verify", "--callable", "refnode.verify:refnode_adjoint", "--rtol", "1e-6",
                    "--problems", "decay,spiral"], tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "spiral   dL/dtheta[A]" in good.stdout and "PASSED" in good.stdout
    bad = run_cli(["verify", "--callable", "planted:flip", "--problems", "decay"], tmp_path)
    assert bad.returncode == 1 and "FAIL decay: dL/dt[0]" in bad.stdout


def test_cli_argument_errors(capsys, tmp_path):
    assert cli.main(["verify", "--callable", "no_such_module_xyz:f"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "refnode verify: error: cannot import" in captured.err
    assert cli.main(["verify", "--results", str(tmp_path / "missing.json")]) == 2
    assert cli.main(["verify"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 2
    with pytest.raises(SystemExit):
        cli.main(["verify", "--problems", "lorenz"])
    with pytest.raises(SystemExit):
        cli.main(["verify", "--rtol", "-1"])
    assert cli.main(["verify", "--list"]) == 0
    assert "oscillator" in capsys.readouterr().out


# --- trust: verify cannot be talked into passing, and bad input is one clear line, exit 2 ---

def tripled_states(problem):
    out = verify.refnode_adjoint(problem)
    out["states"] = 3.0 * out["states"]
    return out


@pytest.mark.parametrize("flags", [["--rtol", "inf"], ["--rtol", "1e300"], ["--rtol", "1"],
                                   ["--factor", "inf"], ["--rtol", "1e-3", "--factor", "1e3"],
                                   ["--rtol", "1e-7", "--atol", "inf"]])
def test_tolerances_too_loose_to_mean_anything_are_refused(flags, capsys):
    code = cli.main(["verify", "--callable", "refnode.verify:refnode_adjoint",
                     "--problems", "decay", *flags])
    out = capsys.readouterr().err
    assert code == 2, out
    assert "refnode verify: error:" in out and len(out.strip().splitlines()) == 1
    assert "above" in out or "finite" in out


def test_tripled_states_fail_at_the_loosest_accepted_tolerance():
    rtol = verify.MAX_RTOL
    report = verify.verify_callable(tripled_states, rtol, factor=verify.MAX_TOLERANCE / rtol,
                                    names=("decay",))
    assert ("decay", "state") in failing(report)
    with pytest.raises(verify.InputError, match="above"):
        verify.verify_callable(tripled_states, rtol, factor=2 * verify.MAX_TOLERANCE / rtol)


def golden_results(name):
    golden = verify.as_arrays(load_golden(name))
    return dict(states=golden["states"], gradients=golden["gradients"], extras=golden["extras"])


def test_every_shape_is_checked_including_the_length_of_the_time_gradient():
    golden = verify.as_arrays(load_golden("decay"))
    longer = golden_results("decay")
    longer["gradients"] = dict(longer["gradients"], t=np.append(golden["gradients"]["t"], 7.0))
    rows = verify.compare("decay", golden, longer, RTOL)
    bad = [r for r in rows if r.status == "FAIL"]
    assert [r.quantity for r in bad] == ["dL/dt"] and "(4,)" in bad[0].detail
    extra = golden_results("decay")
    extra["gradients"] = dict(extra["gradients"], theta=dict(k=golden["gradients"]["theta"]["k"],
                                                            kk=np.ones(1)))
    assert [r.quantity for r in verify.compare("decay", golden, extra, RTOL)
            if r.status == "FAIL"] == ["dL/dtheta[kk]"]


def test_complex_values_from_a_callable_are_rejected_not_truncated():
    def complex_states(problem):
        out = verify.refnode_adjoint(problem)
        out["states"] = out["states"] + 0j
        return out
    with pytest.raises(verify.InputError, match="decay: state: complex values"):
        verify.verify_callable(complex_states, RTOL, names=("decay",))


@pytest.mark.parametrize("value, match", [("abc", "expected real numbers"),
                                          ([[1.0, 2.0], [3.0]], "rectangular"),
                                          ({"a": 1}, "not all numbers"),
                                          ([True, False], "booleans")])
def test_non_numeric_or_ragged_values_are_input_errors(value, match):
    results = golden_results("decay")
    results["gradients"] = dict(results["gradients"], z0=value)
    with pytest.raises(verify.InputError, match=match):
        verify.verify_results({"decay": results}, RTOL)


def test_odd_files_give_one_line_and_exit_2(tmp_path, capsys):
    binary = tmp_path / "binary.json"
    binary.write_bytes(bytes(range(256)) * 4)
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    ragged = tmp_path / "ragged.json"
    ragged.write_text(json.dumps({"problems": {"decay": {"states": [[1, 2], [3]]}}}))
    for path, words in ((binary, "UTF-8"), (tmp_path, "directory"), (nested, "deeply"),
                        (ragged, "rectangular")):
        assert cli.main(["verify", "--results", str(path)]) == 2, path
        out = capsys.readouterr().err
        assert words in out and len(out.strip().splitlines()) == 1, out


def test_an_exception_inside_the_callable_names_the_problem(tmp_path):
    (tmp_path / "broken.py").write_text(textwrap.dedent("""
        def solve(problem):
            if problem["name"] == "oscillator":
                raise ZeroDivisionError("my bug")
            from refnode.verify import refnode_adjoint
            return refnode_adjoint(problem)
        """))
    out = run_cli(["verify", "--callable", "broken:solve", "--problems", "decay,oscillator"],
                  tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "ZeroDivisionError while solving problem 'oscillator': my bug" in out.stderr
    assert "broken.py:4" in out.stderr and "Traceback" not in out.stderr


def test_a_callable_returning_a_non_dict_is_an_input_error():
    with pytest.raises(verify.InputError, match="returned list for problem 'decay'"):
        verify.verify_callable(lambda problem: [1, 2], RTOL, names=("decay",))


def test_unsupported_quantities_are_neither_pass_nor_fail():
    def no_t(problem):
        out = verify.refnode_adjoint(problem)
        del out["gradients"]["t"]
        out["unsupported"] = {"t": "this library has no time gradients"}
        return out
    report = verify.verify_callable(no_t, RTOL, ATOL, names=("decay",))
    assert report.passed
    ns = [r for r in report.rows if r.status == "n/s"]
    assert len(ns) == 4 and ns[0].detail == "this library has no time gradients"
    assert "not supported by the implementation" in str(report)


def test_the_relu_problem_reports_a_spread_not_a_verdict():
    """A spread judges nothing: relu alone is not a pass (it was 'PASSED: 0 of 0')."""
    report = verify.verify_callable(verify.refnode_discrete, 1e-7, names=("relu",))
    assert {r.status for r in report.rows} == {"spread"} and not report.passed
    assert "refnode's spread at rtol 1e-07" in report.rows[0].detail
    assert report.summary()[-1].startswith("FAILED: nothing was verified by the pass/fail rule")
