"""Collecting the records of reproduce latent runs: config and cost in every record."""

import json

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
