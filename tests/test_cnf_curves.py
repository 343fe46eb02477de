"""refnode reproduce cnf-curves: held-out NLL along training, resumable, reproducible."""

import json
import pathlib

import numpy as np
import pytest

from refnode.cli import main
from refnode.experiments import cnf, cnf_curves
from refnode.models.ffjord import _activation_derivatives
from refnode.nn.activations import Softplus, Tanh

pytestmark = pytest.mark.cnf

QUICK = cnf_curves.CONFIGS["quick"]


def test_curve_records_held_out_nll_from_iteration_zero_at_every_evaluation():
    record = cnf_curves.curve("planar_cnf", "two_circles", QUICK, seed=0)
    iterations = [p[0] for p in record["curve"]]
    assert iterations == list(range(0, QUICK["iterations"] + 1, QUICK["eval_every"]))
    seconds = [p[1] for p in record["curve"]]
    assert seconds[0] == 0.0 and all(b > a for a, b in zip(seconds, seconds[1:]))
    assert record["best_nll"] == min(p[2] for p in record["curve"])
    assert record["final_nll"] == record["curve"][-1][2]
    assert record["training_s"] == seconds[-1] > 0.0


def test_a_resumed_curve_equals_an_uninterrupted_one(tmp_path):
    path = str(tmp_path / "c.npz")
    whole = cnf_curves.curve("ffjord_cnf", "two_circles", QUICK, seed=3)
    half = dict(QUICK, iterations=QUICK["iterations"] // 2)
    cnf_curves.curve("ffjord_cnf", "two_circles", half, seed=3, checkpoint=path)
    resumed = cnf_curves.curve("ffjord_cnf", "two_circles", QUICK, seed=3, checkpoint=path)
    assert [p[2] for p in resumed["curve"]] == [p[2] for p in whole["curve"]]
    reread = cnf_curves.curve("ffjord_cnf", "two_circles", QUICK, seed=3, checkpoint=path)
    assert reread["training_s"] == resumed["training_s"] == resumed["curve"][-1][1] > 0.0


def test_held_out_samples_depend_on_seed_and_data_set_only():
    a = cnf_curves.held_out("two_moons", QUICK, 1)
    assert np.array_equal(a, cnf_curves.held_out("two_moons", QUICK, 1))
    assert not np.array_equal(a, cnf_curves.held_out("two_moons", QUICK, 2))
    assert not np.array_equal(a, cnf_curves.held_out("two_circles", QUICK, 1))


def test_settled_is_the_improvement_of_the_best_over_the_last_quarter():
    record = {"iterations": 100, "best_nll": 2.0,
              "curve": [[0, 0.0, 5.0], [50, 1.0, 3.0], [75, 2.0, 2.5], [100, 3.0, 2.0]]}
    assert cnf_curves.settled(record) == pytest.approx(0.5)
    record["curve"][-1][2], record["best_nll"] = 2.7, 2.5
    assert cnf_curves.settled(record) == 0.0


def test_the_command_writes_records_summary_and_figure(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["reproduce", "cnf-curves", "--quick", "--seeds", "2", "--models",
                 "planar_nf", "planar_cnf", "--run-dir", str(run_dir)]) == 0
    result = json.loads((run_dir / "results.json").read_text())
    assert {(r["model"], r["seed"]) for r in result["records"]} == {
        (m, s) for m in ("planar_nf", "planar_cnf") for s in (0, 1)}
    assert all(r["n"] == 2 for r in result["summary"]["best_nll"])
    assert (run_dir / "cnf_nll_curves.png").stat().st_size > 0
    assert "Held-out NLL" in capsys.readouterr().out


@pytest.mark.parametrize("layer", [Tanh(), Softplus()])
def test_activation_derivatives_from_the_output_match_finite_differences(layer):
    x = np.linspace(-3.0, 3.0, 13)
    y, _ = layer.forward({}, 0.0, x)
    d1, d2 = _activation_derivatives(layer, x, y)
    eps = 1e-5
    h = lambda u: layer.forward({}, 0.0, u)[0]
    np.testing.assert_allclose(d1, (h(x + eps) - h(x - eps)) / (2 * eps), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(d2, (h(x + eps) - 2 * y + h(x - eps)) / eps ** 2,
                               rtol=1e-4, atol=1e-5)


def test_likelihood_models_are_the_ones_the_fixed_budget_experiment_trains():
    rng = np.random.default_rng(0)
    for model in cnf.LIKELIHOOD_MODELS:
        params, step, log_p = cnf.likelihood_model(model, "two_moons", QUICK, rng)
        loss, grad = step(params, rng)
        assert np.isfinite(loss)
        x = np.zeros((3, 2))
        assert log_p(params)(x).shape == (3,)
    with pytest.raises(ValueError, match="unknown likelihood model"):
        cnf.likelihood_model("glow", "two_moons", QUICK, rng)


def test_the_committed_records_are_three_seeds_whose_summary_the_docs_quote():
    """docs/results/cnf_curves.json: every (seed, data set, model) at the settled budget,
    each record consistent with its curve, and docs/cnf.md's table quoting its summary."""
    root = pathlib.Path(__file__).resolve().parents[1]
    result = json.loads((root / "docs" / "results" / "cnf_curves.json").read_text())
    assert result["config"]["iterations"] == 2000 and result["config"]["nf_iterations"] == 20000
    cells = {(r["seed"], r["data"], r["model"]) for r in result["records"]}
    assert cells == {(s, d, m) for s in (0, 1, 2) for d in ("two_circles", "two_moons")
                     for m in ("planar_nf", "planar_cnf", "ffjord_cnf")}
    for r in result["records"]:
        assert r["best_nll"] == min(p[2] for p in r["curve"]) and r["curve"][-1][0] == r["iterations"]
        assert r["training_s"] == r["curve"][-1][1] > 0.0
    assert result["summary"] == cnf_curves.summaries(result["records"])
    page = (root / "docs" / "cnf.md").read_text(encoding="utf-8")
    for row in result["summary"]["best_nll"]:
        assert f"{row['mean']:.3f} ± {row['sd']:.3f}" in page, row
