"""Figures of a ``dsr fit`` / ``dsr eval`` run: the true vs generated attractor, their power spectra, the training loss,
and for an AL-RNN its linear subregions and symbolic sequence (Brenner et al., NeurIPS 2024, arXiv 2410.14240)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..dsr.analysis import subregion_stats
from ._pyplot import pyplot


def plot_attractor(path: Path, x_true: np.ndarray, x_gen: np.ndarray, *, names: tuple[str, ...], title: str, points: int = 20_000) -> Path:
    """True vs generated trajectory: a 3-D view of the first three channels (N >= 3) and the 2-D projections."""
    plt = pyplot()
    xt, xg = np.asarray(x_true)[:points], np.asarray(x_gen)[:points]
    n = xt.shape[1]
    pairs = [(0, 1), (0, 2), (1, 2)][: 3 if n >= 3 else 1]
    cols = len(pairs) + (2 if n >= 3 else 0)
    fig = plt.figure(figsize=(3.6 * cols, 3.6))
    col = 1
    if n >= 3:
        for label, x, color in (("true", xt, "tab:blue"), ("generated", xg, "tab:red")):
            ax = fig.add_subplot(1, cols, col, projection="3d")
            ax.plot(x[:, 0], x[:, 1], x[:, 2], lw=0.3, color=color)
            ax.set_title(label)
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
            ax.set_zlabel(names[2])
            col += 1
    for i, j in pairs:
        ax = fig.add_subplot(1, cols, col)
        ax.plot(xt[:, i], xt[:, j], lw=0.3, color="tab:blue", label="true")
        ax.plot(xg[:, i], xg[:, j], lw=0.3, color="tab:red", alpha=0.7, label="generated")
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
        col += 1
    fig.axes[-1].legend(loc="upper right", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _smoothed_spectrum(x: np.ndarray, sigma: float = 20.0) -> np.ndarray:
    """Per channel: z-score, |rfft|^2, Gaussian smoothing, normalised to sum 1 (the D_H spectra, for plotting)."""
    z = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0, ddof=1), 1e-12)
    ps = np.abs(np.fft.rfft(z, axis=0)) ** 2
    radius = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(ps, ((radius, radius), (0, 0)), mode="symmetric")
    smooth = np.stack([np.convolve(padded[:, c], k, mode="valid") for c in range(ps.shape[1])], axis=1)
    return smooth / np.maximum(smooth.sum(axis=0, keepdims=True), 1e-300)  # a constant channel plots as zeros


def plot_power_spectra(path: Path, x_true: np.ndarray, x_gen: np.ndarray, dt: float, *, names: tuple[str, ...], title: str,
                       max_channels: int = 5) -> Path:
    """Smoothed, normalised power spectra of the true and generated series, one panel per channel (the first few)."""
    plt = pyplot()
    n = min(x_true.shape[1], max_channels)
    st, sg = _smoothed_spectrum(np.asarray(x_true, np.float64)[:, :n]), _smoothed_spectrum(np.asarray(x_gen, np.float64)[:, :n])
    freq = np.fft.rfftfreq(len(x_true), d=dt)
    keep = max(10, int(np.searchsorted(np.cumsum(st.mean(axis=1)), 0.995)) + 1)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.0), squeeze=False)
    for c, ax in enumerate(axes[0]):
        ax.semilogy(freq[:keep], st[:keep, c], color="tab:blue", label="true")
        ax.semilogy(freq[:keep], np.maximum(sg[:keep, c], 1e-12), color="tab:red", label="generated")
        ax.set_title(names[c], fontsize=9)
        ax.set_xlabel("frequency (1 / time unit)")
    axes[0][0].set_ylabel("normalised power")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_occupancy(path: Path, z_gen: np.ndarray, x_gen: np.ndarray, model, *, title: str, steps: int = 3000,
                   max_bars: int = 30) -> Path:
    """AL-RNN subregion analysis: occupancy of the linear subregions, the symbolic sequence over time, and the generated
    attractor coloured by subregion."""
    plt = pyplot()
    stats = subregion_stats(z_gen, model)
    shown = stats.regions[:max_bars]  # the most visited first
    labels = ["".join(map(str, stats.bits(int(r)))) for r in shown]
    colours = plt.get_cmap("tab10")
    colour_of = {int(r): colours(i % 10) for i, r in enumerate(shown)}
    other = (0.6, 0.6, 0.6, 1.0)  # regions beyond the bars
    fig = plt.figure(figsize=(13, 3.8))
    ax = fig.add_subplot(1, 3, 1)
    ax.bar(range(len(labels)), stats.occupancy[:max_bars], color=[colour_of[int(r)] for r in shown])
    ax.set_xticks(range(len(labels)), labels if stats.pwl_units <= 8 else [""] * len(labels), rotation=90 if len(labels) > 8 else 0,
                  fontsize=7)
    ax.set_ylabel("share of steps")
    more = f" (the {len(shown)} most visited shown)" if stats.n_regions > len(shown) else ""
    ax.set_title(f"{stats.n_regions:,} of {2 ** stats.pwl_units:,} subregions visited{more}", fontsize=9)
    ax = fig.add_subplot(1, 3, 2)
    ids = stats.ids[:steps]
    pos = {int(r): i for i, r in enumerate(stats.regions)}
    ax.plot(np.arange(len(ids)), [pos[int(i)] for i in ids], lw=0.6, color="k")
    if stats.n_regions <= max_bars:
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
    else:
        ax.set_ylabel("subregion rank (most visited = 0)")
    ax.set_xlabel("step")
    ax.set_title(f"symbolic sequence (first {len(ids)} steps, {stats.n_crossings} crossings in all)", fontsize=9)
    n = x_gen.shape[1]
    pts = slice(0, min(len(x_gen), 20_000))
    c = [colour_of.get(int(i), other) for i in stats.ids[pts]]
    if n >= 3:
        ax = fig.add_subplot(1, 3, 3, projection="3d")
        ax.scatter(x_gen[pts, 0], x_gen[pts, 1], x_gen[pts, 2], s=0.2, c=c)
    else:
        ax = fig.add_subplot(1, 3, 3)
        ax.scatter(x_gen[pts, 0], x_gen[pts, min(1, n - 1)], s=0.2, c=c)
    ax.set_title("generated attractor by subregion", fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_loss(path: Path, losses: np.ndarray, *, title: str) -> Path:
    """The training loss per iteration (moving average over 1/200 of the run), log scale."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    window = max(1, len(losses) // 200)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.semilogy(np.arange(len(smooth)) + window, smooth)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training MSE")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_figures(folder: Path, x_test, x_gen, z_gen, model, dt: float, names, title: str) -> list[str]:
    """The figures of one evaluation in ``folder``: ``attractor.png``, ``power_spectra.png`` and, with latent states of
    an AL-RNN (``z_gen``), ``occupancy.png``; nothing when the free run diverged (``x_gen`` None). Returns the file names."""
    written = []
    if x_gen is None:
        return written
    written.append(plot_attractor(folder / "attractor.png", x_test, x_gen, names=names, title=title).name)
    written.append(plot_power_spectra(folder / "power_spectra.png", x_test, x_gen, dt, names=names, title=title).name)
    if z_gen is not None:
        written.append(plot_occupancy(folder / "occupancy.png", z_gen, x_gen, model, title=title).name)
    return written
