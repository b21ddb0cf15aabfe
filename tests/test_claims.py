"""The claims ledger (claims.toml, README "Claims"): every verdict recomputed from the committed results."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports import claims as ledger

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ledger.load_claims(ROOT / "claims.toml")
ENTRIES = [(c, e) for c in CLAIMS for e in [c, *c["robustness"]]]
CACHE: dict = {}


def pairs(direction, p_raw):
    return pd.DataFrame({"direction": direction, "p_raw": p_raw, "p_claim": ledger.holm(np.asarray(p_raw, float))})


def test_verdict_rule_on_hand_made_pairs():
    assert ledger.verdict(pairs(["a better", "a better"], [0.01, 0.02]), "a") == "supported"
    assert ledger.verdict(pairs(["a better", "a better"], [0.03, 0.04]), "a") == "inconclusive"  # Holm: 0.06, 0.06
    assert ledger.verdict(pairs(["a better", "b better"], [0.001, 0.01]), "a") == "not supported"
    assert ledger.verdict(pairs(["no difference"], [1.0]), "a") == "inconclusive"


def test_holm_over_the_claim_matches_hand_computation():
    p = np.array([0.03, 0.01, 0.04])
    np.testing.assert_allclose(ledger.holm(p), [0.06, 0.03, 0.06])


def test_selectivity_pairs_match_scipy_on_a_hand_made_study():
    rows = [dict(task="t", model="m", measure=m, aggregation="weight", epoch=1, run_id=f"{m}{s}", seed=s,
                 selectivity=v) for m, vals in (("maav", [0.5, 0.6, 0.55, 0.7, 0.65, 0.6]),
                                                ("random", [0.0, 0.1, -0.1, 0.05, 0.0, 0.02])) for s, v in enumerate(vals)]
    matrix = pd.DataFrame(rows).pivot(index="seed", columns="measure", values="selectivity")
    table = ledger.pair_tests(matrix, ledger.Family(pairs=(("maav", "random"),)), ledger.SELECTIVITY)
    assert table["p_raw"].iloc[0] == pytest.approx(stats.wilcoxon(matrix["maav"] - matrix["random"]).pvalue)
    assert (table["wins"].iloc[0], table["direction"].iloc[0]) == (6, "maav better")


@pytest.mark.slow
@pytest.mark.parametrize("claim,entry", ENTRIES, ids=[f"{c['id']}-{e.get('setting', 'main')}" for c, e in ENTRIES])
def test_recorded_verdict_is_the_recomputed_one(claim, entry):
    got = ledger.evaluate(entry, ROOT, CACHE)
    assert got["verdict"] == entry["verdict"], got["statistic"]
    if entry is claim:
        assert got["statistic"] == claim["statistic"]


def test_readme_ledger_table_gives_every_claim_with_its_recorded_verdict():
    readme = ledger.readme_verdicts((ROOT / "README.md").read_text())
    assert readme == {c["id"]: c["verdict"] for c in CLAIMS}


def test_readme_ledger_table_is_the_generated_one():
    assert ledger.ledger_table(CLAIMS) in (ROOT / "README.md").read_text()


def test_every_claim_names_committed_data_and_an_example_command():
    for claim in CLAIMS:
        for entry in [claim, *claim["robustness"]]:
            assert all((ROOT / d).exists() for d in entry["data"]), (claim["id"], entry["data"])
        config = claim["command"].split("--config ")[-1].split()[0] if "--config" in claim["command"] else None
        assert config is None or (ROOT / config).is_file(), claim["command"]
