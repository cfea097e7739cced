"""PNG figures of the seed-004 analysis (matplotlib, no screen needed)."""
from __future__ import annotations

import math
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")  # files only: CI and the GPU machine have no display
import matplotlib.pyplot as plt
import numpy as np

DPI = 120


class Curve(NamedTuple):
    label: str
    x: np.ndarray
    y: np.ndarray                      # the line (a mean)
    band: tuple | None = None          # (low, high) drawn shaded, e.g. the min and max over seeds


def plot_curves(path: str, curves: list[Curve], *, title: str, xlabel: str, ylabel: str,
                target: float | None = None) -> None:
    """Lines on log-log axes; `target` draws a dashed horizontal line."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for curve in curves:
        (line,) = ax.plot(curve.x, curve.y, marker=".", label=curve.label)
        if curve.band is not None:
            ax.fill_between(curve.x, *curve.band, color=line.get_color(), alpha=0.2, lw=0)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:g}")
    ax.set(xscale="log", yscale="log", title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", ncol=2 if len(curves) > 6 else 1)
    save(fig, path)


def plot_log_grid(path: str, images: list[list[np.ndarray]], *, row_labels: list[str],
                  col_labels: list[str], title: str, colorbar: str, floor: float) -> None:
    """A rows x cols grid of heatmaps of log10(value), one colour scale, values below
    `floor` shown at the floor (so exact zeros, such as masked weights, can be drawn)."""
    rows, cols = len(images), len(images[0])
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols + 1, 2.4 * rows + 0.6),
                             squeeze=False, constrained_layout=True)
    shown = [[np.log10(np.maximum(img, floor)) for img in row] for row in images]
    high = max(float(img.max()) for row in shown for img in row)
    for i, j in np.ndindex(rows, cols):
        ax = axes[i, j]
        mesh = ax.imshow(shown[i][j], vmin=np.log10(floor), vmax=high, cmap="viridis",
                         interpolation="nearest", aspect="auto")
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0:
            ax.set_title(col_labels[j], fontsize="small")
        if j == 0:
            ax.set_ylabel(row_labels[i], fontsize="small")
    fig.colorbar(mesh, ax=axes, shrink=0.8, label=f"log10 {colorbar}")
    fig.suptitle(title)
    save(fig, path)


def plot_spectra(path: str, spectra: np.ndarray, *, labels: list[str], title: str) -> None:
    """One row per head: its singular values over the largest, log10, as a heatmap."""
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(labels) + 1.5), constrained_layout=True)
    mesh = ax.imshow(np.log10(np.maximum(spectra, 1e-12)), aspect="auto", cmap="magma",
                     interpolation="nearest", extent=(0.5, spectra.shape[1] + 0.5, len(labels), 0),
                     vmin=max(-6.0, math.floor(np.log10(max(spectra.min(), 1e-12)))), vmax=0)
    ax.set_yticks(np.arange(len(labels)) + 0.5, labels, fontsize="small")
    ax.set(xlabel="singular value index", title=title)
    fig.colorbar(mesh, ax=ax, label="log10 (sigma_i / sigma_1)")
    save(fig, path)


def save(fig, path: str) -> None:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
