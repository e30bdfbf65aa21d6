"""dynlearn navigation fit | plan: a failure model is fitted, saved and read back unchanged; MPPI over the saved model or
the true one writes its success rates; a plan with neither a model nor --true-model is one line and exit 2."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from dynlearn.cli import main
from dynlearn.errors import DataError
from dynlearn.models import save
from dynlearn.models.failure import FailureModel, FailureModelConfig, load_failure_model, save_failure_model
from dynlearn.results import check_results
from dynlearn.tasks import navigation as nav


def test_a_saved_failure_model_reads_back_with_the_same_predictions_and_task(tmp_path):
    task = nav.NavigationConfig(max_speed=1.2, radius_range=(0.4, 1.0))
    model = FailureModel.init(FailureModelConfig(patch=7, hidden=(24, 16)), task, key=jax.random.key(3))
    save_failure_model(tmp_path / "m", model, task)
    back, back_task = load_failure_model(tmp_path / "m")
    assert back_task == task and back.cfg == model.cfg
    patch, vel, act = np.random.default_rng(0).uniform(size=(7, 7)), np.array([0.5, -0.2]), np.array([0.3, 0.9])
    for a, b in zip(model(patch, vel, act), back(patch, vel, act)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_folder_of_another_kind_is_refused(tmp_path):
    import dynlearn as dl
    from dynlearn.models import EnsembleConfig, ProbabilisticEnsemble

    ens = ProbabilisticEnsemble.init(EnsembleConfig(members=2, elites=1, hidden=(8,), weight_decay=(0.0, 0.0)), 3, 1,
                                     key=jax.random.key(0))
    save(tmp_path / "ens", ens.with_task(dl.tasks.get("Pendulum-v1")))
    with pytest.raises(DataError, match="failure-model"):
        load_failure_model(tmp_path / "ens")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("nav") / "fit"
    assert main(["navigation", "fit", "--robots", "32", "--steps", "60", "--holdout-robots", "16", "--fit.steps", "300",
                 "--fit.block", "100", "--model.hidden", "32", "--out", str(out)]) == 0
    return out


def test_fit_writes_the_model_and_its_held_out_quality(fitted):
    results = json.loads((fitted / "results.json").read_text())
    assert results["method"] == "failure-model-fit" and results["budget"]["rows"] == 32 * 60
    held = results["extra"]["holdout"]
    assert 0.5 < held["failure/auc"] <= 1.0  # better than chance after 300 steps (measured: about 0.9)
    assert (fitted / "model" / "leaves.eqx").is_file() and not (fitted / "checkpoint").exists()
    model, task = load_failure_model(fitted)  # the run folder is accepted as well as its model/
    assert model.cfg.hidden == (32,) and task == nav.NavigationConfig()


def test_plan_over_the_saved_model_writes_its_outcomes(fitted, tmp_path):
    out = tmp_path / "plan"
    assert main(["navigation", "plan", str(fitted), "--episodes", "2", "--mppi.samples", "16", "--mppi.horizon", "6",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    check_results(results)
    o = results["extra"]["outcomes"]
    assert o["episodes"] == 2 and o["success"] + o["collision"] + o["timeout"] == pytest.approx(1.0)
    assert results["scores"]["per_seed"][0]["return_mean"] == o["success"] and results["extra"]["failure_term"]


def test_plan_with_the_true_model_reaches_every_goal(tmp_path):
    out = tmp_path / "true"
    assert main(["navigation", "plan", "--true-model", "--episodes", "3", "--out", str(out)]) == 0
    o = json.loads((out / "results.json").read_text())["extra"]["outcomes"]
    assert o["success"] == 1.0 and o["collision"] == 0.0  # benchmarks/planning.md: 1.00 on 100 maps x 3 seeds


def test_plan_needs_a_model_or_the_true_one(tmp_path, capsys):
    assert main(["navigation", "plan", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--true-model" in err and len(err.strip().splitlines()) == 1
