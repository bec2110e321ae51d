"""Report figures (matplotlib, Agg backend, PNG): success by task and level with 95% Wilson error bars, pad force
profiles over time against the force limit, and taxel heatmaps over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LEVEL_COLORS = {"nominal": "#3b6fb6", "shifted": "#e08a1e", "held_out": "#4a9c5d"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # headless; must precede pyplot's import
    import matplotlib.pyplot as plt

    return plt


def success_plot(report: dict[str, Any], path: Path) -> Path:
    """Grouped bars: one group per task (and overall), one bar per level, Wilson 95% CI error bars."""
    plt = _plt()
    cells = report["per_cell"]
    tasks = list(dict.fromkeys(c["task"] for c in cells))
    levels = list(dict.fromkeys(c["level"] for c in cells))
    groups = [*tasks, "overall"]
    width = 0.8 / max(1, len(levels))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, len(levels)) ** 0.5 + 2), 4.0))
    for j, level in enumerate(levels):
        stats = [next((c for c in cells if c["task"] == t and c["level"] == level), None) for t in tasks]
        stats.append(report["per_level"].get(level))
        x = np.arange(len(groups)) + (j - (len(levels) - 1) / 2) * width
        rate = np.array([s["success_rate"] if s else np.nan for s in stats], float)
        lo = np.array([s["ci95"][0] if s else np.nan for s in stats], float)
        hi = np.array([s["ci95"][1] if s else np.nan for s in stats], float)
        ax.bar(x, rate, width, yerr=np.clip([rate - lo, hi - rate], 0, None), capsize=3, label=level,
               color=LEVEL_COLORS.get(level), error_kw={"elinewidth": 1})
    ax.set_xticks(np.arange(len(groups)), groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (95% Wilson CI)")
    ax.set_title(f"{report['suite']['name']}: {report['policy']['name']}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: bars reach 1.0
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def force_plot(traces: dict[tuple[str, str, int], dict[str, np.ndarray]], control_dt: dict[str, float],
               limit: float, path: Path) -> Path:
    """One panel per task: the largest pad normal force per control step of each traced episode, by level."""
    plt = _plt()
    tasks = list(dict.fromkeys(t for t, _, _ in traces))
    cols = min(3, max(1, len(tasks)))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        seen: set[str] = set()
        for (t, level, _ep), tr in sorted(traces.items()):
            if t != task or tr["force"].size == 0:
                continue
            f = np.nan_to_num(tr["force"]).max(axis=1)
            time_s = np.arange(1, len(f) + 1) * control_dt[task]
            ax.plot(time_s, f, color=LEVEL_COLORS.get(level), lw=1, alpha=0.8,
                    label=level if level not in seen else None)
            seen.add(level)
        ax.axhline(limit, color="#c0392b", ls="--", lw=1, label=f"limit {limit:g} N")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("time (s)", fontsize=8)
        ax.set_ylabel("max pad normal (N)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    return _save(fig, path)


def touch_heatmap(taxels: np.ndarray, pads: list[str], control_dt: float, vmax: float, title: str,
                  path: Path) -> Path:
    """(T, pads, r, c) taxel normal forces → image of taxels (grouped by pad) over time."""
    plt = _plt()
    steps, npads = taxels.shape[:2]
    per_pad = int(np.prod(taxels.shape[2:]))
    img = np.nan_to_num(taxels.reshape(steps, npads * per_pad).T)
    fig, ax = plt.subplots(figsize=(7.0, 2.8))
    im = ax.imshow(img, aspect="auto", interpolation="nearest", cmap="inferno", vmin=0, vmax=vmax,
                   extent=(0, steps * control_dt, npads * per_pad, 0))
    for j in range(1, npads):
        ax.axhline(j * per_pad, color="white", lw=0.6)
    ax.set_yticks([(j + 0.5) * per_pad for j in range(npads)], pads, fontsize=7)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="taxel normal (N)")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
