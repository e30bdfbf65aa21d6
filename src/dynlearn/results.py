"""Run folders and the versioned ``results.json`` schema every run writes.

A run folder holds ``config.json`` (what was asked), ``results.json`` (what happened, schema below) and
figures, with ``.dynlearn-run`` (what marks it as dynlearn's: ``--force`` replaces only such a folder) and, while a
process writes it, ``.dynlearn.lock`` (who: :mod:`dynlearn.locking`). Scores are of the *final* policy of each seed,
never the best seen during training; a non-finite final score is a failed run
(:class:`~dynlearn.errors.TrainingFailedError`), never written as a result. The files are strict JSON: a number that
is not finite (NaN, inf) anywhere in them is written as ``null``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import json_safe, json_text, write_json  # noqa: F401  (json_safe: part of this module's API)
from .errors import OutputExistsError

SCHEMA = "dynlearn.results/1"
REQUIRED = ("schema", "dynlearn_version", "git_sha", "jax_version", "created", "dataset", "task", "method", "budget",
            "scores", "wall_time_s", "steps_per_s")


def git_sha() -> str | None:
    """The commit of the dynlearn source tree in use (None outside a git checkout)."""
    if os.environ.get("DYNLEARN_GIT_SHA"):
        return os.environ["DYNLEARN_GIT_SHA"]
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


@dataclasses.dataclass(frozen=True)
class SeedScore:
    """The final policy's evaluation for one training seed."""

    seed: int
    return_mean: float
    return_std: float
    normalized: float | None
    episodes: int

    def __post_init__(self):
        check_finite_score(self)


def check_finite_score(score: SeedScore) -> None:
    """Raise :class:`~dynlearn.errors.TrainingFailedError` unless ``score``'s values are finite numbers (``normalized``
    may be None): a NaN or infinite final score is a failed run, never written as a result."""
    values = {"mean return": score.return_mean, "return std": score.return_std}
    if score.normalized is not None:
        values["normalized score"] = score.normalized
    bad = {name: v for name, v in values.items() if not (isinstance(v, (int, float, np.number)) and math.isfinite(v))}
    if bad:
        from .errors import TrainingFailedError

        kind = "NaN" if any(v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)) for v in bad.values()) else "infinite"
        found = ", ".join(f"{name} {v}" for name, v in bad.items())
        raise TrainingFailedError(
            f"the final policy's score is {kind}: seed {score.seed}'s last evaluation ({score.episodes} episodes) has {found}, "
            "so the run has no result (results.json is not written; the checkpoints are kept). Fix: look for non-finite values "
            "in the data (dynlearn data info DATA) and for divergence in the run's evaluations; then retrain with other "
            "settings or data.")


def write_final_score(folder: Path, seed: int, last_eval: dict, episodes: int) -> SeedScore:
    """The seed's final policy score from its last evaluation (``return_mean``, ``return_std``, ``normalized``),
    written to ``folder/final.json`` (what marks a seed finished)."""
    score = SeedScore(seed=seed, return_mean=last_eval["return_mean"], return_std=last_eval["return_std"],
                      normalized=last_eval["normalized"], episodes=episodes)
    write_json(Path(folder) / "final.json", dataclasses.asdict(score))
    return score


def make_results(*, method: str, task: str, dataset: dict | None, budget: dict, seed_scores: list[SeedScore],
                 wall_time_s: float, steps_per_s: float | None, extra: dict | None = None) -> dict[str, Any]:
    """Assemble a ``results.json`` dict (schema ``dynlearn.results/1``).

    ``dataset`` is ``{"name", "hash", "transitions"}`` (or None for online runs); ``budget`` at least
    ``{"steps", "seeds"}``. ``scores.mean``/``std`` are over seeds, of normalized scores when the task has
    reference returns, else of raw returns (``scores.metric`` says which).
    """
    import jax

    from . import __version__

    normalized = [s.normalized for s in seed_scores]
    metric = "normalized_score" if seed_scores and all(v is not None for v in normalized) else "return"
    values = np.array(normalized if metric == "normalized_score" else [s.return_mean for s in seed_scores], np.float64)
    return {
        "schema": SCHEMA,
        "dynlearn_version": __version__,
        "git_sha": git_sha(),
        "jax_version": jax.__version__,
        "jax_backend": jax.default_backend(),
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": dataset,
        "task": task,
        "method": method,
        "budget": budget,
        "scores": {
            "metric": metric,
            "per_seed": [dataclasses.asdict(s) for s in seed_scores],
            "mean": float(values.mean()) if values.size else None,
            "std": float(values.std()) if values.size else None,
            "policy": "final",
        },
        "wall_time_s": float(wall_time_s),
        "steps_per_s": None if steps_per_s is None else float(steps_per_s),
        "extra": extra or {},
    }


def check_results(results: dict) -> None:
    """Raise ValueError if ``results`` does not follow the schema (used by tests and loaders of run folders)."""
    missing = [k for k in REQUIRED if k not in results]
    if missing:
        raise ValueError(f"results.json is missing {missing}")
    if results["schema"] != SCHEMA:
        raise ValueError(f"results.json schema {results['schema']!r}, expected {SCHEMA!r}")
    for k in ("steps", "seeds"):
        if k not in results["budget"]:
            raise ValueError(f"results.json budget is missing '{k}'")
    if len(results["scores"]["per_seed"]) != results["budget"]["seeds"]:
        raise ValueError("results.json has a score per seed count that differs from budget.seeds")


def dataset_record(dataset) -> dict:
    """What ``results.json`` records about a :class:`dynlearn.data.Dataset`."""
    return {"name": dataset.name, "hash": dataset.content_hash(), "transitions": len(dataset), "episodes": dataset.n_episodes}


def config_differences(saved: dict, new: dict, prefix: str = "") -> list[str]:
    """Keys whose values differ between a saved run config and a new one (dotted paths).

    A key the saved config lacks and the new one sets to None is not a difference: it is an option added to the
    library after the run started, left inactive, so the run still resumes.
    """
    out = []
    for key in sorted(set(saved) | set(new)):
        name = f"{prefix}{key}"
        if key not in saved:
            if new[key] is not None:
                out.append(name)
        elif key not in new:
            out.append(name)
        elif isinstance(saved[key], dict) and isinstance(new[key], dict):
            out.extend(config_differences(saved[key], new[key], name + "."))
        elif saved[key] != new[key]:
            out.append(name)
    return out


def known_to(saved: dict, new: dict) -> dict:
    """``new`` without the keys ``saved`` lacks and ``new`` sets to None (options added to the library after the run
    started, left inactive): the config as the run knows it, whose fingerprint tags its checkpoints, so a run started
    before an option existed still resumes (:meth:`RunFolder.open` sets ``run.config`` to it)."""
    out = {}
    for key, value in new.items():
        if key not in saved:
            if value is not None:
                out[key] = value
        elif isinstance(value, dict) and isinstance(saved[key], dict):
            out[key] = known_to(saved[key], value)
        else:
            out[key] = value
    return out


def _count(config: dict, dotted: str) -> int:
    for key in dotted.split("."):
        config = config[key]
    return config


def _add_seeds(path: Path, config: dict, had: int) -> None:
    """Grow a run folder's seed count (see :meth:`RunFolder.open`): the results of its first ``had`` seeds are kept
    aside, and ``config.json`` is rewritten with the new count."""
    results = path / "results.json"
    if results.is_file():
        os.replace(results, path / f"results-{had}-seeds.json")
    write_json(path / "config.json", config)


class RunFolder:
    """A run's output folder, locked for this process while it writes (:mod:`dynlearn.locking`).

    Refuses an existing non-empty folder unless ``force``, and then replaces only a dynlearn run folder (its
    :data:`~dynlearn.checkpoint.RUN_MARKER`) or a folder the user named again (:func:`dynlearn.checkpoint.replacing`,
    the CLI's ``--force-replace-folder``); never a file. The lock is held until :meth:`close` (or the end of a ``with``
    block, or the process's exit): a second writer of the folder gets :class:`~dynlearn.errors.LockedError`.
    ``part`` (e.g. ``"seed_1"``): one of several processes writing one run together, each its own part (``only_seed``).
    """

    def __init__(self, path: str | os.PathLike, *, force: bool = False, part: str | None = None):
        from .checkpoint import RUN_MARKER, check_replaceable, is_leftover

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            if not force:
                raise OutputExistsError(self.path)
            check_replaceable(self.path, folder=True)  # refuses: a file is never deleted
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            from .errors import DataError

            raise DataError(str(self.path), f"cannot be created ({e.strerror or e}).",
                            "pass --out a path in a folder you can write to.") from None
        self.lock = self._lock(part)
        try:
            contents = [p for p in self.path.iterdir() if not is_leftover(p)]
            if contents:
                if not force:
                    raise OutputExistsError(self.path)
                check_replaceable(self.path, folder=True)
                for p in contents:
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p)
                    else:
                        p.unlink()
            write_json(self.path / RUN_MARKER, {"dynlearn_run_folder": 1})
        except BaseException:
            self.close()
            raise

    def _lock(self, part: str | None):
        from .errors import DataError
        from .locking import RUN_LOCK, acquire

        try:
            return acquire(self.path / RUN_LOCK, f"the run folder {self.path}", part=part)
        except OSError as e:  # (a LockedError is no OSError)
            raise DataError(str(self.path / RUN_LOCK), f"cannot be written ({e.strerror or e}), so the run folder cannot be "
                            "locked for this run.", "pass --out a folder you can write to.") from None

    @classmethod
    def open(cls, path: str | os.PathLike, config: dict, *, resume: bool = False, force: bool = False,
             part: str | None = None, seeds_key: str | None = None) -> "RunFolder":
        """A new run folder with ``config.json`` written, or (``resume``) an existing one whose config must match
        (:func:`config_differences`), locked for this process (see the class).

        Resuming a finished run (its ``results.json`` written) raises :class:`~dynlearn.errors.RunFinished` and changes
        nothing; resuming a stopped one first deletes the temporary files its writer left when it was killed.

        ``seeds_key`` (e.g. ``"model_based.seeds"``): the dotted key of the run's seed count, for trainers whose seeds
        train independently. Resuming with a larger count and an otherwise equal config adds seeds to the run, finished
        or not: ``config.json`` takes the new count and the old ``results.json`` is set aside as
        ``results-K-seeds.json`` until the trainer writes the results of all seeds.

        ``run.config`` is the config as the run knows it (:func:`known_to`: ``config`` less the options added since the
        run started and left inactive); trainers tag their checkpoints with its fingerprint."""
        import json

        from .checkpoint import clean_leftovers
        from .errors import ConfigError, DataError, RunFinished

        if not resume:
            run = cls(path, force=force, part=part)
            run.config = config
            try:
                run.write_config(config)
            except BaseException:
                run.close()
                raise
            return run
        path = Path(path)
        if not (path / "config.json").is_file():
            raise DataError(str(path), "has no run to resume.", "start a new run without --resume.")
        run = cls.__new__(cls)
        run.path = path
        run.lock = run._lock(part)
        try:
            try:
                saved = json.loads((path / "config.json").read_text())
            except (OSError, ValueError) as e:
                raise DataError(str(path / "config.json"), f"is unreadable ({e}).",
                                "restore it from a copy of the run folder, or start a new run (another --out).") from None
            differs = config_differences(saved, json.loads(json_text(config)))
            if differs == [seeds_key] and _count(config, seeds_key) > _count(saved, seeds_key):
                if part is None or (path / "results.json").is_file():  # (one process of a run split by seed does this)
                    _add_seeds(path, config, _count(saved, seeds_key))
                differs = []
            if differs:
                raise ConfigError(f"{path}/config.json differs from this run's config ({', '.join(differs[:5])}). Fix: "
                                  "resume with the same options and data, or use a new --out.")
            if (path / "results.json").is_file():
                raise RunFinished(path)
            run.config = known_to(saved, config)
            if part is None:  # (the parts of a run write at the same time: none may delete another's temporary files)
                clean_leftovers(path)
        except BaseException:
            run.close()
            raise
        return run

    def close(self) -> None:
        """Release the folder's lock (also done at the process's exit)."""
        lock, self.lock = getattr(self, "lock", None), None
        if lock is not None:
            lock.release()

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: dict) -> Path:
        return write_json(self.path / "config.json", config)

    def write_results(self, results: dict) -> Path:
        check_results(results)
        return write_json(self.path / "results.json", results)
