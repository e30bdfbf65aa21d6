"""PETS: a run stopped at an episode end and resumed ends where an uninterrupted one does; on Pendulum-v1 the planner
with the refitted ensemble swings the pendulum up within a few episodes (slow)."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import dynlearn as dl
from dynlearn import models
from dynlearn.algos.pets import PETSConfig, train_pets
from dynlearn.errors import ConfigError
from dynlearn.models import EnsembleConfig
from dynlearn.planning import CEMConfig, ObjectiveConfig

TINY = PETSConfig(task="Pendulum-v1", steps=600, initial_steps=200, train_every=200, fit_epochs=3,
                  model=EnsembleConfig(members=3, elites=2, hidden=(16,), weight_decay=(0.0, 0.0)),
                  planner=CEMConfig(horizon=5, population=16, elites=4, iterations=2), objective=ObjectiveConfig(particles=2))


def _quiet(*_):
    pass


def test_a_resumed_run_matches_an_uninterrupted_one(tmp_path):
    full = train_pets(TINY, tmp_path / "full", log=_quiet)
    assert train_pets(TINY, tmp_path / "killed", until=400, log=_quiet) == {}
    assert json.loads((tmp_path / "killed" / "checkpoint" / "progress.json").read_text())["step"] == 400
    resumed = train_pets(TINY, tmp_path / "killed", resume=True, log=_quiet)
    assert [e["return"] for e in resumed["extra"]["episodes"]] == [e["return"] for e in full["extra"]["episodes"]]
    task = dl.tasks.get("Pendulum-v1")
    a, b = models.load(tmp_path / "full" / "model", task=task), models.load(tmp_path / "killed" / "model", task=task)
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    assert len(full["extra"]["episodes"]) == 3 and [e["planned"] for e in full["extra"]["episodes"]] == [False, True, True]
    assert not (tmp_path / "full" / "checkpoint").exists()


def test_bad_budgets_are_refused():
    with pytest.raises(ConfigError, match="initial_steps"):
        PETSConfig(steps=100, initial_steps=100)
    with pytest.raises(ConfigError, match="preset"):
        PETSConfig.preset("paper")


@pytest.mark.slow
def test_pets_swings_the_pendulum_up_within_a_few_episodes(tmp_path):
    """One random episode, then the planner over the ensemble refitted every 200 steps: a random policy scores about
    -1200 per episode, a swung-up pendulum about -150; by the fifth planned episode PETS is near the latter."""
    cfg = PETSConfig(task="Pendulum-v1", steps=1_200, initial_steps=200, train_every=200, fit_epochs=100,
                     model=EnsembleConfig(members=5, elites=5, hidden=(200, 200, 200), weight_decay=(3.3e-5,) * 4),
                     planner=CEMConfig(horizon=15, population=100, elites=10, iterations=5, alpha=0.134),
                     objective=ObjectiveConfig(particles=5))
    results = train_pets(cfg, tmp_path / "run", log=_quiet)
    returns = [e["return"] for e in results["extra"]["episodes"]]
    assert returns[0] < -500  # the random episode
    assert max(returns[1:]) > -400, returns


def test_the_cli_trains_pets_and_names_a_bad_flag(tmp_path, capsys):
    from dynlearn.cli import main

    tiny = ["--task", "Pendulum-v1", "--steps", "400", "--initial-steps", "200", "--train-every", "200", "--fit-epochs", "2",
            "--model.members", "2", "--model.elites", "2", "--model.hidden", "8", "--model.weight-decay", "0", "0",
            "--planner.horizon", "3", "--planner.population", "8", "--planner.elites", "2", "--planner.iterations", "1",
            "--objective.particles", "2"]
    assert main(["train", "pets", *tiny, "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["method"] == "pets" and len(results["extra"]["episodes"]) == 2
    capsys.readouterr()
    assert main(["train", "pets", "--steps", "100", "--initial-steps", "200", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--initial-steps" in err[0] and "Fix:" in err[0]
    assert not (tmp_path / "bad").exists()


def test_an_episode_cut_by_the_step_budget_is_not_scored(tmp_path):
    import dataclasses

    results = train_pets(dataclasses.replace(TINY, steps=500), tmp_path / "run", log=_quiet)
    episodes = results["extra"]["episodes"]
    assert [e["ended"] for e in episodes] == [True, True, False] and episodes[-1]["length"] == 100
    assert results["scores"]["per_seed"][0]["return_mean"] == pytest.approx(episodes[1]["return"])
