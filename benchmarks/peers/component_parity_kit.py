#!/usr/bin/env python3
"""The OfflineRL-Kit side of ``benchmarks/component_parity.py``: the kit's own modules on the inputs dynlearn wrote.

Runs in the peer environment (see README.md in this folder), after ``component_parity.py prepare``:

    $PEER_VENV/bin/python benchmarks/peers/component_parity_kit.py --work runs/component_parity/hopper [--kit $OFFLINERL_KIT]

Reads ``WORK/inputs.npz`` (and ``WORK/dynlearn.npz`` for one cross-check), writes ``WORK/kit.npz``. The kit is imported
as ``offlinerl_kit.py`` does (``import_kit``: ``--kit`` or ``$OFFLINERL_KIT``, a stub ``gym``), and its helpers build
the pieces: ``load_model`` (``EnsembleDynamicsModel`` + ``StandardScaler`` + ``EnsembleDynamics`` from the fit's
``model.npz``) and ``build_agent`` (``MOPOPolicy`` with ``ActorProb``/``TanhDiagGaussian``, two ``Critic``, Adam, auto
alpha, as ``run_mopo.py``).

- Model: every member's mean and std of ``(delta obs, reward)`` (``model(scaler.transform(obs, act))``), the penalty
  from ``EnsembleDynamics.step`` (``uncertainty_mode="aleatoric"``; deterministic, whatever noise ``step`` draws),
  ``termination_fn_hopper`` on each member's mean next observation (the kit's, and dynlearn's, means) and on the
  elites' mean next observation.
- Rollouts: ``EnsembleDynamics.step`` on the branches still alive (as ``MOPOPolicy.rollout``), the given actions,
  NumPy's global RNG seeded with ``--seed``: ``info["raw_reward"]``, ``info["penalty"]``, the terminals.
- SAC: dynlearn's initial weights loaded into the policy's actor, critics and target critics, then ``policy.learn``
  once per update on the given batch (split into ``real`` and ``fake`` as the trainer does), with
  ``TanhNormalWrapper.rsample`` patched to return ``tanh(mu + sigma * eps)`` for the given noise (first call at the
  next observations, second at the observations). Run twice: as the kit is (``kit/...``), and with its tanh log-det
  ``log(1 - tanh(u)^2 + 1e-6)`` replaced by dynlearn's ``2 (log 2 - u - softplus(-2u))`` (``kit_exact/...``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def harness():
    """``benchmarks/peers/offlinerl_kit.py`` as a module."""
    spec = importlib.util.spec_from_file_location("offlinerl_kit_harness", HERE / "offlinerl_kit.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def model_part(dyn, obs, act, dl_mean, probes) -> dict:
    import torch

    with torch.no_grad():
        mean, logvar = dyn.model(dyn.scaler.transform(np.concatenate([obs, act], axis=-1)))
    mean, logvar = mean.numpy(), logvar.numpy()
    std = np.sqrt(np.exp(logvar))  # as EnsembleDynamics.step
    _, _, _, info = dyn.step(obs, act)  # penalty_coef != 0: info["penalty"] (deterministic)
    obs_dim = obs.shape[1]
    next_mean = obs[None] + mean[..., :obs_dim]
    term = np.stack([dyn.terminal_fn(obs, act, m)[:, 0] for m in next_mean])
    term_same = np.stack([dyn.terminal_fn(obs, act, obs + m[..., :obs_dim])[:, 0] for m in dl_mean])
    elites = dyn.model.elites.data.cpu().numpy()
    elite_next = next_mean[elites].mean(axis=0)
    return {"model/mean": mean, "model/std": std, "model/penalty": info["penalty"][:, 0], "model/terminal_members": term,
            "model/terminal_members_on_dynlearn_next_obs": term_same,
            "model/terminal_elite_mean": dyn.terminal_fn(obs, act, elite_next)[:, 0],
            "model/next_obs_elite_mean": elite_next.astype(np.float32), "model/elites": elites,
            "probe/terminal": dyn.terminal_fn(obs[:len(probes)], act[:len(probes)], probes)[:, 0]}


def rollout_part(dyn, start_obs, actions, seed: int) -> dict:
    np.random.seed(seed)
    h, b = actions.shape[:2]
    rew, pen = np.full((h, b), np.nan, np.float32), np.full((h, b), np.nan, np.float32)
    term, live = np.zeros((h, b), bool), np.zeros((h, b), bool)
    idx = np.arange(b)
    obs = start_obs
    for t in range(h):
        live[t, idx] = True
        next_obs, _, terminal, info = dyn.step(obs, actions[t, idx])
        rew[t, idx], pen[t, idx] = info["raw_reward"][:, 0], info["penalty"][:, 0]
        term[t, idx] = terminal[:, 0]
        keep = ~terminal[:, 0]
        idx, obs = idx[keep], next_obs[keep]
        if idx.size == 0:
            break
    return {"rollout/reward": rew, "rollout/penalty": pen, "rollout/terminal": term, "rollout/alive": live}


def load_weights(policy, inputs, prefix: str) -> None:
    import torch

    def state(name):
        start = f"{prefix}/{name}/"
        return {k[len(start):]: torch.as_tensor(np.asarray(inputs[k])) for k in inputs.files if k.startswith(start)}

    for name, module in (("actor", policy.actor), ("critic1", policy.critic1), ("critic2", policy.critic2),
                         ("critic1_old", policy.critic1_old), ("critic2_old", policy.critic2_old)):
        module.load_state_dict(state(name), strict=True)


def sac_part(kit, h, inputs, meta, exact_logdet: bool, tag: str) -> dict:
    import torch
    from torch.distributions import Normal

    wrapper = kit["TanhDiagGaussian"].forward.__globals__["TanhNormalWrapper"]
    hp = {**h.COMMON, **h.METHOD["mopo"], **h.PRESETS["mopo"]["hopper-medium"]}
    hp.update(actor_lr=meta["actor_lr"], critic_lr=meta["critic_lr"], alpha_lr=meta["alpha_lr"], gamma=meta["gamma"], tau=meta["tau"])
    torch.manual_seed(0)
    policy, optims, _, log_alpha = h.build_agent(kit, "mopo", hp, meta["obs_dim"], meta["act_dim"], 1.0, None, 1000)
    load_weights(policy, inputs, "sac/init")
    # targets copy the critics (SACPolicy deep-copies at construction; the copies got the same weights above)
    assert torch.equal(next(policy.critic1_old.parameters()), next(policy.critic1.parameters()))

    noise: list = []
    log_probs: list = []
    orig_rsample, orig_log_prob = wrapper.rsample, wrapper.log_prob

    def rsample(self):
        raw = self.loc + self.scale * noise.pop(0)
        return self._max_action * torch.tanh(raw), raw

    def log_prob_exact(self, action, raw_action=None):  # dynlearn's tanh log-det (max_action 1)
        lp = Normal.log_prob(self, raw_action).sum(-1, keepdim=True)
        return lp - (2.0 * (math.log(2.0) - raw_action - torch.nn.functional.softplus(-2.0 * raw_action))).sum(-1, keepdim=True)

    orig_actforward = policy.actforward

    def actforward(obs, deterministic=False):
        a, lp = orig_actforward(obs, deterministic)
        log_probs.append(lp.detach())
        return a, lp

    wrapper.rsample = rsample
    if exact_logdet:
        wrapper.log_prob = log_prob_exact
    policy.actforward = actforward
    out = {}
    try:
        for u in range(meta["updates"]):
            p = f"sac/u{u}"
            noise[:] = [torch.as_tensor(inputs[f"{p}/next_eps"]), torch.as_tensor(inputs[f"{p}/eps"])]
            batch = {k: torch.as_tensor(inputs[f"{p}/{k}"])
                     for k in ("observations", "actions", "next_observations", "rewards", "terminals")}
            n_real = int(hp["batch_size"] * hp["real_ratio"])
            log_probs.clear()
            res = policy.learn({"real": {k: v[:n_real] for k, v in batch.items()}, "fake": {k: v[n_real:] for k, v in batch.items()}})
            assert not noise and len(log_probs) == 2, "learn() drew samples other than the two expected"
            for k, v in res.items():
                out[f"{tag}/u{u}/{k}"] = np.float64(v)
            out[f"{tag}/u{u}/entropy"] = np.float64(-log_probs[1].mean().item())
            for name, module in (("actor", policy.actor), ("critic1", policy.critic1), ("critic2", policy.critic2),
                                 ("critic1_old", policy.critic1_old), ("critic2_old", policy.critic2_old)):
                for k, v in module.state_dict().items():
                    out[f"{tag}/u{u}/param/{name}/{k}"] = v.detach().numpy().copy()
            out[f"{tag}/u{u}/param/log_alpha"] = log_alpha.detach().numpy().copy()
            for name, module, opt in (("actor", policy.actor, optims["actor"]), ("critic1", policy.critic1, optims["critic1"]),
                                      ("critic2", policy.critic2, optims["critic2"])):
                for k, prm in module.named_parameters():
                    out[f"{tag}/u{u}/adam_m/{name}/{k}"] = opt.state[prm]["exp_avg"].numpy().copy()
            out[f"{tag}/u{u}/adam_m/log_alpha"] = optims["alpha"].state[log_alpha]["exp_avg"].numpy().copy()
    finally:
        wrapper.rsample, wrapper.log_prob = orig_rsample, orig_log_prob
    return out


def mobile_part(kit, h, dyn, inputs, meta) -> dict:
    """``MOBILEPolicy.compute_lcb`` on the given rows with dynlearn's initial SAC networks and noise: ``torch.randn_like``
    inside ``EnsembleDynamics.sample_next_obss`` returns the given next-state noise (sample by sample), ``rsample`` the
    given policy noise."""
    import torch

    wrapper = kit["TanhDiagGaussian"].forward.__globals__["TanhNormalWrapper"]
    hp = {**h.COMMON, **h.METHOD["mobile"], **h.PRESETS["mobile"]["hopper-medium"]}
    torch.manual_seed(0)
    policy, _, _, _ = h.build_agent(kit, "mobile", hp, meta["obs_dim"], meta["act_dim"], 1.0, dyn, 1000)
    policy.actor.load_state_dict({k[len("sac/init/actor/"):]: torch.as_tensor(inputs[k]) for k in inputs.files
                                  if k.startswith("sac/init/actor/")})
    for i, critic in enumerate(policy.critics_old):
        critic.load_state_dict({k[len(f"sac/init/critic{i + 1}_old/"):]: torch.as_tensor(inputs[k]) for k in inputs.files
                                if k.startswith(f"sac/init/critic{i + 1}_old/")})
    eps_obs, eps_act = inputs["mobile/eps_obs"], inputs["mobile/eps_act"]  # [M, E, n, obs], [M, E, n, act]
    state_noise = [torch.as_tensor(np.concatenate([x, np.zeros((*x.shape[:-1], 1), np.float32)], axis=-1)) for x in eps_obs]
    act_noise = [torch.as_tensor(eps_act.reshape(-1, eps_act.shape[-1]))]
    orig_rsample, orig_randn_like = wrapper.rsample, torch.randn_like

    def rsample(self):
        raw = self.loc + self.scale * act_noise.pop(0)
        return self._max_action * torch.tanh(raw), raw

    def randn_like(t, *a, **kw):
        x = state_noise.pop(0)
        assert x.shape == t.shape, (x.shape, t.shape)
        return x

    wrapper.rsample, torch.randn_like = rsample, randn_like
    try:
        with torch.no_grad():
            penalty = policy.compute_lcb(torch.as_tensor(inputs["mobile/obs"]), torch.as_tensor(inputs["mobile/act"]))
    finally:
        wrapper.rsample, torch.randn_like = orig_rsample, orig_randn_like
    assert not state_noise and not act_noise
    return {"mobile/penalty": penalty.numpy()[:, 0]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="the folder component_parity.py prepare wrote")
    p.add_argument("--kit", help="OfflineRL-Kit checkout (default: $OFFLINERL_KIT)")
    p.add_argument("--kit-fit", default=None, help="fit folder (default: the one prepare used)")
    p.add_argument("--seed", type=int, default=0, help="NumPy seed of the kit's rollouts")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    h = harness()
    kit = h.import_kit(args.kit)
    work = Path(args.work)
    inputs = np.load(work / "inputs.npz")
    meta = json.loads(str(inputs["meta_json"]))
    dl_mean = np.load(work / "dynlearn.npz")["model/mean"]
    _, prefix = h.task_of(meta["dataset"])
    dyn = h.load_model(kit, Path(args.kit_fit or meta["kit_fit"]), meta["obs_dim"], meta["act_dim"], prefix, penalty_coef=1.0,
                       uncertainty_mode="aleatoric")
    out = model_part(dyn, inputs["obs"], inputs["act"], dl_mean, inputs["probe_next_obs"])
    out.update(rollout_part(dyn, inputs["start_obs"], inputs["actions"], args.seed))
    out.update(mobile_part(kit, h, dyn, inputs, meta))
    out.update(sac_part(kit, h, inputs, meta, exact_logdet=False, tag="kit"))
    out.update(sac_part(kit, h, inputs, meta, exact_logdet=True, tag="kit_exact"))
    kit_meta = {"commit": kit["commit"], "torch": torch.__version__, "gym": kit["gym"], "numpy": np.__version__,
                "python": sys.version.split()[0], "rollout_seed": args.seed}
    np.savez(work / "kit.npz", meta_json=np.array(json.dumps(kit_meta)), **out)
    print(f"{work}/kit.npz: model on {len(inputs['obs'])} rows, rollouts from {len(inputs['start_obs'])} starts, "
          f"{meta['updates']} SAC updates (kit as is and with dynlearn's tanh log-det)")


if __name__ == "__main__":
    main()
