"""A run folder's seeds, as the agent trainers (offline, model-based) keep them around :func:`dynlearn.training.run`.

A run folder has one folder per seed, ``seed_K``, holding its checkpoint (:func:`seed_checkpoint`), its
``metrics.jsonl`` and, once it has done all its steps, ``final.json`` (its final policy's score) and the final agent
(``agent/``); :func:`finished_seed` reads a finished seed back instead of training it again. (Kept apart from the loop:
the fits import the loop, and only the run-folder trainers need the results schema.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from ..agents.base import state_of
from ..results import SeedScore, write_final_score
from .checkpoints import Checkpoint, fingerprint
from .schedule import Schedule
from .seeds import SeedCheckpoints


def seed_checkpoint(folder: Path, config: dict, seed: int) -> Checkpoint:
    """The checkpoint of a run's seed (``folder/checkpoint``), tagged with the run's config and the seed.

    The tag leaves out the run's seed count (a ``seeds`` entry in each section of the config): a seed trains the same
    whatever the number of its siblings, so a run can be given more seeds later (:meth:`dynlearn.results.RunFolder.open`)
    and keep the ones it has."""
    per_seed = {k: ({f: v for f, v in section.items() if f != "seeds"} if isinstance(section, dict) else section)
                for k, section in config.items()}
    return Checkpoint(folder / "checkpoint", fingerprint(per_seed, seed), owner=str(folder),
                      other="another run (its config.json differs)", where=folder)


def finished_seed(store: Checkpoint, folder: Path, steps: int) -> tuple[SeedScore, dict] | None:
    """``(final score, progress)`` of a seed that has done all ``steps`` (``final.json`` written), else None."""
    progress = store.read_progress()
    if progress is None or progress["step"] < steps or not (folder / "final.json").is_file():
        return None
    return SeedScore(**json.loads((folder / "final.json").read_text())), progress


def seed_schedule(cfg, block: int, until: int | None) -> Schedule:
    """The loop's cadence for an agent trainer's seed (offline and model-based): evaluations and checkpoints every so
    many steps, and the final checkpoint kept (a resumed run reads its finished seeds' progress)."""
    return Schedule(block=block, total=cfg.steps, until=until, eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every,
                    checkpoint_at_end=True)



class SeedFolders:
    """The seeds of one run folder, ``out/seed_K`` each: its checkpoint, ``metrics.jsonl``, and once it has done all
    ``steps``, ``final.json`` (its final policy's score) and the final agent (``agent/``).

    What the agent trainers (offline, model-based) share around :func:`dynlearn.training.run`, whether their seeds train
    in turn (one :attr:`stores` entry at a time) or together (:meth:`checkpoints`)."""

    def __init__(self, out: str | os.PathLike, seeds: Sequence[int], config: dict, steps: int):
        self.out, self.seeds, self.steps = Path(out), list(seeds), steps
        self.folders = [self.out / f"seed_{seed}" for seed in self.seeds]
        self.stores = [seed_checkpoint(folder, config, seed) for folder, seed in zip(self.folders, self.seeds)]

    def finished(self) -> list[tuple[SeedScore, dict]] | None:
        """Every seed's ``(score, progress)`` when all are finished, else None."""
        done = [finished_seed(store, folder, self.steps) for store, folder in zip(self.stores, self.folders)]
        return done if all(d is not None for d in done) else None

    def checkpoints(self) -> SeedCheckpoints:
        """The seeds' checkpoints as one, for seeds trained together."""
        return SeedCheckpoints(self.stores, self.out)

    def metrics(self) -> list[Path]:
        return [folder / "metrics.jsonl" for folder in self.folders]

    def finish(self, i: int, agent, agent_state, progress: dict, episodes: int) -> tuple[SeedScore, dict]:
        """Seed ``i`` has done its steps: save its final agent and score (its last evaluation); ``(score, progress)``."""
        agent.save(self.folders[i] / "agent", agent_state)
        return write_final_score(self.folders[i], self.seeds[i], progress["evals"][-1], episodes), progress

    def finish_together(self, agent, agent_states, progress: dict, episodes: int) -> list[tuple[SeedScore, dict]]:
        """:meth:`finish` for every seed of a stacked state and joint progress (each seed gets its share of the times)."""
        n = len(self.seeds)
        return [self.finish(i, agent, state_of(agent_states, i), {**p, "step": progress["step"], "wall_s": progress["wall_s"] / n,
                                                                   "train_s": progress["train_s"] / n}, episodes)
                for i, p in enumerate(progress["seeds"])]
