"""The verdict of one claim of the ledger (``reports.claims``, which gives the rules): the tested pairs and a line.

``ranking`` claims take their pairs from ``reports.analyze``, ``forgetting`` claims test selectivity per run
(``reports.forgetting``) over seeds, ``correlation`` claims read a localisation ``result.json``; the pairs of a
claim are Holm-adjusted together (``reports.pairs``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from reports.analyze import analyze, apply_where, parse_where
from reports.forgetting import forgetting_scores
from reports.keys import key_columns
from reports.loading import load
from reports.metrics import Metric
from reports.pairs import PAIR_FIELDS, Family, holm, pair_tests, parse_pairs

SELECTIVITY = Metric("selectivity", "selectivity", False, (-1.0, 1.0), "selectivity")


def evaluate(spec: dict, root: str | Path = ".", cache: dict | None = None) -> dict:
    """``verdict``, ``statistic`` (one line) and ``pairs`` (the tested pairs, Holm over the claim) of one entry."""
    cache = {} if cache is None else cache
    if spec["kind"] == "correlation":
        return correlation(spec, Path(root))
    pairs = (ranking_pairs if spec["kind"] == "ranking" else forgetting_pairs)(spec, Path(root), cache)
    if pairs.empty:
        raise ValueError(f"claim {spec.get('id', spec.get('setting'))}: no pair could be tested")
    pairs = pairs.assign(p_claim=holm(pairs["p_raw"].to_numpy(float)))
    return {"verdict": verdict(pairs, spec["expect"]), "statistic": statistic(pairs), "pairs": pairs}


def _load(data, root: Path, cache: dict) -> pd.DataFrame:
    key = tuple(data)
    if key not in cache:
        cache[key] = load([str(root / d) for d in data])
    return cache[key]


def ranking_pairs(spec: dict, root: Path, cache: dict) -> pd.DataFrame:
    """The tested pairs of ``analyze`` for the entry's metric (every condition left by ``where``)."""
    df = _load(spec["data"], root, cache)
    result = analyze(df, compare=spec["compare"], metric=[spec["metric"]], where=spec.get("where"),
                     control=spec.get("control"), pairs=spec.get("pairs"))  # fmt: skip
    return next(iter(result["metrics"].values()))["pairs"]


def forgetting_pairs(spec: dict, root: Path, cache: dict) -> pd.DataFrame:
    """Paired tests of selectivity over seeds, per condition (last epoch), between the entry's measures."""
    scores = forgetting_scores(_load(spec["data"], root, cache))
    scores = apply_where(scores, parse_where(spec.get("where")))
    scores = scores[scores["epoch"] == scores["epoch"].max()]
    family = Family(spec.get("control"), parse_pairs(spec.get("pairs")))
    conditions = [c for c in key_columns(scores) if c != spec["compare"]]
    tables = []
    for key, part in scores.groupby(conditions, dropna=False):
        matrix = part.pivot(index="seed", columns=spec["compare"], values="selectivity").dropna()
        labels = dict(zip(conditions, key, strict=True))
        tables.append(pair_tests(matrix, family, SELECTIVITY).assign(**labels))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def verdict(pairs: pd.DataFrame, expect: str, alpha: float = 0.05) -> str:
    """``supported`` / ``not supported`` / ``inconclusive`` from ``p_claim`` and each pair's direction."""
    better = pairs["direction"] == f"{expect} better"
    significant = pairs["p_claim"] < alpha
    if (significant & ~better & (pairs["direction"] != "no difference")).any():
        return "not supported"
    return "supported" if (significant & better).all() else "inconclusive"


def statistic(pairs: pd.DataFrame) -> str:
    """One clause per pair: median difference a - b [95% bootstrap], wins/ties/losses of a, rank-biserial r, Holm p.

    A clause starts with the condition (``measure=obd: ``) when the claim's pairs come from several conditions.
    """
    varying = [c for c in pairs.columns if c not in (*PAIR_FIELDS, "p_claim") and pairs[c].astype(str).nunique() > 1]
    return "; ".join(
        "".join(f"{c}={r[c]}, " for c in varying).removesuffix(", ") + (": " if varying else "")
        + f"{r.a} - {r.b}: {r.median_difference:+.3g} [{r.median_lo:+.3g}, {r.median_hi:+.3g}], "
        f"{r.wins}/{r.ties}/{r.losses} of {r.n} seeds, r = {r.rank_biserial:+.2f}, p {r.p_claim:.2g}"
        for _, r in pairs.iterrows()
    )


def seed_values(path: Path, field: str) -> pd.Series:
    """Per-seed values of ``field`` (``weights.r2``, ``biases.pearson_r``, ``weights.partial_r``, ...) of a result.json."""
    group, stat = field.split(".")
    seeds = json.loads(path.read_text())["seeds"]
    where = [s["stats"]["baseline"] if stat in ("partial_r", "baseline_r2") else s["stats"] for s in seeds]
    return pd.Series([w[group][stat] for w in where], index=[s["seed"] for s in seeds], dtype=float)


def correlation(spec: dict, root: Path) -> dict:
    """Verdict from the 95% t-interval over seeds of ``field`` (minus ``versus``'s value of the same seed)."""
    values = seed_values(root / spec["data"][0], spec["field"])
    if spec.get("versus"):
        values = (values - seed_values(root / spec["versus"][0], spec["field"])).dropna()
    mean, half = values.mean(), stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    verdict = "supported" if mean - half > 0 else "not supported" if mean + half < 0 else "inconclusive"
    r2 = seed_values(root / spec["data"][0], spec["field"].split(".")[0] + ".r2").mean()
    text = (f"{spec['field']}{' difference' if spec.get('versus') else ''} {mean:+.3f} [{mean - half:+.3f}, "
            f"{mean + half:+.3f}], {(values > 0).sum()} of {len(values)} seeds > 0; R² of s on r {r2:.3f}")
    return {"verdict": verdict, "statistic": text, "pairs": None}
