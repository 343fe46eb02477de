"""Collecting the records of reproduce latent runs: config and cost in every record."""

import json

import numpy as np
import pytest

from refnode.cli import main
from refnode.errors import InputError
from refnode.experiments import latent_records

pytestmark = pytest.mark.latent


def test_collected_records_carry_their_config_and_cost(tmp_path):
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"s{seed}"
        assert main(["reproduce", "latent", "--quick", "--seeds", "1", "--first-seed",
                     str(seed), "--run-dir", str(run)]) == 0
        runs.append(str(run))
    out = tmp_path / "all.json"
    assert latent_records.main([str(out)] + runs) == 0
    doc = json.loads(out.read_text())
    assert len(doc["records"]) == 2 * 3 * 3
    for r in doc["records"]:
        config = r["config"]
        assert config["seed"] == r["seed"] and config["n_train"] == 40 - 10 - 10
        assert {"iterations", "batch_size", "gradient", "rtol", "atol"} <= set(config)
        assert r["train_seconds"] > 0 and len(r["seconds_per_iteration"]) == 2
        assert ("nfe_forward" in r) == (r["model"] == "latent_ode")
    assert {s["n"] for s in doc["summary"]} == {2}


def test_a_run_without_its_checkpoints_is_refused(tmp_path):
    run = tmp_path / "r"
    assert main(["reproduce", "latent", "--quick", "--seeds", "1", "--run-dir", str(run)]) == 0
    next(run.glob("*.npz")).unlink()
    with pytest.raises(InputError, match="checkpoint of a record"):
        latent_records.collect([str(run)])


def test_first_and_last_tenth():
    assert latent_records.first_and_last_tenth(list(range(20))) == [0.5, 18.5]
    assert latent_records.first_and_last_tenth([]) is None


def test_gap_analysis_at_the_full_horizon_is_the_recorded_test_rmse(tmp_path):
    from refnode.experiments import latent_gap
    run = tmp_path / "r"
    assert main(["reproduce", "latent", "--quick", "--seeds", "1", "--run-dir", str(run)]) == 0
    recorded = {(r["model"], r["n_obs"]): r["rmse"]
                for r in json.loads((run / "results.json").read_text())["records"]}
    rows = latent_gap.analyse(str(run))
    assert {(r["model"], r["n_obs"]) for r in rows} == set(recorded) | {
        ("last_observation", n) for n in (30, 50, 100)}
    for r in rows:
        by_h = r["rmse_by_horizon"]
        assert list(by_h) == [1, 10, 25, 50, 100]
        if r["model"] != "last_observation":
            assert by_h[100] == pytest.approx(recorded[r["model"], r["n_obs"]], rel=1e-12)


def test_rmse_by_horizon_uses_the_first_h_points():
    from refnode.experiments.latent_gap import rmse_by_horizon
    truth = np.zeros((2, 100, 2))
    pred = truth.copy()
    pred[:, 10:] = 1.0
    by_h = rmse_by_horizon(pred, truth)
    assert by_h[1] == by_h[10] == 0.0 and by_h[100] == pytest.approx(np.sqrt(0.9))
