"""Tidy table, statistics and figures of a localisation run (seed 002)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.experiments.localize.experiment import SeedRun
from harness.experiments.localize.stats import correlate, fork_differences, partial, pixel_map, relative, spread

KINDS = {"kernel": "weight", "bias": "bias"}
COLUMNS = ["seed", "parameter", "kind", "layer", "input", "unit", "a", "b", "r", "c", "d", "s", "q"]
SEED_002 = {"weights": {"r2": 0.28}, "biases": {"r2": 0.17, "p": "< 0.0001"}}


def tidy(run: SeedRun, half: str, seed: int) -> pd.DataFrame:
    """One row per parameter: its ids, tallies, fork differences and the two ratios.

    Columns: ``seed``, ``parameter`` (``hidden/kernel``, ...), ``kind`` (weight
    or bias), ``layer`` (1 hidden, 2 output), ``input`` (kernel row; empty for
    biases), ``unit`` (kernel column or bias index), the tallies ``a``, ``b``
    and ``r = a / (a + b)`` of ``half``, the fork differences ``c``, ``d`` and
    ``s = c / (c + d)``; r and s are empty where 0/0; ``q`` the input-statistics baseline
    (``experiment.input_baseline``).
    """
    c, d = fork_differences(list(run.forks.values()))
    frames = []
    for k, name in enumerate(run.names):
        a, b = run.tallies[half][k]
        kind = KINDS[name.rsplit("/", 1)[-1].split(":")[0]]
        grid = np.indices(a.shape).reshape(a.ndim, -1)
        frames.append(pd.DataFrame(dict(
            seed=seed, parameter=name, kind=kind, layer=k // 2 + 1,
            input=pd.array(grid[0] if kind == "weight" else [pd.NA] * a.size, dtype="Int64"), unit=grid[-1],
            a=a.ravel(), b=b.ravel(), r=relative(a, b).ravel(), c=c[k].ravel(), d=d[k].ravel(),
            s=relative(c[k], d[k]).ravel(), q=np.ravel(run.baseline[k]))))
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def seed_stats(frame: pd.DataFrame, run: SeedRun) -> dict:
    """Correlations of s on r over weights and over biases, by parameter, and for each tallied half."""
    out = {group: correlate(rows["r"], rows["s"]) for group, rows in _by_kind(frame)}
    out["baseline"] = {group: partial(rows["r"], rows["s"], rows["q"]) for group, rows in _by_kind(frame)}
    out["by_parameter"] = {name: correlate(rows["r"], rows["s"]) for name, rows in frame.groupby("parameter", sort=False)}
    out["undefined"] = {col: {group: int(rows[col].isna().sum()) for group, rows in _by_kind(frame)} for col in "rs"}
    out["by_half"] = {}
    for half, tallies in run.tallies.items():
        r = np.concatenate([relative(a, b).ravel() for a, b in tallies])
        out["by_half"][half] = {group: correlate(r[rows.index], rows["s"])["r2"] for group, rows in _by_kind(frame)}
    return out


def _by_kind(frame: pd.DataFrame):
    return [("weights", frame[frame["kind"] == "weight"]), ("biases", frame[frame["kind"] == "bias"])]


def summary(per_seed: list[dict]) -> dict:
    """Spread over seeds of R², Pearson r and Spearman rho, and of the baseline's R² and the partial correlation."""
    out = {group: {stat: spread([s["stats"][group][stat] for s in per_seed])
                   for stat in ("r2", "pearson_r", "spearman_rho")} for group in ("weights", "biases")}
    for group in out:
        out[group].update({stat: spread([s["stats"]["baseline"][group][stat] for s in per_seed])
                           for stat in ("baseline_r2", "partial_r")})
    return out


def pixels(frame: pd.DataFrame, image: tuple[int, int] | None) -> np.ndarray | None:
    """The per-input correlation map of the first layer's weights, shaped like the image (None if not an image)."""
    rows = frame[(frame["kind"] == "weight") & (frame["layer"] == 1)]
    n_in = int(rows["input"].max()) + 1
    values = pixel_map(rows["r"].to_numpy().reshape(n_in, -1), rows["s"].to_numpy().reshape(n_in, -1))
    return values.reshape(image) if image and image[0] * image[1] == n_in else None


def figures(frame: pd.DataFrame, stats: dict, grid: np.ndarray | None, folder, seed: int, title: str) -> list[str]:
    """Scatter of s on r (weights, biases; small markers) and the per-pixel correlation map; return the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), constrained_layout=True)
    for ax, (group, rows) in zip(axes, _by_kind(frame)):
        for layer, part in rows.groupby("layer"):
            ax.scatter(part["r"], part["s"], s=0.2 if group == "weights" else 4, alpha=0.5, linewidths=0,
                       label=f"layer {layer} ({'hidden' if layer == 1 else 'output'})", rasterized=True)
        st = stats[group]
        ax.set(xlabel="r = a / (a + b): relative updating by group 1", ylabel="s = c / (c + d): relative fork difference",
               title=f"{group}: R² = {st['r2']:.3f}, Spearman ρ = {st['spearman_rho']:.3f}, n = {st['n']}")
        ax.legend(markerscale=6 if group == "weights" else 2, fontsize="small", loc="upper left")
    fig.suptitle(title, fontsize="medium")
    names = [f"scatter_seed{seed}.png"]
    fig.savefig(folder / names[0], dpi=130)
    plt.close(fig)
    if grid is not None:
        names.append(f"pixel_map_seed{seed}.png")
        _pixel_figure(plt, grid, folder / names[-1], title)
    return names


def _pixel_figure(plt, grid: np.ndarray, path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.8), constrained_layout=True)
    cmap = plt.get_cmap("coolwarm").with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1, vmax=1)
    fig.colorbar(image, ax=ax, label="Pearson r of s on r, over the input's outgoing weights")
    ax.set(xticks=[], yticks=[])
    ax.set_title(f"per-input correlation (grey: undefined)\n{title}", fontsize="medium")
    fig.savefig(path, dpi=130)
    plt.close(fig)
