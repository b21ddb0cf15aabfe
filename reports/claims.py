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
The verdicts are computed by ``reports.verdicts``, imported only once the ledger has been read, so a ledger
that cannot be read is refused before pandas or SciPy are imported.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import tomllib

VERDICTS = ("supported", "not supported", "inconclusive")
KINDS = ("ranking", "forgetting", "correlation")
FIELDS = ("data", "where", "compare", "metric", "pairs", "control", "expect", "field", "versus")
COMPUTED = ("SELECTIVITY", "correlation", "evaluate", "forgetting_pairs", "ranking_pairs", "seed_values", "statistic",
            "verdict", "Family", "PAIR_FIELDS", "holm", "pair_tests")  # fmt: skip


def __getattr__(name: str):
    """The verdicts' names (``reports.verdicts``), imported on first use (PEP 562): reading a ledger needs no SciPy."""
    if name not in COMPUTED:
        raise AttributeError(f"module 'reports.claims' has no attribute {name!r}")
    return getattr(importlib.import_module("reports.verdicts"), name)


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
    from reports.verdicts import evaluate  # pandas and SciPy only once the ledger has been read

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
