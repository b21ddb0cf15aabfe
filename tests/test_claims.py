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


def forgetting_frame():
    """Two measures over 7 seeds and two contrasts: selectivity = area of (R - A) accuracy over sparsity."""
    t = np.linspace(0, 1, 5)
    rows = []
    for contrast, shift in (("ratio", 0.0), ("difference", 0.1)):
        for seed in range(7):
            for measure, gap in (("maav", 0.5 + shift + 0.01 * seed), ("random", 0.02 * seed - 0.05)):
                rows.append(pd.DataFrame(dict(task="t", model="m", measure=measure, aggregation="weight", contrast=contrast,
                                              epoch=1, run_id=f"{contrast}{seed}", seed=seed, threshold=t, sparsity=t,
                                              retain_accuracy=0.9, forget_accuracy=0.9 - gap * np.minimum(1, 2 * t))))
    return pd.concat(rows, ignore_index=True)


def test_forgetting_pairs_test_selectivity_per_condition_against_scipy():
    cache = {("hand-made",): forgetting_frame()}
    spec = dict(kind="forgetting", data=["hand-made"], where=["aggregation=weight"], compare="measure",
                pairs=["maav:random"], expect="maav")
    got = ledger.evaluate(spec, ROOT, cache)
    assert got["verdict"] == "supported" and len(got["pairs"]) == 2  # one pair per contrast, Holm over both
    ratio = got["pairs"].set_index("contrast").loc["ratio"]
    gap = lambda g: 0.25 * (0.5 * g / 2 + 1.5 * g / 2 + 2 * g)  # noqa: E731  trapezoids of g * min(1, 2t) at t = k/4
    d = np.array([gap(0.5 + 0.01 * s) - gap(0.02 * s - 0.05) for s in range(7)])
    assert ratio["median_difference"] == pytest.approx(np.median(d))
    assert ratio["p_raw"] == pytest.approx(stats.wilcoxon(d).pvalue) and ratio["wins"] == 7
    np.testing.assert_allclose(got["pairs"]["p_claim"], ledger.holm(got["pairs"]["p_raw"].to_numpy()))


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
