"""MOPO policy-learning speed on HalfCheetah dimensions, rollouts included.

Setup as the peers were measured (OfflineRL-Kit's MOPO on HalfCheetah): obs 17, act 6; SAC 256x256 with batch 256
(5% real rows); the standard 7-member ensemble (4 x 200 Swish, 5 elites, random elite per sample, MOPO's max-
aleatoric penalty); rollouts of 50,000 start states x 5 steps every 250 agent steps into a buffer kept for 5
rollouts. Each block is exactly what :func:`dynlearn.algos.model_based.run_block` does in training: one compiled
rollout, then one compiled ``lax.scan`` over 250 SAC updates. The ensemble is untrained (speed does not depend on
its weights).

Peers on this 2-core machine type, same settings: OfflineRL-Kit 19.6 steps/s, unifloral 20.6 steps/s. The
machine is shared: the load average is printed next to the result; compare ratios measured in one run.

    python benchmarks/mbrl_speed.py [--blocks 6] [--rollout-every 250] [--method mopo]
    python benchmarks/mbrl_speed.py --morec       # issue 6: MOREC-MOPO's rollout against MOPO's, per model transition

``--morec`` times, in one run, MOPO's rollout (50,000 x 5, the all-member penalty) and MOREC-MOPO's (2,000 x 100, the
same penalty plus K = 10 candidates scored by 40 discriminators, threshold 0 so no branch is cut), per model transition,
with the FLOPs each spends in the ensemble and in the discriminators (untrained weights: the cost does not depend on them).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dynlearn import models
from dynlearn.agents.base import AgentSpec
from dynlearn.algos import MOPOConfig, method
from dynlearn.algos.model_based import run_block
from dynlearn.algos.model_source import StartStates
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
    parser.add_argument("--morec", action="store_true", help="compare MOREC-MOPO's rollout with MOPO's instead")
    args = parser.parse_args()
    if args.morec:
        return morec_comparison(args.blocks)

    rng = np.random.default_rng(0)
    real = Transitions(obs=rng.normal(size=(N_REAL, OBS)).astype(np.float32), act=rng.uniform(-1, 1, (N_REAL, ACT)).astype(np.float32),
                       rew=rng.normal(size=N_REAL).astype(np.float32), next_obs=rng.normal(size=(N_REAL, OBS)).astype(np.float32),
                       terminal=np.zeros(N_REAL, bool), timeout=np.zeros(N_REAL, bool), next_obs_valid=np.ones(N_REAL, bool)).to_device()
    model = models.ProbabilisticEnsemble.init(models.EnsembleConfig(), OBS, ACT, key=jax.random.key(0)).with_task(_Task())
    cls = method(args.method)
    own = {f.name for f in dataclasses.fields(cls)}
    cfg = cls(rollout_every=args.rollout_every, steps=args.rollout_every, eval_every=args.rollout_every,
              checkpoint_every=args.rollout_every, **{k: v for k, v in {"penalty_coef": 1.0, "q_floor": 0.0}.items() if k in own})
    agent, agent_cfg = cfg.agent()
    spec = AgentSpec(OBS, ACT, (-1.0,) * ACT, (1.0,) * ACT)
    state = agent.init(jax.random.key(1), spec, agent_cfg)
    buffer = ReplayBuffer.empty(cfg.buffer_capacity, OBS, ACT)
    starts = _Starts(real.obs)
    hooks = cfg.hooks()
    adjust = cfg.target_adjust(model, agent, round(cfg.real_ratio * agent_cfg.batch_size))

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


def _mlp_flops(sizes) -> float:
    return 2.0 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def morec_comparison(repeats: int) -> None:
    """MOPO h = 5 vs MOREC-MOPO h = 100 rollouts: seconds per model transition, and where the FLOPs go."""
    from dynlearn.algos import MORECMOPOConfig, morec
    from dynlearn.algos.morec import DynamicsReward, DynamicsRewardConfig
    from dynlearn.rollout import AgentPolicy, rollout

    model = models.ProbabilisticEnsemble.init(models.EnsembleConfig(), OBS, ACT, key=jax.random.key(0)).with_task(_Task())
    sac = MOPOConfig().agent()[0]
    spec = AgentSpec(OBS, ACT, (-1.0,) * ACT, (1.0,) * ACT)
    policy = AgentPolicy(sac.act, sac.init(jax.random.key(1), spec, sac.Config()))
    rcfg = DynamicsRewardConfig()
    reward = DynamicsReward.init(rcfg, OBS, ACT, key=jax.random.key(2))
    runs = {}
    for name in ("mopo", "morec-mopo"):
        cfg = MOPOConfig() if name == "mopo" else MORECMOPOConfig(reward_threshold=0.0)
        hooks = cfg.hooks() if name == "mopo" else morec.filter_hooks(cfg, MOPOConfig.hooks(cfg), reward=reward)
        obs = jax.random.normal(jax.random.key(3), (cfg.rollout_batch, OBS))
        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            ro = rollout(model, policy, obs, cfg.horizon, key=jax.random.key(10 + i), hooks=hooks)
            jax.block_until_ready(ro.obs)
            times.append(time.perf_counter() - t0)
        rows = cfg.rollout_batch * cfg.horizon
        runs[name] = (cfg, min(times[1:]), rows)
    e = models.EnsembleConfig()
    ensemble = e.members * _mlp_flops((OBS + ACT, *e.hidden, 2 * (OBS + 1) + 1))
    policy_flops = _mlp_flops((OBS, 256, 256, 2 * ACT))
    cfg = runs["morec-mopo"][0]
    s, k = cfg.reward_discriminators, cfg.candidates
    state_net = _mlp_flops((OBS + ACT, *rcfg.state_hidden, rcfg.state_embedding))
    per_candidate = (_mlp_flops((OBS, *rcfg.delta_hidden, rcfg.delta_embedding))
                     + _mlp_flops((rcfg.state_embedding + rcfg.delta_embedding, *rcfg.hidden, 1)))
    discriminators = s * (state_net + k * per_candidate)  # the state embedding once per row, the rest per candidate
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; best of {repeats} after a compiling run")
    for name, (c, best, rows) in runs.items():
        flops = ensemble + policy_flops + (discriminators if name == "morec-mopo" else 0.0)
        print(f"  {name:<11} {c.rollout_batch:>6,} x {c.horizon:<3}: {best:6.2f} s, {best / rows * 1e6:7.2f} us per model transition, "
              f"{flops / 1e6:6.1f} MFLOP per transition ({flops * rows / best / 1e9:5.1f} GFLOP/s)")
    ratio = (runs["morec-mopo"][1] / runs["morec-mopo"][2]) / (runs["mopo"][1] / runs["mopo"][2])
    print(f"  MOREC-MOPO / MOPO per transition: {ratio:.1f}x; "
          f"FLOP ratio {(ensemble + policy_flops + discriminators) / (ensemble + policy_flops):.1f}x "
          f"(ensemble {ensemble / 1e6:.2f}, policy {policy_flops / 1e6:.2f}, "
          f"{s} discriminators x {k} candidates {discriminators / 1e6:.1f} MFLOP)")
    print(f"  measured {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
