"""The claims ledger: each claim of the seed documents recomputed from committed results as a verdict.

``claims.toml`` holds one ``[[claim]]`` per claim. A claim names its data (CSV files or study folders), the rows
it is about (``where``, as ``analysis.py --where``), the treatments compared (``compare``), the metric and the
planned family of pairs (``pairs`` or ``control``), and ``expect``: the treatment the claim says is better in
every tested pair. ``[[claim.robustness]]`` entries repeat the test with some of these fields changed (another
study, metric or subset) and record their own verdict.

Verdict, at ``alpha`` (0.05), from the per-pair Wilcoxon signed-rank tests over seeds of ``reports.pairs``, with
Holm's correction over every pair of the claim (all its conditions together):

- ``supported``: every pair is significant, the expected treatment better;
- ``not supported``: some pair is significant the other way;
- ``inconclusive``: neither (with n seeds the smallest two-sided p is 2/2^n: 5 seeds can never reach 0.05).

Kinds: ``ranking`` (``reports.analyze`` on the sparsity curves, any ``--metric``), ``forgetting`` (selectivity per
run from ``reports.forgetting``, higher is better) and ``correlation`` (a localisation ``result.json`` of seed 002:
``field`` such as ``weights.pearson_r`` or ``weights.partial_r`` per seed, minus the same seed's value in ``versus``
when given; supported when the 95% Student-t interval of the mean over seeds lies above 0, not supported when it
lies below, inconclusive when it holds 0).

``python -m reports.claims [claims.toml]`` prints every verdict and the README ledger table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tomllib
from scipy import stats

from reports.analyze import analyze, apply_where, parse_where
from reports.forgetting import forgetting_scores
from reports.keys import key_columns
from reports.loading import load
from reports.metrics import Metric
from reports.pairs import PAIR_FIELDS, Family, holm, pair_tests, parse_pairs

VERDICTS = ("supported", "not supported", "inconclusive")
KINDS = ("ranking", "forgetting", "correlation")
SELECTIVITY = Metric("selectivity", "selectivity", False, (-1.0, 1.0), "selectivity")
FIELDS = ("data", "where", "compare", "metric", "pairs", "control", "expect", "field", "versus")


def load_claims(path: str | Path = "claims.toml") -> list[dict]:
    """The claims of a ledger file, each robustness entry completed with its claim's fields.

    Raises:
        ValueError: a claim lacks ``id`` or ``kind``, has an unknown kind, or records an unknown verdict.
    """
    text = Path(path).read_text()
    claims = tomllib.loads(text).get("claim")
    if not claims:
        raise ValueError(f"no [[claim]] table in {path}")
    for claim in claims:
        if "id" not in claim or claim.get("kind") not in KINDS:
            raise ValueError(f"A claim needs an id and a kind among {list(KINDS)}. Received: {claim}")
        for entry in [claim, *claim.get("robustness", [])]:
            if entry.get("verdict") not in VERDICTS:
                raise ValueError(f"verdict must be one of {list(VERDICTS)}. Received: verdict={entry.get('verdict')!r}")
        claim["robustness"] = [_complete(claim, r) for r in claim.get("robustness", [])]
    return claims


def _complete(claim: dict, entry: dict) -> dict:
    return {"kind": claim["kind"], **{k: claim[k] for k in FIELDS if k in claim}, **entry}


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


def ledger_table(claims: list[dict]) -> str:
    """The README's ledger table (markdown): id, seed, claim, test, verdict, statistic, robustness, data."""
    lines = ["| id | claim | test | verdict | statistic | robustness (settings where the verdict differs) | data |",
             "|---|---|---|---|---|---|---|"]
    for c in claims:
        flips = [f"{r['setting']}: {r['verdict']}" for r in c["robustness"] if r["verdict"] != c["verdict"]]
        held = len(c["robustness"]) - len(flips)
        robust = f"same in {held} of {len(c['robustness'])}" + (f"; {'; '.join(flips)}" if flips else "")
        lines.append(f"| {c['id']} | {c['claim']} | {c['test']} | **{c['verdict']}** | {c['statistic']} | "
                     f"{robust if c['robustness'] else '-'} | `{c['data'][0]}` |")  # fmt: skip
    return "\n".join(lines)


def readme_verdicts(text: str) -> dict[str, str]:
    """Claim id -> verdict from the README ledger table (rows ``| id | claim | test | **verdict** | ...``)."""
    found = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[3].startswith("**") and cells[0][:3].isdigit() and cells[0][3:4] == "-":
            found[cells[0]] = cells[3].strip("*")
    return found


def main(argv: list[str] | None = None) -> int:
    """Print every entry's recomputed verdict and statistic, then the ledger table.

    Returns 0, 1 when a recorded verdict differs from the recomputed one, 2 on a ledger that cannot be read (one line).
    """
    path = (argv if argv is not None else sys.argv[1:]) or ["claims.toml"]
    try:
        claims = load_claims(path[0])
    except (OSError, ValueError, KeyError) as error:  # tomllib.TOMLDecodeError is a ValueError
        print(f"error: cannot read the claims ledger {path[0]}: {error}", file=sys.stderr)
        return 2
    cache, differs = {}, 0
    for claim in claims:
        for entry in [claim, *claim["robustness"]]:
            got = evaluate(entry, cache=cache)
            mark = "" if got["verdict"] == entry["verdict"] else f"  (recorded: {entry['verdict']})"
            differs += bool(mark)
            print(f"{claim['id']} [{entry.get('setting', 'main')}] {got['verdict']}{mark}: {got['statistic']}")
    print(ledger_table(claims))
    return int(differs > 0)


if __name__ == "__main__":
    sys.exit(main())
