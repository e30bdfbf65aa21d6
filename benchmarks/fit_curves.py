"""Holdout curves of two ensemble fits on the same rows: dynlearn's against OfflineRL-Kit's, epoch by epoch.

    python benchmarks/fit_curves.py --dataset halfcheetah-medium-v5 --dynlearn MODEL_ENTRY \
        --kit runs/parity/kit-fit-halfcheetah-medium-v5 --out benchmarks/results/model_fit_parity/halfcheetah-medium-v5-curves.json

The number compared is the kit's logged ``holdout``: the mean holdout MSE (raw units) of the 5 best members at each
epoch. dynlearn's comes from the fit's per-member history (``fit_report.json`` of a cache entry or a ``dynlearn model
train`` run); the kit's from its fit folder's ``log.txt`` (``benchmarks/peers/offlinerl_kit.py fit``, which writes it
whether the fit finished or was stopped). Both fits must hold out the same rows (``model_fit_parity.py --write-split``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

KIT_LINE = re.compile(r"fit epoch\s+(\d+)\s+train\s+\S+\s+holdout\s+([0-9.eE+-]+)")


def dynlearn_curve(folder: Path, best: int) -> tuple[list[float], dict]:
    report = json.loads((folder / "fit_report.json").read_text())
    history = np.asarray(report["history"], np.float64)  # [epochs, members]
    return np.sort(history, axis=1)[:, :best].mean(axis=1).round(5).tolist(), report


def kit_curve(folder: Path) -> list[float]:
    by_epoch = {}
    for line in (folder / "log.txt").read_text().splitlines():
        m = KIT_LINE.search(line)
        if m:
            by_epoch[int(m[1])] = float(m[2])  # a resumed fit logs an epoch again: the last one counts
    return [by_epoch[e] for e in range(1, max(by_epoch, default=0) + 1) if e in by_epoch]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--dynlearn", type=Path, required=True, help="folder with the fit's fit_report.json")
    parser.add_argument("--kit", type=Path, required=True, help="the peer harness's fit folder (log.txt)")
    parser.add_argument("--best", type=int, default=5, help="members averaged (the kit logs its 5 best)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    ours, report = dynlearn_curve(args.dynlearn, args.best)
    kit = kit_curve(args.kit)
    shared = min(len(ours), len(kit))
    print(f"{args.dataset}: holdout MSE of the {args.best} best members; dynlearn {len(ours)} epochs "
          f"({'stopped early' if report['stopped_early'] else 'cap'}), OfflineRL-Kit {len(kit)} epochs logged")
    print("| epoch | OfflineRL-Kit | dynlearn | dynlearn / kit |\n|---|---|---|---|")
    for e in sorted({1, 2, 3, 5, 8, 10, shared} & set(range(1, shared + 1))):
        print(f"| {e} | {kit[e - 1]:.4f} | {ours[e - 1]:.4f} | {ours[e - 1] / kit[e - 1]:.3f} |")
    ratio = np.asarray(ours[:shared]) / np.asarray(kit[:shared])
    print(f"epochs 1-{shared}: dynlearn below the kit at {int((ratio < 1).sum())} of {shared}; ratio {ratio.min():.3f}-{ratio.max():.3f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "dataset": args.dataset,
            "what": f"holdout MSE (raw units) of the {args.best} best members at each epoch, on the same training and random "
                    "holdout rows (model_fit_parity.py --write-split); one fit each, seed 0",
            "curves": {"OfflineRL-Kit": kit, "dynlearn": ours},
            "dynlearn_fit": {k: report[k] for k in ("epochs", "stopped_early", "train_size", "holdout_size", "holdout_mode",
                                                     "wall_s", "select_by")},
        }, indent=1))


if __name__ == "__main__":
    main()
