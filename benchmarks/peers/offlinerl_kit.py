#!/usr/bin/env python3
"""Reference runs of OfflineRL-Kit's MOPO and MOBILE (PyTorch) on dynlearn's suite datasets.

Not part of the dynlearn package: it runs in its own virtual environment (see README.md in this folder) and imports
the kit from a checkout given by ``--kit PATH`` or ``$OFFLINERL_KIT``. The kit's own modules do the work (networks,
``EnsembleDynamics.learn``/``validate``/``step``, ``MOPOPolicy``/``MOBILEPolicy``, ``ReplayBuffer``, termination
functions); this file reimplements only the outer loops that read gym/d4rl or do not allow a given split or a
checkpoint: the dynamics fit's epoch loop, the model-based trainer loop, and evaluation (Gymnasium v5, dynlearn's
seeding).

    python offlinerl_kit.py fit   --data F.hdf5 --dataset hopper-medium-v5 --seed 0 --out DIR [--split SPLIT.npz]
    python offlinerl_kit.py mopo  --data F.hdf5 --dataset hopper-medium-v5 --seed 0 --steps 100000 --out DIR --resume
    python offlinerl_kit.py mobile ...                     (same options)
    python offlinerl_kit.py summarize DIR [DIR ...] [--out cell.json]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import importlib.util
import json
import math
import os
import platform
import random
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

SCHEMA = "dynlearn.results/1"
LIBRARY = "OfflineRL-Kit"
TASKS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
# D4RL reference returns (random, expert), as dynlearn registers them for these tasks.
REFERENCE = {"Hopper-v5": (-20.272305, 3234.3), "HalfCheetah-v5": (-280.178953, 12135.0), "Walker2d-v5": (1.629008, 4592.3)}

# The kit's run_example/run_mopo.py and run_mobile.py defaults.
COMMON = dict(actor_lr=1e-4, critic_lr=3e-4, hidden_dims=[256, 256], gamma=0.99, tau=0.005, alpha=0.2, auto_alpha=True,
              target_entropy=None, alpha_lr=1e-4, rollout_freq=1000, rollout_batch_size=50000, model_retain_epochs=5,
              real_ratio=0.05, step_per_epoch=1000, batch_size=256, eval_episodes=10, lr_scheduler=True)
METHOD = {
    "mopo": dict(uncertainty_mode="aleatoric", max_model_epochs=None),
    "mobile": dict(num_q_ensemble=2, deterministic_backup=True, max_q_backup=False, num_samples=10, max_model_epochs=30),
}
DYNAMICS = dict(dynamics_lr=1e-3, dynamics_hidden_dims=[200, 200, 200, 200], dynamics_weight_decay=[2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4],
                n_ensemble=7, n_elites=5, max_epochs_since_update=5, model_batch_size=256, holdout_ratio=0.2, holdout_max=1000,
                logvar_loss_coef=0.01)
# "suggested hypers" from the docstrings of run_mopo.py / run_mobile.py (dataset name without its version).
PRESETS = {
    "mopo": {
        "halfcheetah-medium": dict(rollout_length=5, penalty_coef=0.5), "hopper-medium": dict(rollout_length=5, penalty_coef=5.0),
        "walker2d-medium": dict(rollout_length=5, penalty_coef=0.5),
        "halfcheetah-medium-replay": dict(rollout_length=5, penalty_coef=0.5),
        "hopper-medium-replay": dict(rollout_length=5, penalty_coef=2.5),
        "walker2d-medium-replay": dict(rollout_length=1, penalty_coef=2.5),
        "halfcheetah-medium-expert": dict(rollout_length=5, penalty_coef=2.5),
        "hopper-medium-expert": dict(rollout_length=5, penalty_coef=5.0),
        "walker2d-medium-expert": dict(rollout_length=1, penalty_coef=2.5),
    },
    "mobile": {
        "halfcheetah-random": dict(rollout_length=5, penalty_coef=0.5), "hopper-random": dict(rollout_length=5, penalty_coef=5.0),
        "walker2d-random": dict(rollout_length=5, penalty_coef=2.0),
        "halfcheetah-medium": dict(rollout_length=5, penalty_coef=0.5),
        "hopper-medium": dict(rollout_length=5, penalty_coef=1.5, auto_alpha=False),
        "walker2d-medium": dict(rollout_length=5, penalty_coef=0.5),
        "halfcheetah-medium-replay": dict(rollout_length=5, penalty_coef=0.1),
        "hopper-medium-replay": dict(rollout_length=5, penalty_coef=0.1),
        "walker2d-medium-replay": dict(rollout_length=1, penalty_coef=0.5),
        "halfcheetah-medium-expert": dict(rollout_length=5, penalty_coef=2.0),
        "hopper-medium-expert": dict(rollout_length=5, penalty_coef=1.5),
        "walker2d-medium-expert": dict(rollout_length=1, penalty_coef=1.5),
    },
}

_STOP = {"requested": False}


def log(folder: Path | None, msg: str) -> None:
    line = f"[{_dt.datetime.now().strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    if folder is not None:
        with open(folder / "log.txt", "a") as fh:
            fh.write(line + "\n")


def _on_signal(signum, frame):  # SIGTERM / Ctrl-C: checkpoint at the next step boundary, then exit
    _STOP["requested"] = True


def json_safe(x):
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(obj), indent=2) + "\n")
    os.replace(tmp, path)


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file, fsync, then rename over ``path``: a crash leaves the old or the new file."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def lock_folder(out: Path):
    """Hold an exclusive lock on ``out/.lock`` for the life of the process: a second run in one folder stops."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    fh = open(out / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(f"error: another process is running in {out}. Fix: wait for it, or stop it (it checkpoints on SIGTERM).")
    _LOCKS.append(fh)


_LOCKS: list = []


def git_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


# ----------------------------------------------------------------------------------------------------------- the kit

def import_kit(path: str | None) -> dict:
    """Put the kit's checkout on ``sys.path`` and import the modules used here.

    The kit imports ``gym`` (pinned to <= 0.24.1) in modules this harness does not use, and ``gym.spaces.Space`` /
    ``gym.Env`` in annotations. When no ``gym`` is installed, a stub module with just those names is inserted, so
    nothing of gym or d4rl runs; an installed gym is used as is.
    """
    root = Path(path or os.environ.get("OFFLINERL_KIT") or "").expanduser()
    if not (root / "offlinerlkit" / "__init__.py").is_file():
        sys.exit(f"error: no OfflineRL-Kit checkout at '{root}'. Fix: pass --kit PATH or set OFFLINERL_KIT to a clone of "
                 "https://github.com/yihaosun1124/OfflineRL-Kit.")
    sys.path.insert(0, str(root.resolve()))
    gym_stub = importlib.util.find_spec("gym") is None
    if gym_stub:
        gym = types.ModuleType("gym")
        gym.Env = type("Env", (), {})
        spaces = types.ModuleType("gym.spaces")
        spaces.Space = type("Space", (), {})
        envs = types.ModuleType("gym.envs")
        mujoco = types.ModuleType("gym.envs.mujoco")
        mujoco_env = types.ModuleType("gym.envs.mujoco.mujoco_env")
        mujoco_env.MujocoEnv = type("MujocoEnv", (), {})
        gym.spaces, gym.envs, envs.mujoco, mujoco.mujoco_env = spaces, envs, mujoco, mujoco_env
        for name, mod in (("gym", gym), ("gym.spaces", spaces), ("gym.envs", envs), ("gym.envs.mujoco", mujoco),
                          ("gym.envs.mujoco.mujoco_env", mujoco_env)):
            sys.modules[name] = mod
    from offlinerlkit.buffer import ReplayBuffer
    from offlinerlkit.dynamics import EnsembleDynamics
    from offlinerlkit.modules import ActorProb, Critic, EnsembleDynamicsModel, TanhDiagGaussian
    from offlinerlkit.nets import MLP
    from offlinerlkit.policy import MOBILEPolicy, MOPOPolicy
    from offlinerlkit.utils.scaler import StandardScaler
    from offlinerlkit.utils.termination_fns import get_termination_fn

    return dict(root=root.resolve(), commit=git_commit(root), gym="stub" if gym_stub else "installed", ReplayBuffer=ReplayBuffer,
                EnsembleDynamics=EnsembleDynamics, ActorProb=ActorProb, Critic=Critic, EnsembleDynamicsModel=EnsembleDynamicsModel,
                TanhDiagGaussian=TanhDiagGaussian, MLP=MLP, MOBILEPolicy=MOBILEPolicy, MOPOPolicy=MOPOPolicy,
                StandardScaler=StandardScaler, get_termination_fn=get_termination_fn)


# ----------------------------------------------------------------------------------------------------------- data

def task_of(name: str) -> tuple[str, str]:
    """``(Gymnasium id, kit task prefix)`` from a dataset label such as ``hopper-medium-v5``."""
    prefix = name.split("-")[0].lower()
    if prefix not in TASKS:
        sys.exit(f"error: dataset '{name}': expected a name starting with one of {', '.join(TASKS)}.")
    return TASKS[prefix], prefix


def preset_key(name: str) -> str:
    return re.sub(r"-v\d+$", "", name.lower())


def load_data(path: Path) -> dict:
    """Read a D4RL-layout file as dynlearn's ``load_d4rl`` does and return the kit's q-learning dict.

    Successors come from ``next_observations`` (never ``obs[i+1]``); where the file has none they are derived inside
    episodes and the last step of each episode has none. Rows without a valid successor (``infos/next_obs_valid``
    False, or derived) are dropped; every other row is kept, timeouts included (a timeout is not a terminal).
    ``hash`` is dynlearn's ``Dataset.content_hash()`` of the whole file.
    """
    import h5py

    with h5py.File(path, "r") as f:
        obs = np.asarray(f["observations"][()], np.float32)
        act = np.asarray(f["actions"][()], np.float32)
        act = act[:, None] if act.ndim == 1 else act
        rew = np.asarray(f["rewards"][()]).reshape(len(obs)).astype(np.float32)
        term = np.asarray(f["terminals"][()]).reshape(len(obs)).astype(bool)
        tout = np.asarray(f["timeouts"][()]).reshape(len(obs)).astype(bool) if "timeouts" in f else np.zeros_like(term)
        next_obs = np.asarray(f["next_observations"][()], np.float32) if "next_observations" in f else None
        valid = np.asarray(f["infos/next_obs_valid"][()]).astype(bool) if "infos/next_obs_valid" in f else None
        starts = np.asarray(f["metadata/episode_starts"][()], np.int64) if "metadata/episode_starts" in f else None
        task = f["metadata/task"][()] if "metadata/task" in f else None
    n = len(obs)
    if starts is None:
        starts = np.concatenate([[0], np.flatnonzero((term | tout)[:-1]) + 1]).astype(np.int64)
    if next_obs is None:
        valid = np.ones(n, bool)
        valid[np.append(starts[1:], n) - 1] = False
        next_obs = obs.copy()
        next_obs[:-1][valid[:-1]] = obs[1:][valid[:-1]]
    elif valid is None:
        valid = np.ones(n, bool)
    h = hashlib.sha256()
    for name, arr in (("obs", obs), ("act", act), ("rew", rew), ("next_obs", next_obs), ("terminal", term), ("timeout", tout),
                      ("next_obs_valid", valid)):
        arr = np.ascontiguousarray(arr)
        h.update(name.encode())
        h.update(str(arr.dtype).encode() + str(arr.shape).encode())
        h.update(arr.tobytes())
    h.update(np.ascontiguousarray(starts, np.int64).tobytes())
    rows = np.flatnonzero(valid)
    data = {"observations": obs[rows], "actions": act[rows], "next_observations": next_obs[rows], "rewards": rew[rows],
            "terminals": term[rows]}
    return dict(data=data, rows=rows, file_rows=n, hash=h.hexdigest()[:16], episodes=int(starts.size),
                task=task.decode() if isinstance(task, bytes) else task, obs_dim=obs.shape[1], act_dim=act.shape[1])


# ----------------------------------------------------------------------------------------------------------- dynamics fit

def build_dynamics(kit: dict, obs_dim: int, act_dim: int, prefix: str, penalty_coef: float = 0.0, uncertainty_mode: str = "aleatoric"):
    import torch

    model = kit["EnsembleDynamicsModel"](obs_dim=obs_dim, action_dim=act_dim, hidden_dims=DYNAMICS["dynamics_hidden_dims"],
                                         num_ensemble=DYNAMICS["n_ensemble"], num_elites=DYNAMICS["n_elites"],
                                         weight_decays=DYNAMICS["dynamics_weight_decay"], device="cpu")
    optim = torch.optim.Adam(model.parameters(), lr=DYNAMICS["dynamics_lr"])
    return kit["EnsembleDynamics"](model, optim, kit["StandardScaler"](), kit["get_termination_fn"](prefix),
                                   penalty_coef=penalty_coef, uncertainty_mode=uncertainty_mode)


def _rng_state() -> dict:
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(s: dict) -> None:
    import torch

    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])


def seed_all(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(kit: dict, loaded: dict, prefix: str, seed: int, out: Path, split: Path | None, max_epochs: int | None,
        resume: bool, folder_log: Path | None) -> dict:
    """Fit the kit's ensemble as ``EnsembleDynamics.train`` does, on a given or the kit's own random split.

    Writes ``out/fit.json``, ``out/split.npz`` (row indices into the file) and ``out/model.npz``; checkpoints every
    epoch to ``out/fit_checkpoint.pt`` (continued with ``resume``). Returns the fit summary.
    """
    import torch

    out.mkdir(parents=True, exist_ok=True)
    if (out / "model.npz").is_file() and (out / "fit.json").is_file() and resume:
        return json.loads((out / "fit.json").read_text())
    data, rows = loaded["data"], loaded["rows"]
    seed_all(seed)
    dyn = build_dynamics(kit, loaded["obs_dim"], loaded["act_dim"], prefix)
    model, E, n_elites = dyn.model, DYNAMICS["n_ensemble"], DYNAMICS["n_elites"]
    inputs, targets = dyn.format_samples_for_training({**data, "rewards": data["rewards"].reshape(-1, 1)})
    targets = targets.astype(np.float32)
    ckpt_path = out / "fit_checkpoint.pt"
    if resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        dyn.optim.load_state_dict(ck["optim"])
        train_idx, hold_idx, split_source = ck["train_idx"], ck["hold_idx"], ck["split_source"]
        st = ck["state"]
        _set_rng_state(ck["rng"])
        log(folder_log, f"fit: resumed at epoch {st['epoch']}")
    else:
        if split is not None:
            s = np.load(split)
            pos = np.full(loaded["file_rows"], -1, np.int64)
            pos[rows] = np.arange(rows.size)
            train_idx, hold_idx = pos[np.asarray(s["train"], np.int64)], pos[np.asarray(s["holdout"], np.int64)]
            if (train_idx < 0).any() or (hold_idx < 0).any():
                sys.exit(f"error: {split} names rows without a valid next observation.")
            split_source = str(split)
        else:  # the kit's own split: torch.utils.data.random_split, min(20%, 1000) held out
            n = len(inputs)
            hold = min(int(n * DYNAMICS["holdout_ratio"]), DYNAMICS["holdout_max"])
            tr, ho = torch.utils.data.random_split(range(n), (n - hold, hold))
            train_idx, hold_idx, split_source = np.asarray(tr.indices, np.int64), np.asarray(ho.indices, np.int64), "kit random_split"
        st = {"epoch": 0, "cnt": 0, "holdout_losses": [1e10] * E, "history": [], "wall_s": 0.0,
              "data_idxes": np.random.randint(len(train_idx), size=[E, len(train_idx)])}
    np.savez(out / "split.npz", train=rows[train_idx], holdout=rows[hold_idx])
    train_in, train_tg = inputs[train_idx], targets[train_idx]
    hold_in, hold_tg = inputs[hold_idx], targets[hold_idx]
    dyn.scaler.fit(train_in)
    train_in, hold_in = dyn.scaler.transform(train_in), dyn.scaler.transform(hold_in)
    log(folder_log, f"fit: {len(train_idx):,} train / {len(hold_idx):,} holdout rows ({split_source}), max epochs {max_epochs}")

    def shuffle_rows(arr):
        idxes = np.argsort(np.random.uniform(size=arr.shape), axis=-1)
        return arr[np.arange(arr.shape[0])[:, None], idxes]

    while True:
        t0 = time.perf_counter()
        st["epoch"] += 1
        idx = st["data_idxes"]
        train_loss = dyn.learn(train_in[idx], train_tg[idx], DYNAMICS["model_batch_size"], DYNAMICS["logvar_loss_coef"])
        new_losses = [float(x) for x in dyn.validate(hold_in, hold_tg)]
        holdout_loss = float(np.sort(new_losses)[:n_elites].mean())
        st["data_idxes"] = shuffle_rows(idx)
        improved = []
        for i, (new, old) in enumerate(zip(new_losses, st["holdout_losses"])):
            if (old - new) / old > 0.01:
                improved.append(i)
                st["holdout_losses"][i] = new
        if improved:
            model.update_save(improved)
            st["cnt"] = 0
        else:
            st["cnt"] += 1
        st["wall_s"] += time.perf_counter() - t0
        st["history"].append({"epoch": st["epoch"], "train_loss": float(train_loss), "holdout_loss": holdout_loss,
                              "holdout_per_member": new_losses, "improved": improved, "time_s": time.perf_counter() - t0})
        log(folder_log, f"fit epoch {st['epoch']:4d}  train {train_loss:9.4f}  holdout {holdout_loss:.5f}  improved {improved}  "
                        f"{time.perf_counter() - t0:.1f}s")
        done = st["cnt"] >= DYNAMICS["max_epochs_since_update"] or (max_epochs and st["epoch"] >= max_epochs)
        if done:
            break
        atomic_save({"model": model.state_dict(), "optim": dyn.optim.state_dict(), "train_idx": train_idx, "hold_idx": hold_idx,
                     "split_source": split_source, "state": st, "rng": _rng_state()}, ckpt_path)
        if _STOP["requested"]:
            log(folder_log, f"fit: stopped after epoch {st['epoch']} (checkpoint kept); continue with --resume")
            sys.exit(143)

    elites = dyn.select_elites(st["holdout_losses"])
    model.set_elites(elites)
    model.load_save()
    model.eval()
    with torch.no_grad():
        mean, _ = model(hold_in)
    mean = mean.numpy()
    per_member = ((mean - hold_tg[None]) ** 2).mean(axis=1)  # [E, obs_dim + 1], raw units
    elite_mean = mean[elites].mean(axis=0)
    elite_avg = ((elite_mean - hold_tg) ** 2).mean(axis=0)
    summary = {
        "library": LIBRARY, "kit_commit": kit["commit"], "seed": seed, "data": loaded["hash"], "transitions": int(len(inputs)),
        "train_rows": int(len(train_idx)), "holdout_rows": int(len(hold_idx)), "split": split_source,
        "epochs": st["epoch"], "max_epochs": max_epochs, "elites": [int(e) for e in elites],
        "targets": [f"delta_obs[{i}]" for i in range(loaded["obs_dim"])] + ["reward"],
        "holdout_mse_kit": float(np.sort(st["holdout_losses"])[:n_elites].mean()),
        "holdout_mse_per_member": [float(x) for x in st["holdout_losses"]],
        "holdout_mse_per_dim_per_member": per_member.tolist(),
        "holdout_mse_per_dim_elite_average": elite_avg.tolist(),
        "holdout_mse_elite_average": float(elite_avg.mean()),
        "history": st["history"], "wall_time_s": st["wall_s"], "hyperparameters": DYNAMICS,
    }
    params = {k: v.detach().numpy() for k, v in model.state_dict().items() if not k.split(".")[-1].startswith("saved_")}
    meta = json.dumps({"obs_dim": loaded["obs_dim"], "act_dim": loaded["act_dim"], "layout": "EnsembleLinear weight [E, in, out], "
                       "bias [E, 1, out]; Swish hidden layers; output [mean (obs_dim + 1), logvar (obs_dim + 1)]; logvar soft-clamped "
                       "to [min_logvar, max_logvar]; inputs (obs, act) standardised by scaler_mu/std; targets (delta obs, reward) raw",
                       "kit_commit": kit["commit"]})
    tmp = out / "model.tmp.npz"
    np.savez(tmp, **params, scaler_mu=dyn.scaler.mu.astype(np.float32), scaler_std=dyn.scaler.std.astype(np.float32),
             meta_json=np.array(meta))
    os.replace(tmp, out / "model.npz")
    write_json(out / "fit.json", summary)
    ckpt_path.unlink(missing_ok=True)
    log(folder_log, f"fit: {st['epoch']} epochs, elites {summary['elites']}, holdout MSE (kit, elites' mean of members) "
                    f"{summary['holdout_mse_kit']:.5f}, elite-average MSE {summary['holdout_mse_elite_average']:.5f}, {st['wall_s']:.0f}s")
    return summary


def load_model(kit: dict, folder: Path, obs_dim: int, act_dim: int, prefix: str, penalty_coef: float, uncertainty_mode: str):
    import torch

    dyn = build_dynamics(kit, obs_dim, act_dim, prefix, penalty_coef, uncertainty_mode)
    z = np.load(folder / "model.npz")
    state = dyn.model.state_dict()
    for k in state:
        src = k.replace("saved_", "") if k.split(".")[-1].startswith("saved_") else k
        if k == "elites":
            continue
        state[k] = torch.as_tensor(z[src]).reshape(state[k].shape)  # a dynlearn export may store flat vectors
    dyn.model.load_state_dict(state)
    dyn.model.set_elites([int(e) for e in z["elites"]])
    dyn.scaler.mu, dyn.scaler.std = np.asarray(z["scaler_mu"]), np.asarray(z["scaler_std"])
    dyn.model.eval()
    return dyn


# ----------------------------------------------------------------------------------------------------------- evaluation

def eval_seed(seed: int, step: int) -> tuple[int, str]:
    """The integer seed dynlearn's model-based trainer evaluates with at ``step``:
    ``randint(fold_in(split(key(seed), 4)[3], step), 0, 2**30)``. Needs JAX; without it a NumPy-derived seed
    (not dynlearn's) is used and the source says so."""
    try:
        import jax
    except ImportError:
        return int(np.random.SeedSequence([seed, step]).generate_state(1)[0] % 2**30), "numpy (install jax for dynlearn's seeds)"
    key = jax.random.split(jax.random.key(seed), 4)[3]
    return int(jax.random.randint(jax.random.fold_in(key, step), (), 0, 2**30)), "jax (as dynlearn)"


def evaluate(policy, env_id: str, episodes: int, seed: int, num_envs: int = 8) -> dict:
    """dynlearn's ``run_episodes``: ``num_envs`` environments, each given its share of the episodes up front;
    environment ``i`` reset with ``seed + i`` once, later resets continue its generator; deterministic actions
    (the kit's ``select_action(obs, deterministic=True)``) clipped to the action bounds."""
    import gymnasium as gym

    num_envs = max(1, min(num_envs, episodes))
    quota = [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]
    envs = [gym.make(env_id) for _ in range(num_envs)]
    low, high = envs[0].action_space.low.astype(np.float32), envs[0].action_space.high.astype(np.float32)
    finished: list[list[tuple[float, int]]] = [[] for _ in envs]
    rewards: list[list[float]] = [[] for _ in envs]
    policy.eval()
    try:
        obs = np.stack([np.asarray(env.reset(seed=seed + i)[0], np.float32).ravel() for i, env in enumerate(envs)])
        active = np.ones(num_envs, bool)
        while active.any():
            idx = np.flatnonzero(active)
            act = np.clip(np.asarray(policy.select_action(obs[idx], deterministic=True), np.float32).reshape(len(idx), -1), low, high)
            for j, i in enumerate(idx):
                next_obs, rew, terminated, truncated, _ = envs[i].step(act[j])
                rewards[i].append(float(rew))
                if terminated or truncated:
                    r = np.array(rewards[i], np.float32)
                    finished[i].append((float(r.sum(dtype=np.float64)), len(r)))
                    rewards[i] = []
                    if len(finished[i]) >= quota[i]:
                        active[i] = False
                        continue
                    next_obs = envs[i].reset()[0]
                obs[i] = np.asarray(next_obs, np.float32).ravel()
    finally:
        for env in envs:
            env.close()
        policy.train()
    eps = [e for per_env in finished for e in per_env]
    returns = np.array([e[0] for e in eps])
    lo, hi = REFERENCE[env_id]
    norm = 100.0 * (returns - lo) / (hi - lo)
    return {"return_mean": float(returns.mean()), "return_std": float(returns.std()), "normalized": float(norm.mean()),
            "returns": returns.tolist(), "lengths": [e[1] for e in eps], "eval_seed": seed}


# ----------------------------------------------------------------------------------------------------------- training

def hyperparameters(args, method: str) -> dict:
    key = preset_key(args.dataset)
    hp = {**COMMON, **METHOD[method], **PRESETS[method].get(key, {})}
    hp["preset"] = key if key in PRESETS[method] else None
    for name in ("rollout_length", "penalty_coef", "max_model_epochs", "rollout_batch_size", "eval_episodes"):
        value = getattr(args, name, None)
        if value is not None:
            hp[name] = value
    if args.max_model_epochs is not None and args.max_model_epochs <= 0:
        hp["max_model_epochs"] = None
    if args.alpha is not None:
        hp["auto_alpha"], hp["alpha"] = False, args.alpha
    if "rollout_length" not in hp or "penalty_coef" not in hp:
        sys.exit(f"error: no {method} preset for '{key}'. Fix: pass --rollout-length and --penalty-coef.")
    hp["dynamics"] = DYNAMICS
    return hp


def build_agent(kit: dict, method: str, hp: dict, obs_dim: int, act_dim: int, max_action: float, dynamics, epochs: int):
    """Actor, critics, optimisers, lr schedule and alpha exactly as run_mopo.py / run_mobile.py build them."""
    import torch

    kit_mlp = kit["MLP"]
    actor_backbone = kit_mlp(input_dim=obs_dim, hidden_dims=hp["hidden_dims"])
    dist = kit["TanhDiagGaussian"](latent_dim=actor_backbone.output_dim, output_dim=act_dim, unbounded=True, conditioned_sigma=True,
                                   max_mu=max_action)
    actor = kit["ActorProb"](actor_backbone, dist, "cpu")
    optims = {}
    if method == "mopo":
        critics = [kit["Critic"](kit_mlp(input_dim=obs_dim + act_dim, hidden_dims=hp["hidden_dims"]), "cpu") for _ in range(2)]
    else:
        critics = [kit["Critic"](kit_mlp(input_dim=obs_dim + act_dim, hidden_dims=hp["hidden_dims"]), "cpu")
                   for _ in range(hp["num_q_ensemble"])]
    optims["actor"] = torch.optim.Adam(actor.parameters(), lr=hp["actor_lr"])
    if method == "mopo":
        optims["critic1"] = torch.optim.Adam(critics[0].parameters(), lr=hp["critic_lr"])
        optims["critic2"] = torch.optim.Adam(critics[1].parameters(), lr=hp["critic_lr"])
    else:
        critics = torch.nn.ModuleList(critics)
        optims["critics"] = torch.optim.Adam(critics.parameters(), lr=hp["critic_lr"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optims["actor"], epochs) if hp["lr_scheduler"] else None
    log_alpha = None
    if hp["auto_alpha"]:
        target_entropy = hp["target_entropy"] if hp["target_entropy"] else -act_dim
        log_alpha = torch.zeros(1, requires_grad=True)
        optims["alpha"] = torch.optim.Adam([log_alpha], lr=hp["alpha_lr"])
        alpha = (target_entropy, log_alpha, optims["alpha"])
    else:
        alpha = hp["alpha"]
    if method == "mopo":
        policy = kit["MOPOPolicy"](dynamics, actor, critics[0], critics[1], optims["actor"], optims["critic1"], optims["critic2"],
                                   tau=hp["tau"], gamma=hp["gamma"], alpha=alpha)
    else:
        policy = kit["MOBILEPolicy"](dynamics, actor, critics, optims["actor"], optims["critics"], tau=hp["tau"], gamma=hp["gamma"],
                                     alpha=alpha, penalty_coef=hp["penalty_coef"], num_samples=hp["num_samples"],
                                     deterministic_backup=hp["deterministic_backup"], max_q_backup=hp["max_q_backup"])
    return policy, optims, scheduler, log_alpha


def q_mean(policy, method: str, batch: dict | None) -> float | None:
    """Mean critic value Q(s, a) over the critics on the last training batch (real + model rows)."""
    import torch

    if batch is None:
        return None
    obs = torch.cat([batch["real"]["observations"], batch["fake"]["observations"]], 0)
    act = torch.cat([batch["real"]["actions"], batch["fake"]["actions"]], 0)
    critics = [policy.critic1, policy.critic2] if method == "mopo" else list(policy.critics)
    with torch.no_grad():
        return float(torch.stack([c(obs, act) for c in critics]).mean())


def run_config(args, method: str, hp: dict, loaded: dict, env_id: str) -> dict:
    return {"method": method, "library": LIBRARY, "dataset": args.dataset, "data_hash": loaded["hash"], "task": env_id,
            "seed": args.seed, "steps": args.steps, "eval_every": args.eval_every,
            "model": str(Path(args.model).resolve()) if args.model else None,
            "split": str(args.split) if args.split else None, "hyperparameters": hp}


def train(args, method: str) -> None:
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    env_id, prefix = task_of(args.dataset)
    hp = hyperparameters(args, method)
    if args.steps % hp["step_per_epoch"]:
        sys.exit(f"error: --steps must be a multiple of {hp['step_per_epoch']} (one epoch of the kit's trainer).")
    data_path = Path(args.data).expanduser()
    loaded = load_data(data_path)
    if loaded["task"] and loaded["task"] != env_id:
        sys.exit(f"error: {data_path} was collected in {loaded['task']}, but '{args.dataset}' names {env_id}.")
    config = run_config(args, method, hp, loaded, env_id)
    ckpt_path = out / "checkpoint.pt"
    if out.exists() and any(p.name != ".lock" for p in out.iterdir()):
        if not args.resume:
            sys.exit(f"error: {out} is not empty. Fix: add --resume to continue it, or choose another --out.")
        saved = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else None
        if saved is not None and saved != json.loads(json.dumps(json_safe(config))):
            differs = [k for k in set(saved) | set(config) if saved.get(k) != json_safe(config.get(k))]
            sys.exit(f"error: {out}/config.json differs from this run's options ({', '.join(sorted(differs))}). "
                     "Fix: resume with the same options, or choose another --out.")
        if (out / "results.json").is_file():
            print((out / "results.json").read_text())
            return
    lock_folder(out)
    write_json(out / "config.json", config)
    kit = import_kit(args.kit)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    log(out, f"{method} (OfflineRL-Kit {str(kit['commit'])[:12]}, torch {torch.__version__}, gym {kit['gym']}) on {args.dataset}: "
             f"{len(loaded['rows']):,} transitions, seed {args.seed}, {args.steps:,} steps, h {hp['rollout_length']}, "
             f"penalty {hp['penalty_coef']}, auto alpha {hp['auto_alpha']}")

    # evaluation seeds first: importing and running JAX moves NumPy's global random state
    eval_steps = sorted({s for s in range(args.eval_every, args.steps + 1, args.eval_every)} | {args.steps})
    seeds = {s: eval_seed(args.seed, s) for s in eval_steps}

    # 1. the dynamics model: a given fit, or fitted here (resumable) into out/model
    if args.model:
        model_dir = Path(args.model)
        if not (model_dir / "model.npz").is_file():
            sys.exit(f"error: {model_dir} has no model.npz. Fix: pass a folder written by the fit subcommand.")
    else:
        model_dir = out / "model"
        if not (model_dir / "model.npz").is_file():
            fit(kit, loaded, prefix, args.seed, model_dir, Path(args.split) if args.split else None, hp["max_model_epochs"], True, out)
    penalty = hp["penalty_coef"] if method == "mopo" else 0.0
    dynamics = load_model(kit, model_dir, loaded["obs_dim"], loaded["act_dim"], prefix, penalty, hp.get("uncertainty_mode", "aleatoric"))
    fit_info = json.loads((model_dir / "fit.json").read_text()) if (model_dir / "fit.json").is_file() else {}
    fit_s = 0.0 if args.model else float(fit_info.get("wall_time_s", 0.0))  # a fit done in this run counts in its wall time

    # 2. policy training: seeded afresh, so it is the same whether the model was fitted here or given
    seed_all(args.seed)
    epochs = args.steps // hp["step_per_epoch"]
    import gymnasium as gym

    with gym.make(env_id) as env:
        max_action = float(env.action_space.high[0])
    policy, optims, scheduler, log_alpha = build_agent(kit, method, hp, loaded["obs_dim"], loaded["act_dim"], max_action, dynamics, epochs)
    real_buffer = kit["ReplayBuffer"](buffer_size=len(loaded["rows"]), obs_shape=(loaded["obs_dim"],), obs_dtype=np.float32,
                                      action_dim=loaded["act_dim"], action_dtype=np.float32, device="cpu")
    real_buffer.load_dataset(loaded["data"])
    fake_buffer = kit["ReplayBuffer"](buffer_size=hp["rollout_batch_size"] * hp["rollout_length"] * hp["model_retain_epochs"],
                                      obs_shape=(loaded["obs_dim"],), obs_dtype=np.float32, action_dim=loaded["act_dim"],
                                      action_dtype=np.float32, device="cpu")
    prog = {"step": 0, "evals": [], "history": [], "train_s": 0.0, "eval_s": 0.0, "wall_s": fit_s, "fit_s": fit_s}
    if ckpt_path.is_file():
        ck = torch.load(ckpt_path, weights_only=False)
        policy.load_state_dict(ck["policy"])
        for k, o in optims.items():
            o.load_state_dict(ck["optims"][k])
        if scheduler is not None:
            scheduler.load_state_dict(ck["scheduler"])
        if log_alpha is not None:
            with torch.no_grad():
                log_alpha.copy_(ck["log_alpha"])
        policy._alpha = ck["alpha"]
        fb = ck["fake_buffer"]
        size = fb["size"]
        for name in ("observations", "next_observations", "actions", "rewards", "terminals"):
            getattr(fake_buffer, name)[:size] = fb[name].numpy()
        fake_buffer._ptr, fake_buffer._size = fb["ptr"], size
        _set_rng_state(ck["rng"])
        prog = ck["progress"]
        log(out, f"resumed at step {prog['step']:,}")

    def checkpoint():
        size = fake_buffer._size
        fb = {name: torch.from_numpy(np.ascontiguousarray(getattr(fake_buffer, name)[:size]))
              for name in ("observations", "next_observations", "actions", "rewards", "terminals")}
        prog["wall_s"] += time.perf_counter() - clock[0]
        clock[0] = time.perf_counter()
        atomic_save({"policy": policy.state_dict(), "optims": {k: o.state_dict() for k, o in optims.items()},
                     "scheduler": None if scheduler is None else scheduler.state_dict(),
                     "log_alpha": None if log_alpha is None else log_alpha.detach().clone(), "alpha": policy._alpha,
                     "fake_buffer": {**fb, "ptr": fake_buffer._ptr, "size": size}, "rng": _rng_state(), "progress": prog,
                     "model_dir": str(model_dir)}, ckpt_path)
        write_json(out / "history.json", {"history": prog["history"], "evals": prog["evals"]})

    clock = [time.perf_counter()]
    n_real = int(hp["batch_size"] * hp["real_ratio"])
    block = {"t_rollout": 0.0, "t_update": 0.0, "c_rollout": 0.0, "c_update": 0.0, "losses": {}, "n": 0, "rollout": {}}
    batch = None
    while prog["step"] < args.steps:
        step = prog["step"]
        t0, c0 = time.perf_counter(), time.process_time()
        if step % hp["rollout_freq"] == 0:  # MBPolicyTrainer.train: rollouts of sampled real states
            init_obss = real_buffer.sample(hp["rollout_batch_size"])["observations"].cpu().numpy()
            transitions, info = policy.rollout(init_obss, hp["rollout_length"])
            fake_buffer.add_batch(**transitions)
            block["rollout"] = {"num_transitions": int(info["num_transitions"]), "reward_mean": float(info["reward_mean"])}
        t1, c1 = time.perf_counter(), time.process_time()
        batch = {"real": real_buffer.sample(batch_size=n_real), "fake": fake_buffer.sample(batch_size=hp["batch_size"] - n_real)}
        loss = policy.learn(batch)
        t2, c2 = time.perf_counter(), time.process_time()
        for k, v in loss.items():
            block["losses"][k] = block["losses"].get(k, 0.0) + v
        block["n"] += 1
        block["t_rollout"] += t1 - t0
        block["t_update"] += t2 - t1
        block["c_rollout"] += c1 - c0
        block["c_update"] += c2 - c1
        prog["train_s"] += t2 - t0
        prog["train_cpu_s"] = prog.get("train_cpu_s", 0.0) + c2 - c0
        step = prog["step"] = step + 1
        if step % hp["step_per_epoch"] == 0:
            if scheduler is not None:
                scheduler.step()
            prog["history"].append({"step": step, **{k: v / block["n"] for k, v in block["losses"].items()}, **block["rollout"],
                                    "time/rollout_s": block["t_rollout"], "time/update_s": block["t_update"],
                                    "cpu/rollout_s": block["c_rollout"], "cpu/update_s": block["c_update"],
                                    "actor_lr": optims["actor"].param_groups[0]["lr"]})
            block = {"t_rollout": 0.0, "t_update": 0.0, "c_rollout": 0.0, "c_update": 0.0, "losses": {}, "n": 0, "rollout": {}}
        if step in seeds:
            te = time.perf_counter()
            r = evaluate(policy, env_id, hp["eval_episodes"], seeds[step][0])
            prog["eval_s"] += time.perf_counter() - te
            r.update(step=step, q_mean=q_mean(policy, method, batch), eval_seed_source=seeds[step][1])
            prog["evals"].append(r)
            h = prog["history"][-1] if prog["history"] else {}
            log(out, f"step {step:>8,}  return {r['return_mean']:8.1f} ± {r['return_std']:6.1f}  normalized {r['normalized']:6.1f}  "
                     f"Q {r['q_mean']:8.1f}  rollout reward {h.get('reward_mean', float('nan')):.3f}  "
                     f"{step / max(prog['train_s'], 1e-9):.1f} steps/s")
        if step % args.checkpoint_every == 0 and step < args.steps:
            checkpoint()
        if _STOP["requested"] and step < args.steps:
            checkpoint()
            log(out, f"stopped at step {step:,} (checkpoint written); continue with --resume")
            sys.exit(143)
    checkpoint()
    torch.save(policy.state_dict(), out / "policy.pt")
    final = prog["evals"][-1]
    results = {
        "schema": SCHEMA, "dynlearn_version": None, "git_sha": git_commit(Path(__file__).resolve().parent),
        "jax_version": None, "library": LIBRARY, "library_commit": kit["commit"], "torch_version": torch.__version__,
        "python": platform.python_version(), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": {"name": args.dataset, "hash": loaded["hash"], "transitions": int(loaded["file_rows"]),
                    "episodes": loaded["episodes"], "used_transitions": int(len(loaded["rows"]))},
        "task": env_id, "method": method,
        "budget": {"steps": args.steps, "seeds": 1, "eval_episodes": hp["eval_episodes"], "horizon": hp["rollout_length"],
                   "rollout_batch": hp["rollout_batch_size"], "rollout_every": hp["rollout_freq"]},
        "scores": {"metric": "normalized_score",
                   "per_seed": [{"seed": args.seed, "return_mean": final["return_mean"], "return_std": final["return_std"],
                                 "normalized": final["normalized"], "episodes": hp["eval_episodes"]}],
                   "mean": final["normalized"], "std": 0.0, "policy": "final"},
        "wall_time_s": prog["wall_s"], "steps_per_s": args.steps / max(prog["train_s"], 1e-9),
        "hyperparameters": hp,
        "evaluations": [{k: e[k] for k in ("step", "return_mean", "return_std", "normalized", "q_mean", "eval_seed")}
                        for e in prog["evals"]],
        "extra": {"training_s": prog["train_s"], "training_cpu_s": prog.get("train_cpu_s"), "eval_s": prog["eval_s"],
                  "fit_s": prog["fit_s"], "threads": args.threads,
                  "model": str(model_dir), "model_epochs": fit_info.get("epochs"), "model_elites": fit_info.get("elites"),
                  "model_holdout_mse": fit_info.get("holdout_mse_kit"), "eval_seeds": seeds[args.steps][1],
                  "gym": kit["gym"], "harness": "benchmarks/peers/offlinerl_kit.py"},
    }
    try:
        import jax

        results["jax_version"] = jax.__version__
    except ImportError:
        pass
    write_json(out / "results.json", results)
    log(out, f"{method} on {args.dataset} seed {args.seed}: normalized {final['normalized']:.1f} (return {final['return_mean']:.1f}), "
             f"{results['steps_per_s']:.1f} steps/s, wall {prog['wall_s']:.0f}s")


# ----------------------------------------------------------------------------------------------------------- summary

def summarize(args) -> None:
    """Merge seed folders (each with results.json) into cells: mean ± std of the final normalized scores."""
    found = []
    for p in args.folders:
        p = Path(p)
        found += sorted(p.glob("**/results.json"))  # the folder's own and every seed folder's below it
    cells: dict[tuple, list[dict]] = {}
    for f in sorted({f.resolve() for f in found}):
        r = json.loads(f.read_text())
        if r.get("library") != LIBRARY or "folders" in r.get("extra", {}):  # another library's, or a merged cell
            continue
        hp = r.get("hyperparameters", {})
        key = (r["method"], r["dataset"]["name"], r["budget"]["steps"], hp.get("rollout_length"), hp.get("penalty_coef"))
        cells.setdefault(key, []).append({**r, "_path": str(f.parent)})
    merged = []
    print("| library | method | dataset | h / penalty | steps | seeds | normalized (mean ± std) | per seed | wall time per seed (s) "
          "| steps/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (method, name, steps, h, coef), runs in sorted(cells.items(), key=lambda kv: str(kv[0])):
        runs.sort(key=lambda r: r["scores"]["per_seed"][0]["seed"])
        per_seed = [s for r in runs for s in r["scores"]["per_seed"]]
        vals = np.array([s["normalized"] for s in per_seed], np.float64)
        walls = [r["wall_time_s"] for r in runs]
        sps = [r["steps_per_s"] for r in runs]
        print(f"| {LIBRARY} | {method} | {name} | {h} / {coef} | {steps:,} | {len(per_seed)} | {vals.mean():.1f} ± {vals.std():.1f} | "
              f"{', '.join('s%d %.1f' % (s['seed'], s['normalized']) for s in per_seed)} | {np.mean(walls):,.0f} | {np.mean(sps):.1f} |")
        first = runs[0]
        merged.append({**{k: first[k] for k in ("schema", "dynlearn_version", "git_sha", "jax_version", "library", "library_commit",
                                                  "torch_version", "python", "dataset", "task", "method", "hyperparameters")},
                       "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       "budget": {**first["budget"], "seeds": len(per_seed)},
                       "scores": {"metric": "normalized_score", "per_seed": per_seed, "mean": float(vals.mean()),
                                  "std": float(vals.std()), "policy": "final"},
                       "wall_time_s": float(np.sum(walls)), "steps_per_s": float(np.mean(sps)),
                       "evaluations": {f"seed {r['scores']['per_seed'][0]['seed']}": r["evaluations"] for r in runs},
                       "extra": {"wall_time_s_per_seed": walls, "folders": [r["_path"] for r in runs]}})
    if args.out:
        write_json(Path(args.out), merged[0] if len(merged) == 1 else merged)


# ----------------------------------------------------------------------------------------------------------- CLI

def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--kit", help="OfflineRL-Kit checkout (default: $OFFLINERL_KIT)")
        sp.add_argument("--data", required=True, help="D4RL-layout .hdf5 file")
        sp.add_argument("--dataset", required=True, help="dataset label, e.g. hopper-medium-v5 (names the task and the preset)")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--out", required=True, help="output folder")
        sp.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
        sp.add_argument("--split", help="npz with integer arrays 'train' and 'holdout' (row indices into the file) for the model fit")
        sp.add_argument("--max-model-epochs", type=int, default=None,
                        help="cap on model-fit epochs (default: the kit script's: none for MOPO, 30 for MOBILE; 0 = none)")
        sp.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint; a finished run reprints results")

    sp = sub.add_parser("fit", help="fit the kit's dynamics ensemble; writes fit.json, split.npz, model.npz")
    common(sp)
    for method in ("mopo", "mobile"):
        sp = sub.add_parser(method, help=f"the kit's {method.upper()} end to end; writes results.json")
        common(sp)
        sp.add_argument("--steps", type=int, required=True)
        sp.add_argument("--eval-every", type=int, default=10000)
        sp.add_argument("--checkpoint-every", type=int, default=5000)
        sp.add_argument("--model", help="folder with a fit's model.npz (skips the fit)")
        sp.add_argument("--rollout-length", type=int, default=None, help="override the preset's rollout length")
        sp.add_argument("--penalty-coef", type=float, default=None, help="override the preset's penalty coefficient")
        sp.add_argument("--alpha", type=float, default=None, help="fixed entropy coefficient (turns auto alpha off)")
        sp.add_argument("--rollout-batch-size", type=int, default=None, help="override the 50,000 rollout start states")
        sp.add_argument("--eval-episodes", type=int, default=None)
    sp = sub.add_parser("summarize", help="merge seed folders into a cell table")
    sp.add_argument("folders", nargs="+")
    sp.add_argument("--out", help="write the merged results (one cell: a results.json; several: a list)")
    args = p.parse_args(argv)

    if args.cmd == "summarize":
        return summarize(args)
    if args.cmd == "fit":
        import torch

        torch.set_num_threads(args.threads)
        out = Path(args.out)
        if out.exists() and any(p.name != ".lock" for p in out.iterdir()) and not args.resume:
            sys.exit(f"error: {out} is not empty. Fix: add --resume to continue it, or choose another --out.")
        env_id, prefix = task_of(args.dataset)
        loaded = load_data(Path(args.data).expanduser())
        kit = import_kit(args.kit)
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        lock_folder(out)
        max_epochs = None if args.max_model_epochs is not None and args.max_model_epochs <= 0 else args.max_model_epochs
        fit(kit, loaded, prefix, args.seed, out, Path(args.split) if args.split else None, max_epochs, args.resume, out)
        return None
    return train(args, args.cmd)


if __name__ == "__main__":
    main()
