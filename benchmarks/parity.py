"""End-to-end parity: dynlearn's MOPO and MOBILE beside OfflineRL-Kit's, on the same data at the same budget.

    python benchmarks/parity.py run --method mopo --dataset halfcheetah-medium-v5 --seed 0      # one seed of a cell
    python benchmarks/peers/offlinerl_kit.py mopo ... --out runs/parity/kit-mopo-halfcheetah-medium-v5-100k/seed0
    python benchmarks/parity.py report --figures benchmarks/figures/parity                     # the table, both libraries

dynlearn runs with the reference's settings, everything else being the dataset's paper preset (MOPO halfcheetah-medium:
h 5, lambda 0.5; hopper-medium: h 5, lambda 5; MOBILE: its code's per-dataset h and beta): the ensemble fitted by
OfflineRL-Kit's rule (``--model-holdout transitions --model-max-epochs 0``; MOBILE: at most 30 epochs, as its script),
the policy's learning rate cosine-annealed over the run (``--actor-lr-schedule cosine``) and, for MOBILE, the critic
target without the entropy term (its script's ``deterministic_backup``); ``--variant`` adds a change on top (``normalized-fit``:
elites and early stopping on the variance-normalised holdout error; ``constant-lr``: no annealing), ``--control``
runs a control instead of a method (``real-only``: MOPO with ``real_ratio = 1``, plain offline SAC on the data;
``oracle-h5`` / ``oracle-h100``: MBPO's loop, no penalty, on the true simulator). Each seed trains in its own process
(``--seed``), resumes where it stopped, and the run folder's ``results.json`` is written by the call that finds every
seed finished. The reference's seeds are run by ``benchmarks/peers/offlinerl_kit.py``, one folder per seed, under
``runs/parity/kit-METHOD-DATASET-100k/seedN``.

``report`` reads every cell it finds under ``--runs``: the final policies' normalized scores (mean ± std over seeds, and
each seed), training wall time per seed, and per cell the learning curves of both libraries on one figure. With
``--save`` it writes each finished cell's numbers to ``benchmarks/results/parity/`` so the table can be rebuilt.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

import numpy as np

import dynlearn as dl
from dynlearn.algos import method, train_model_based
from dynlearn.checkpoint import latest_dir

from _runs import seed_curves  # benchmarks/_runs.py

REFERENCE = {"model_holdout": "transitions", "model_max_epochs": None, "actor_lr_schedule": "cosine"}
# the reference's own scripts: run_mopo.py fits until early stopping, run_mobile.py caps the fit at 30 epochs
REFERENCE_BY_METHOD = {"mopo": {}, "mobile": {"model_max_epochs": 30}}
VARIANTS = {"": {}, "normalized-fit": {"model_select_by": "normalized"}, "constant-lr": {"actor_lr_schedule": "constant"}}
CONTROLS = {
    "real-only": {"method": "mopo", "real_ratio": 1.0},
    "oracle-h5": {"method": "mbpo", "model": "oracle", "horizon": 5, "model_holdout": "episodes", "model_max_epochs": 60},
    "oracle-h100": {"method": "mbpo", "model": "oracle", "horizon": 100, "rollout_batch": 2_500, "model_holdout": "episodes",
                    "model_max_epochs": 60},
}
RESULTS = Path(__file__).parent / "results" / "parity"


def label(method: str, dataset: str, steps: int, variant: str = "") -> str:
    return f"{method}{'-' + variant if variant else ''}-{dataset}-{steps // 1000}k"


def run(args) -> None:
    data = dl.data.load(args.dataset)
    task = dl.tasks.get(data.task)
    fields = {"method": args.method, **REFERENCE, **REFERENCE_BY_METHOD[args.method], **VARIANTS[args.variant]}
    name = args.method
    if args.control:
        fields |= CONTROLS[args.control]
        name = args.control
    settings = {k: v for k, v in fields.items() if k != "method"}
    cfg = method(fields["method"]).for_dataset(data.name, **settings, steps=args.steps, seeds=args.seeds, eval_every=args.eval_every)
    out = args.runs / f"dynlearn-{label(name, args.dataset, args.steps, args.variant)}"
    resume = (out / "config.json").is_file()
    agent_config = None
    if cfg.name == "mobile":  # the reference's run_mobile.py backs up without the entropy term (deterministic_backup)
        agent_config = dataclasses.replace(cfg.agent()[1], backup_entropy=False)
    train_model_based(data, task, cfg, out, resume=resume, only_seed=args.seed, until=args.until, agent_config=agent_config)


def _dynlearn_cell(folder: Path) -> dict | None:
    seeds, walls, curves = {}, {}, seed_curves(folder)
    for seed_dir in sorted(folder.glob("seed_*")):
        final = seed_dir / "final.json"
        if final.is_file():
            seeds[int(seed_dir.name.split("_")[1])] = json.loads(final.read_text())["normalized"]
            saved = latest_dir(seed_dir / "checkpoint")
            if saved is not None and (saved / "progress.json").is_file():
                walls[int(seed_dir.name.split("_")[1])] = json.loads((saved / "progress.json").read_text()).get("train_s")
    return {"seeds": seeds, "train_s": walls, "curve": {int(k): v for k, v in curves.items()}} if seeds or curves else None


KIT_EVAL = re.compile(r"\bstep\s+([\d,]+)\s+return\s+\S+\s+±\s+\S+\s+normalized\s+(-?[\d.]+)")
"""An evaluation line of the peer harness's log.txt."""


def _kit_cell(folder: Path) -> dict | None:
    seeds, walls, curve = {}, {}, {}
    for seed_dir in sorted(folder.glob("seed*")):
        results = seed_dir / "results.json"
        if not results.is_file():  # an unfinished seed: its evaluations so far, from the harness's log
            for m in KIT_EVAL.finditer((seed_dir / "log.txt").read_text() if (seed_dir / "log.txt").is_file() else ""):
                curve.setdefault(int(m[1].replace(",", "")), []).append(float(m[2]))
            continue
        r = json.loads(results.read_text())
        seed = int(r["scores"]["per_seed"][0]["seed"])
        seeds[seed] = r["scores"]["per_seed"][0]["normalized"]
        walls[seed] = r.get("wall_time_s")
        for e in r.get("evaluations", []):
            curve.setdefault(int(e["step"]), []).append(e["normalized"])
    return {"seeds": seeds, "train_s": walls, "curve": dict(sorted(curve.items()))} if seeds or curve else None


def _summary(cell: dict | None) -> str:
    if not cell or not cell["seeds"]:
        return "not run"
    v = np.array(list(cell["seeds"].values()))
    each = ", ".join(f"{x:.1f}" for x in v)
    return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f} ({each})"


def _wall(cell: dict | None) -> str:
    if not cell or not [w for w in cell["train_s"].values() if w]:
        return "—"
    return f"{np.mean([w for w in cell['train_s'].values() if w]) / 60:.0f} min"


def report(args) -> None:
    cells = sorted({p.name.split("-", 1)[1] for p in args.runs.glob("*-*")
                    if p.name.startswith(("dynlearn-", "kit-")) and not p.name.startswith("kit-fit-")})
    print("| cell | OfflineRL-Kit | dynlearn | wall time per seed (Kit / dynlearn) |")
    print("|---|---|---|---|")
    for name in cells:
        kit, ours = _kit_cell(args.runs / f"kit-{name}"), _dynlearn_cell(args.runs / f"dynlearn-{name}")
        print(f"| {name} | {_summary(kit)} | {_summary(ours)} | {_wall(kit)} / {_wall(ours)} |")
        if args.save:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"{name}.json").write_text(json.dumps({"cell": name, "OfflineRL-Kit": kit, "dynlearn": ours}, indent=1))
        if args.figures is not None:
            from dynlearn.report import learning_curve

            curves = {lib: [(s, float(np.mean(v)), float(np.std(v))) for s, v in c["curve"].items()]
                      for lib, c in (("OfflineRL-Kit", kit), ("dynlearn", ours)) if c and c["curve"]}
            if curves:
                learning_curve(Path(f"{args.figures}_{name}.png"), curves, title=f"{name}: mean ± std over seeds",
                               ylabel="normalized score")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train one seed of a dynlearn cell")
    r.add_argument("--method", choices=("mopo", "mobile"), default="mopo")
    r.add_argument("--dataset", default="halfcheetah-medium-v5")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--seeds", type=int, default=3)
    r.add_argument("--steps", type=int, default=100_000)
    r.add_argument("--until", type=int, default=None, help="stop at this step (checkpointed; run again to go on)")
    r.add_argument("--eval-every", type=int, default=10_000)
    r.add_argument("--variant", choices=list(VARIANTS), default="")
    r.add_argument("--control", choices=list(CONTROLS), default=None)
    r.add_argument("--runs", type=Path, default=Path("runs/parity"))
    p = sub.add_parser("report", help="the table of every cell found")
    p.add_argument("--runs", type=Path, default=Path("runs/parity"))
    p.add_argument("--figures", type=Path, default=None, help="learning-curve figures PREFIX_CELL.png")
    p.add_argument("--save", action="store_true", help="write each cell's numbers to benchmarks/results/parity/")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
