"""Markdown tables and figures of a dynamics model's diagnostics (``dynlearn model train`` / ``model eval``): one-step
errors, open-loop k-step errors, penalty calibration, the MOREC dynamics reward, and the fit's holdout curve.

The tables read the dicts of :mod:`dynlearn.models.diagnostics` (and
:func:`dynlearn.algos.morec.reward_diagnostics`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..models.fit_report import FitReport
from ._pyplot import pyplot, save_png


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.2e}"


def render_one_step(tables: dict[str, dict], *, title: str) -> str:
    """Markdown: per test set, normalised MSE per dimension (and the mean over the obs dims) of the ensemble, every
    member and the baselines."""
    lines = [f"## {title}", "", ("Normalised MSE per target dimension (divided by the training split's variance of the target; "
             "the constant-delta baseline is then about 1). `obs mean` averages the delta-obs dims."), ""]
    for name, t in tables.items():
        dims = t["dims"]
        lines += [f"### {name} ({t['rows']:,} rows)", "", "| predictor | obs mean | " + " | ".join(dims) + " |",
                  "|---|---|" + "---|" * len(dims)]
        rows = [("ensemble (elites' mean)", t["ensemble"])]
        rows += [(f"member {i}{' (elite)' if i in t['elites'] else ''}", m) for i, m in enumerate(t["members"])]
        rows += [("constant delta", t["constant_delta"]), ("linear least squares", t["linear"])]
        for label, v in rows:
            lines.append(f"| {label} | {_fmt(float(np.mean(v[:-1])))} | " + " | ".join(_fmt(x) for x in v) + " |")
        lines.append("")
    return "\n".join(lines)


def render_reward(tables: dict[str, dict]) -> str:
    """Markdown: the dynamics reward of real vs model transitions per test set."""
    lines = ["## Dynamics reward (MOREC): real transitions vs the model's", "",
             ("Mean dynamics reward of each test set's real transitions and of the model's sampled transitions from the same "
              "(s, a); AUC = P(real scores above model). Near 0.5 the reward cannot tell them apart; near 1 the model's "
              "transitions look unlike the data's there (do not trust long rollouts). `below 0.6`: share of model "
              "transitions MOREC's filter would truncate."), "",
             "| test set | rows | reward, real | reward, model | AUC real > model | model below 0.6 |", "|---|---|---|---|---|---|"]
    for name, t in tables.items():
        lines.append(f"| {name} | {t['rows']:,} | {_fmt(t['reward_data'])} | {_fmt(t['reward_model'])} | {_fmt(t['auc'])} | "
                     f"{t['low_fraction_model']:.1%} |")
    return "\n".join(lines)


def render_k_step(tables: dict[str, dict]) -> str:
    lines = ["## Open-loop k-step error", "", ("Normalised MSE of the observation after k steps of replaying recorded actions "
             "(mean over dims; divided by the training split's observation variance). `mean`: a random elite per window, its "
             "mean prediction; `sample`: the model's own sampling (random elite and noise every step)."), ""]
    for name, t in tables.items():
        if not t.get("windows"):
            lines += [f"### {name}: no windows", ""]
            continue
        lines += [f"### {name} ({t['windows']} windows)", "", "| k | windows with data | mean | sample |", "|---|---|---|---|"]
        for k in range(t["horizon"]):
            lines.append(f"| {k + 1} | {t['steps_with_data'][k]} | {_fmt(t['mean'][k])} | {_fmt(t['sample'][k])} |")
        lines.append("")
    return "\n".join(lines)


def render_calibration(table: dict) -> str:
    sets = table["sets"]
    names = table["penalties"]
    lines = ["## Penalty calibration", "", (f"Spearman rank correlation between each penalty (part `{table['part']}`) and the true "
             "normalised one-step error of the elites' mean, per test set; `pooled` ranks all sets' rows together."), "",
             "| penalty | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for p in names:
        lines.append(f"| {p} | " + " | ".join(_fmt(sets[s]["spearman"][p]) for s in sets) + " |")
    lines += ["", "Median penalty and median true error per set:", "", "| | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    lines.append("| true error | " + " | ".join(_fmt(sets[s]["median_error"]) for s in sets) + " |")
    for p in names:
        lines.append(f"| {p} | " + " | ".join(_fmt(sets[s]["median_penalty"][p]) for s in sets) + " |")
    return "\n".join(lines)


def fit_curve_figure(path: Path, report: FitReport, *, title: str) -> Path:
    """Holdout MSE of every member after every epoch (log scale); elites solid, others dashed."""
    plt = pyplot()
    history = np.asarray(report.history)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    epochs = np.arange(1, len(history) + 1)
    for i in range(history.shape[1]):
        ax.plot(epochs, history[:, i], "-" if i in report.elites else "--", label=f"member {i}")
    ax.set(title=title, xlabel="epoch", ylabel="holdout MSE (data units)", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return save_png(fig, plt, path)


def k_step_figure(path: Path, tables: dict[str, dict], *, title: str) -> Path:
    """k-step normalised MSE per test set: the elite's mean (solid) and sampled rollouts (dashed), log scale."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for i, (name, t) in enumerate(tables.items()):
        if not t.get("windows"):
            continue
        k = np.arange(1, t["horizon"] + 1)
        color = f"C{i}"
        ax.plot(k, t["mean"], "-", color=color, label=f"{name}: mean")
        ax.plot(k, t["sample"], "--", color=color, label=f"{name}: sample")
    ax.set(title=title, xlabel="k (steps)", ylabel="normalised MSE", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_png(fig, plt, path)
