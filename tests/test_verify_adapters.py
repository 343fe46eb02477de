"""Built-in adapters (``refnode verify --library``) and the conventions that trip up verifiers.

Tests that need a framework skip when it is not installed (CI installs only ``.[test]``);
each runs a couple of small problems.
"""

import json
import sys

import numpy as np
import pytest

import refnode as rn
from refnode import cli, verify
from refnode.reference import adapters
from refnode.reference.problems import PROBLEM_NAMES, get_problem

pytestmark = pytest.mark.verify

RTOL, ATOL = 1e-7, 1e-10


def test_every_reference_problem_has_adapter_dynamics():
    assert set(adapters.KIND) == set(PROBLEM_NAMES)


def test_an_unknown_library_exits_2(capsys):
    assert cli.main(["verify", "--library", "scipyy"]) == 2
    out = capsys.readouterr().err
    assert "unknown library 'scipyy'" in out and len(out.strip().splitlines()) == 1
    assert cli.main(["verify", "--library", "jax", "--gradient", "backsolve"]) == 2
    assert "no gradient mode 'backsolve'" in capsys.readouterr().err
    assert cli.main(["verify", "--callable", "refnode.verify:refnode_adjoint",
                     "--gradient", "adjoint"]) == 2


def test_a_missing_library_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchode", None)          # import torchode -> ImportError
    monkeypatch.delitem(sys.modules, "refnode.reference.adapters.for_torchode", raising=False)
    assert cli.main(["verify", "--library", "torchode", "--problems", "decay"]) == 2
    out = capsys.readouterr().err
    assert "torchode is not installed" in out and "refnode[verify]" in out
    assert len(out.strip().splitlines()) == 1


def test_the_refnode_rows_pass_and_the_discrete_gradient_misses_the_sensitive_problem():
    adjoint, _ = adapters.adapter_callable("refnode", "adjoint")
    assert verify.verify_callable(adjoint, RTOL, ATOL, names=("sensitive", "backward")).passed
    discrete, _ = adapters.adapter_callable("refnode", "discrete")
    report = verify.verify_callable(discrete, RTOL, ATOL, names=("sensitive",))
    assert {r.quantity for r in report.failures} == {"dL/dz0", "dL/dtheta[A]"}


def test_the_worked_example_of_docs_verify():
    """A = [[1, 0], [0, 0]], z0 = [0, 1], g = [[0, 0], [1, 0]]: ∂L/∂z0[0] = e³ exactly."""
    p = get_problem("sensitive")
    g = np.array([[0.0, 0.0], [1.0, 0.0]])
    for rtol in (1e-6, 1e-12):
        _, vjp = rn.odeint_vjp(p.f, p.z0, p.t, p.theta, rtol=rtol, atol=rtol, gradient="discrete")
        assert vjp(g)[0][0] == pytest.approx(20.0572, abs=1e-4)
        _, vjp = rn.odeint_vjp(p.f, p.z0, p.t, p.theta, rtol=rtol, atol=rtol, gradient="adjoint")
        assert abs(vjp(g)[0][0] - np.exp(3.0)) <= 100 * rtol * np.exp(3.0)


def test_swapped_argument_order_never_passes():
    """f(z, t) where f(t, z) is meant: refnode's shape check stops it, naming the problem."""
    def swapped(problem):
        f = problem["f"]
        return verify.refnode_adjoint(dict(problem, f=lambda t, z, theta: f(z, t, theta)))
    for name in ("decay", "cnf"):
        with pytest.raises(verify.InputError, match=f"solving problem '{name}'"):
            verify.verify_callable(swapped, RTOL, names=(name,))


# --- with the frameworks installed ---

def test_torchdiffeq_adjoint_and_backprop():
    pytest.importorskip("torchdiffeq")
    fn, label = adapters.adapter_callable("torchdiffeq")
    assert "odeint_adjoint" in label
    assert verify.verify_callable(fn, RTOL, ATOL, names=("decay", "sensitive")).passed
    backprop, _ = adapters.adapter_callable("torchdiffeq", "backprop")
    report = verify.verify_callable(backprop, RTOL, ATOL, names=("decay", "sensitive"))
    assert {(r.problem, r.quantity) for r in report.failures} == {
        ("sensitive", "dL/dz0"), ("sensitive", "dL/dtheta[A]")}


def test_torchdiffeq_rk4_is_refnodes_rk38_not_rk4():
    """torchdiffeq's method="rk4" takes Kutta's 3/8 rule: refnode's rk38 matches it to
    rounding, refnode's (classic) rk4 does not."""
    torch = pytest.importorskip("torch")
    torchdiffeq = pytest.importorskip("torchdiffeq")
    p = get_problem("mlp")
    theta = {k: torch.tensor(v) for k, v in p.theta.items()}
    from refnode.reference.adapters.torch_fields import dynamics
    f = dynamics("mlp", theta)
    h = 0.25
    theirs = torchdiffeq.odeint(f, torch.tensor(p.z0), torch.tensor(p.t), method="rk4",
                                options=dict(step_size=h)).numpy()
    rk38 = rn.odeint(p.f, p.z0, p.t, p.theta, method="rk38", step_size=h)
    rk4 = rn.odeint(p.f, p.z0, p.t, p.theta, method="rk4", step_size=h)
    assert np.max(np.abs(rk38 - theirs)) < 1e-14
    assert np.max(np.abs(rk4 - theirs)) > 1e-6


def test_jax_odeint_passes_including_decreasing_times():
    pytest.importorskip("jax")
    fn, _ = adapters.adapter_callable("jax")
    assert verify.verify_callable(fn, RTOL, ATOL, names=("decay", "backward")).passed


def test_diffrax_backsolve_says_not_supported_for_time_gradients():
    pytest.importorskip("diffrax")
    fn, _ = adapters.adapter_callable("diffrax", "backsolve")
    report = verify.verify_callable(fn, RTOL, ATOL, names=("decay",))
    assert report.passed
    assert {r.quantity for r in report.rows if r.status == "n/s"} == {
        f"dL/dt[{i}]" for i in range(4)}


def test_torchode_backprop():
    pytest.importorskip("torchode")
    fn, _ = adapters.adapter_callable("torchode")
    assert verify.verify_callable(fn, RTOL, ATOL, names=("decay", "mlp")).passed


def test_the_conformance_script_writes_the_matrix_and_its_json(tmp_path):
    from refnode.reference import conformance
    row = conformance.run_row("refnode", "discrete", settings=((1e-7, 1e-10),),
                              names=("decay", "sensitive"), log=lambda *a, **k: None)
    document = dict(date="today", versions={"refnode": "x"}, rows=[row], missing=[])
    cells = {e["problem"]: conformance.summary_cell(e) for e in row["results"]}
    assert cells["decay"].startswith("ok ")
    assert cells["sensitive"].startswith("FAIL") and "dL/dz0" in cells["sensitive"]
    assert "| refnode / discrete | ok" in conformance.render_summary(document)
    assert "sensitive: dL/dz0:" in conformance.render_failures(document)
    part = tmp_path / "part-x.json"
    part.write_text(json.dumps(document))
    assert conformance.main(["--merge", str(part), "--out", str(tmp_path / "out")]) == 0
    assert "## Every failing cell" in (tmp_path / "out" / "conformance.md").read_text()
    assert json.loads((tmp_path / "out" / "conformance.json").read_text())["rows"]
