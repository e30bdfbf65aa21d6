"""The benchmark suite: D4RL-style named datasets regenerated from kept behaviour policies (exactly on one machine;
across machines within a stated tolerance, see :func:`within_tolerance`).

D4RL and Minari downloads are not reachable everywhere, so dynlearn makes its own datasets the way D4RL
did: SAC is trained online in the task (``dynlearn train sac --online``); its best policy (the final one, or a
snapshot if the final one sits in a dip) is *expert*, the snapshot whose return is nearest one third of the
expert's is *medium*, and the snapshots up to the
medium one, each run for as many steps as it acted during training (after the random warm-up), make
*medium-replay*. *random* is the uniform policy; *medium-expert* is medium followed by expert. The
policies are kept in the package (``suite_policies/<task>/``, actor only) with a manifest, so a user
never trains a policy to get ``hopper-medium-v5``::

    dynlearn data generate hopper-medium-v5        # or dl.data.load("hopper-medium-v5")

Datasets are cached under ``$DYNLEARN_DATA_DIR`` (default ``~/.cache/dynlearn/datasets``). Behaviour
actions are sampled from the stochastic policy, as D4RL did. Normalized scores use D4RL's reference
returns: a familiar scale, not comparability with D4RL's own datasets (different simulator version,
policies and sizes).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path


from ..data.d4rl import load_d4rl, write_d4rl
from ..data.dataset import Dataset, concat_datasets
from ..errors import ConfigError
from .collect import collect
from .policies import saved_policy
from .policy import RandomPolicy
from .registry import get

POLICY_DIR = Path(__file__).parent / "suite_policies"
TASKS = {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "halfcheetah": "HalfCheetah-v5"}
TIERS = ("random", "medium", "medium-replay", "expert", "medium-expert")
STEPS = 200_000
_NAME = re.compile(r"^(?P<short>[a-z0-9]+)-(?P<tier>random|medium-replay|medium-expert|medium|expert)-v5$")


def cache_dir() -> Path:
    return Path(os.environ.get("DYNLEARN_DATA_DIR", Path.home() / ".cache" / "dynlearn" / "datasets"))


def manifest(short: str) -> dict | None:
    """The kept behaviour policies of a task (None when none are kept yet)."""
    path = POLICY_DIR / short / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else None


def names() -> list[str]:
    """Dataset names available now: every tier for tasks with kept policies, ``random`` for the rest."""
    out = []
    for short in TASKS:
        tiers = TIERS if manifest(short) else ("random",)
        out += [f"{short}-{tier}-v5" for tier in tiers]
    return out


def parse(name: str) -> tuple[str, str] | None:
    """``"hopper-medium-v5" -> ("hopper", "medium")``; None if ``name`` is not a suite name."""
    m = _NAME.match(name.lower())
    return (m["short"], m["tier"]) if m and m["short"] in TASKS else None


def generate(name: str, *, seed: int = 0, steps: int = STEPS) -> Dataset:
    """Build the named dataset from the kept policies (deterministic for a seed)."""
    parsed = parse(name)
    if parsed is None:
        raise ConfigError(f"'{name}' is not a suite dataset. Known: {', '.join(names())}.")
    short, tier = parsed
    task = get(TASKS[short])
    info = manifest(short)
    if tier != "random" and info is None:
        raise ConfigError(f"'{name}': no behaviour policies are kept for {task.id} yet (only {short}-random-v5). "
                          f"Fix: train them (see benchmarks/suite.md) or pick another dataset.")
    folder = POLICY_DIR / short

    def run(policy_path: str | None, n: int, part_seed: int, label: str) -> Dataset:
        policy = RandomPolicy(task) if policy_path is None else saved_policy(folder / policy_path, task)
        return collect(task, policy, steps=n, seed=part_seed, name=label, policy_name=label)

    if tier == "random":
        data = run(None, steps, seed, name)
    elif tier in ("medium", "expert"):
        data = run(info[tier]["path"], steps, seed, name)
    elif tier == "medium-expert":
        parts = [run(info["medium"]["path"], steps, seed, "medium"), run(info["expert"]["path"], steps, seed + 1, "expert")]
        data = concat_datasets(parts, name=name)
    else:  # medium-replay: the training run's own data distribution up to the medium snapshot
        parts = [run(None, info["start_steps"], seed, "warm-up")]
        for i, snap in enumerate(info["replay"]):
            parts.append(run(snap["path"], snap["steps"], seed + 1 + i, f"step {snap['step']}"))
        data = concat_datasets(parts, name=name)
    data = Dataset(transitions=data.transitions, episode_starts=data.episode_starts, name=name,
                   source=f"dynlearn suite: {name} (seed {seed})", task=task.id,
                   metadata=data.metadata | {"suite_tier": tier, "suite_seed": seed})
    return data


# ----- reproducibility: each dataset's recorded content hash and summary ------------------------------------------------
# Generation is deterministic on one machine (same policies, seed and code: same bytes), not across machines: float
# differences in the policy network or the simulator (CPU instruction sets, library builds) compound over an episode, so
# another machine of the same kind gave hopper-medium-v5 with 740 episodes and a mean return of 833.1 against the 739 and
# 835.9 recorded here. The manifests record, for seed 0, each dataset's content hash and summary as generated for the
# suite (benchmarks/suite.md); `dynlearn data generate` compares a regenerated dataset with them.

def recorded(name: str, seed: int = 0) -> dict | None:
    """The recorded content hash and summary of suite dataset ``name`` for ``seed`` (None when none is recorded):
    ``{"content_hash", "transitions", "episodes", "return_mean", "return_std"}`` (returns over complete episodes)."""
    parsed = parse(name)
    if parsed is None or seed != 0:
        return None
    info = manifest(parsed[0]) or {}
    return info.get("datasets", {}).get(name.lower())


def dataset_record(dataset: Dataset) -> dict:
    """What :func:`recorded` holds, measured on ``dataset``."""
    returns = dataset.episode_returns()[dataset.episode_complete]
    return {"content_hash": dataset.content_hash(), "transitions": len(dataset), "episodes": dataset.n_episodes,
            "return_mean": float(returns.mean()) if returns.size else None,
            "return_std": float(returns.std()) if returns.size else None}


def within_tolerance(record: dict, measured: dict) -> bool:
    """Whether a regenerated dataset's summary agrees with the recorded one as two draws of the same behaviour would:
    the same number of transitions, the number of episodes within three times its square root, and the mean return
    over complete episodes within three standard errors (recorded std / sqrt(episodes)) of the recorded mean."""
    import math

    if measured["transitions"] != record["transitions"]:
        return False
    if abs(measured["episodes"] - record["episodes"]) > 3 * math.sqrt(record["episodes"]):
        return False
    if record.get("return_mean") is None or measured.get("return_mean") is None:
        return record.get("return_mean") is None and measured.get("return_mean") is None
    standard_error = record["return_std"] / math.sqrt(max(record["episodes"], 1))
    return abs(measured["return_mean"] - record["return_mean"]) <= 3 * standard_error + 1e-9 * abs(record["return_mean"])


def reproduction_warning(name: str, dataset: Dataset, seed: int = 0) -> str | None:
    """None when ``dataset`` (suite dataset ``name`` generated with ``seed``) has the recorded content hash, or when
    nothing is recorded; else a one-line warning saying how it differs and whether within the tolerance."""
    record = recorded(name, seed)
    if record is None:
        return None
    got = dataset_record(dataset)
    if got["content_hash"] == record["content_hash"]:
        return None

    def fmt(r):
        mean = "n/a" if r["return_mean"] is None else f"{r['return_mean']:.1f}"
        return f"{r['episodes']:,} episodes, mean return {mean}"

    head = (f"{name} (seed {seed}) was generated with content hash {got['content_hash']}, not the suite's recorded "
            f"{record['content_hash']} ({fmt(got)} against {fmt(record)})")
    if within_tolerance(record, got):
        return (head + ": within the tolerance, as expected on another machine (float differences in the policy or the simulator "
                "compound over an episode). Results on it are comparable with the suite's tables, not identical to them.")
    return (head + ": beyond the tolerance, so the behaviour policies, the simulator or the generation code differ from those "
            "that made the suite; results on it are not comparable with the suite's tables. Fix: check the installed "
            "dynlearn and mujoco versions against benchmarks/suite.md.")


def path_of(name: str, seed: int = 0) -> Path:
    return cache_dir() / (f"{name.lower()}.hdf5" if seed == 0 else f"{name.lower()}-seed{seed}.hdf5")


def load_named(name: str, *, log=print) -> Dataset | None:
    """Resolver for :func:`dynlearn.data.load`: the cached file, generated on first use."""
    if parse(name) is None:
        return None
    path = path_of(name)
    if not path.is_file():
        log(f"generating {name} from the suite's behaviour policies (cached at {path}) ...")
        dataset = generate(name)
        note = reproduction_warning(name, dataset)
        if note is not None:
            log(f"warning: {note}")
        write_d4rl(path, dataset, force=True)
    return load_d4rl(path, name=name.lower())


def build_policies(run_dir: str | Path, short: str, *, eval_episodes: int = 20, command: str = "", log=print) -> dict:
    """Choose and export the behaviour policies of an online SAC run into ``suite_policies/<short>/``.

    Expert: the best of the final policy and the three best-scoring snapshots, each re-evaluated with
    ``eval_episodes`` stochastic episodes. Medium: among earlier snapshots, the one whose return is nearest a
    third of the expert's (the eight nearest by logged return are re-evaluated stochastically first). Replay: every
    snapshot before the medium one, each to be run for the steps it covered in training.
    """
    import shutil

    from .. import agents
    from ..agents.export import save_policy
    from .evaluate import evaluate

    run_dir = Path(run_dir)
    task = get(TASKS[short])
    cfg = json.loads((run_dir / "config.json").read_text())["online"]
    history = json.loads((run_dir / "evals.json").read_text())
    sac = agents.get(cfg["agent"])

    def score(state_path: Path, key: int):
        r = evaluate(saved_policy(state_path, task, deterministic=False), task, eval_episodes, key=key)
        return r.mean, r.std, r.normalized_mean

    # Expert: the best of the final policy and the three best-scoring snapshots, re-evaluated (SAC on Hopper
    # oscillates late in training, so the final policy can sit in a dip; D4RL's expert was a converged policy).
    snaps = [s for s in history["snapshots"] if s["return_mean"] is not None]
    final = {"step": cfg["steps"], "path": "final", "return_mean": None}
    top = sorted((s for s in snaps if s["step"] < cfg["steps"]), key=lambda s: -s["return_mean"])[:3]
    experts = [(s, score(run_dir / s["path"], 1)) for s in [final, *top]]
    expert_snap, expert = max(experts, key=lambda pair: pair[1][0])
    target = expert[0] / 3
    earlier = [s for s in snaps if s["step"] < expert_snap["step"]] or [s for s in snaps if s["step"] != expert_snap["step"]]
    # behaviour data is sampled from the stochastic policy, whose return is lower than the deterministic one logged
    # in training: re-evaluate the candidates the way they will act
    nearest = sorted(earlier, key=lambda s: abs(s["return_mean"] - target))[:8]
    rescored = [(s, score(run_dir / s["path"], 2)) for s in nearest]
    medium, medium_score = min(rescored, key=lambda pair: abs(pair[1][0] - target))
    log(f"expert = step {expert_snap['step']} with {expert[0]:.1f} (candidates: "
        + ", ".join(f"{s['step']}: {sc[0]:.1f}" for s, sc in experts)
        + f"); medium target {target:.1f}: step {medium['step']} with {medium_score[0]:.1f}")

    out = POLICY_DIR / short
    shutil.rmtree(out, ignore_errors=True)
    save_policy(out / "expert", sac.load(run_dir / expert_snap["path"]), agent=cfg["agent"])
    save_policy(out / "medium", sac.load(run_dir / medium["path"]), agent=cfg["agent"])
    # snapshot k acted in training from step k to k + snapshot_every (the one at start_steps is the untrained
    # policy, which acted right after the random warm-up); together they cover [start_steps, medium step).
    replay = []
    for s in sorted(history["snapshots"], key=lambda s: s["step"]):
        if cfg["start_steps"] <= s["step"] < medium["step"]:
            path = f"replay/step_{s['step']:08d}"
            save_policy(out / path, sac.load(run_dir / s["path"]), agent=cfg["agent"])
            replay.append({"path": path, "step": s["step"], "steps": cfg["snapshot_every"]})
    info = {
        "task": task.id, "agent": cfg["agent"], "training": {"steps": cfg["steps"], "seed": cfg["seed"], "command": command},
        "start_steps": cfg["start_steps"],
        "expert": {"path": "expert", "step": expert_snap["step"], "return_mean": expert[0], "return_std": expert[1],
                   "normalized": expert[2],
                   "candidates": [{"step": s["step"], "return_mean": sc[0]} for s, sc in experts]},
        "medium": {"path": "medium", "step": medium["step"], "return_mean": medium_score[0], "return_std": medium_score[1],
                   "normalized": medium_score[2]},
        "replay": replay, "eval_episodes": eval_episodes,
    }
    from ..checkpoint import write_json

    write_json(out / "manifest.json", info)
    return info
