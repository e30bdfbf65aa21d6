"""dynlearn plan: a saved ensemble plans in the real task and the run folder gets its results; a folder without a model
is one line and exit 2."""

from __future__ import annotations

import json

import jax
import pytest

import dynlearn as dl
from dynlearn.cli import main
from dynlearn.models import EnsembleConfig, FitConfig
from dynlearn.results import check_results


@pytest.fixture(scope="module")
def pendulum_model(tmp_path_factory):
    task = dl.tasks.get("Pendulum-v1")
    data = dl.tasks.collect(task, dl.tasks.RandomPolicy(task), steps=1_000, seed=0, num_envs=2)
    model, _ = dl.models.fit(EnsembleConfig(members=3, elites=2, hidden=(32, 32), weight_decay=(0.0, 0.0, 0.0)), data,
                             key=jax.random.key(0), cfg=FitConfig(max_epochs=3, progress=False), task=task)
    folder = tmp_path_factory.mktemp("model") / "model"
    dl.models.save(folder, model)
    return folder


@pytest.mark.parametrize("planner", ["cem", "mppi", "shooting"])
def test_plan_evaluates_a_saved_model_in_the_task(pendulum_model, tmp_path, planner):
    out = tmp_path / "plan"
    assert main(["plan", str(pendulum_model), "--planner", planner, "--episodes", "1", "--horizon", "4", "--population", "16",
                 "--elites", "4", "--iterations", "2", "--objective.particles", "2", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    check_results(results)
    assert results["method"] == f"mpc-{planner}" and results["task"] == "Pendulum-v1"
    assert len(results["extra"]["returns"]) == 1 and results["budget"]["steps"] == 200


def test_plan_without_a_model_is_one_line(tmp_path, capsys):
    assert main(["plan", str(tmp_path), "--out", str(tmp_path / "plan")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no saved model" in err[0] and "Fix:" in err[0]
    assert not (tmp_path / "plan").exists()
