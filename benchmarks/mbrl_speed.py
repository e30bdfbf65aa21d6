"""MOPO policy-learning speed on HalfCheetah dimensions, rollouts included (issue 5's speed benchmark).

Setup as the peers were measured (REFERENCES.md): obs 17, act 6; SAC 256x256 with batch 256 (5% real rows); the
standard 7-member ensemble (4 x 200 Swish, 5 elites, random elite per sample, MOPO's max-aleatoric penalty);
rollouts of 50,000 start states x 5 steps every 250 agent steps into a buffer kept for 5 rollouts. Each block is
exactly what :func:`dynlearn.algos.model_based.run_block` does in training: one compiled rollout, then one
compiled ``lax.scan`` over 250 SAC updates. The ensemble is untrained (speed does not depend on its weights).

Peers on this 2-core machine type, same settings: OfflineRL-Kit 19.6 steps/s, unifloral 20.6 steps/s. The
machine is shared: the load average is printed next to the result; compare ratios measured in one run.

    python benchmarks/mbrl_speed.py [--blocks 6] [--rollout-every 250] [--method mopo]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dynlearn import models
from dynlearn.agents.base import AgentSpec
from dynlearn.algos.model_based import ModelBasedConfig, StartStates, method_module, run_block
from dynlearn.data.buffer import ReplayBuffer
from dynlearn.data.transitions import Transitions

OBS, ACT, N_REAL = 17, 6, 200_000
PEERS = {"OfflineRL-Kit": 19.6, "unifloral": 20.6}


def never(obs, act, next_obs):
    return jnp.zeros(next_obs.shape[:-1], bool)


class _Task:
    id, obs_dim, act_dim, termination_fn, reward_fn = "halfcheetah-dims", OBS, ACT, staticmethod(never), None


class _Starts(StartStates):
    def __init__(self, obs):
        self.obs, self.state_from = obs, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=6, help="timed blocks after one warm-up block")
    parser.add_argument("--rollout-every", type=int, default=250)
    parser.add_argument("--method", default="mopo", choices=("mopo", "mobile", "ravl"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    real = Transitions(obs=rng.normal(size=(N_REAL, OBS)).astype(np.float32), act=rng.uniform(-1, 1, (N_REAL, ACT)).astype(np.float32),
                       rew=rng.normal(size=N_REAL).astype(np.float32), next_obs=rng.normal(size=(N_REAL, OBS)).astype(np.float32),
                       terminal=np.zeros(N_REAL, bool), timeout=np.zeros(N_REAL, bool), next_obs_valid=np.ones(N_REAL, bool)).to_device()
    model = models.ProbabilisticEnsemble.init(models.EnsembleConfig(), OBS, ACT, key=jax.random.key(0)).with_task(_Task())
    cfg = ModelBasedConfig(method=args.method, rollout_every=args.rollout_every, penalty_coef=1.0, q_floor=0.0,
                           steps=args.rollout_every, eval_every=args.rollout_every, checkpoint_every=args.rollout_every).resolve(None)
    method = method_module(args.method)
    agent, agent_cfg = method.agent(cfg)
    spec = AgentSpec(OBS, ACT, (-1.0,) * ACT, (1.0,) * ACT)
    state = agent.init(jax.random.key(1), spec, agent_cfg)
    buffer = ReplayBuffer.empty(cfg.buffer_capacity, OBS, ACT)
    starts = _Starts(real.obs)
    hooks = method.hooks(cfg)
    adjust = method.target_adjust(cfg, model, agent, round(cfg.real_ratio * agent_cfg.batch_size))

    rows = []
    for block in range(args.blocks + 1):
        key = jax.random.key(100 + block)
        state, buffer, row = run_block(agent, state, buffer, model, starts, real, hooks, adjust, cfg, agent_cfg.batch_size,
                                       rollout_key=key, update_key=jax.random.fold_in(key, 1))
        if block > 0:  # the first block compiles
            rows.append(row)
    roll = float(np.mean([r["time/rollout_s"] for r in rows]))
    upd = float(np.mean([r["time/update_s"] for r in rows]))
    steps_per_s = args.rollout_every / (roll + upd)
    load = os.getloadavg()[0]
    print(f"{args.method}: {cfg.rollout_batch:,} x {cfg.horizon} rollout every {args.rollout_every} steps, batch {agent_cfg.batch_size}, "
          f"{cfg.real_ratio:.0%} real; load average {load:.1f} on {os.cpu_count()} cores")
    print(f"  rollout {roll:6.2f} s/block   updates {upd:6.2f} s/block ({args.rollout_every / upd:6.1f} updates/s)   "
          f"time in rollouts {roll / (roll + upd):.0%}")
    print(f"  policy-learning steps/s {steps_per_s:6.1f}")
    for name, value in PEERS.items():
        print(f"  vs {name:<14} {value:5.1f} steps/s: {steps_per_s / value:4.2f}x")
    print(f"  with rollouts every 1000 steps (the papers' setting) this is {1000 / (roll + 1000 / (args.rollout_every / upd)):.1f} steps/s")
    print(f"  measured {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
