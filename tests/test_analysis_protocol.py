"""Known answers for the protocol tables of analysis.py: removal order, matched controls, recovery agreement."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

import analysis
from tests.test_analysis import _rows

matplotlib.use("Agg")


def frame(spec: dict, seeds=(0, 1), noise=0.0) -> pd.DataFrame:
    """Rows for {(measure, order, recovery): center or {seed: center}}; a larger center is a lower AUC."""
    parts = []
    for (measure, order, recovery), center in spec.items():
        for seed in seeds:
            c = center[seed] if isinstance(center, dict) else center
            parts.append(_rows(measure, "weight", 1, seed, c, noise=noise).assign(order=order, recovery=recovery))
    return pd.concat(parts, ignore_index=True).assign(num_classes=np.nan)


@pytest.mark.slow
def test_order_table_gives_both_aucs_their_gap_and_three_ranks():
    # good: last to hurt when least important go first, first when most important go first
    spec = {("good", "least", "none"): 0.8, ("good", "most", "none"): 0.2, ("flat", "least", "none"): 0.5,
            ("flat", "most", "none"): 0.5, ("bad", "least", "none"): 0.3, ("bad", "most", "none"): 0.7,
            ("sharp", "least", "none"): 0.9, ("sharp", "most", "none"): 0.6}
    df = frame(spec)
    table = analysis.analyze(df, interval="t")["order"].set_index("measure")
    scores = analysis.run_scores(df)
    for measure in ("good", "bad"):
        auc = {o: scores[(scores.measure == measure) & (scores.order == o)]["auc"].mean() for o in ("least", "most")}
        assert table.loc[measure, "auc_least"] == pytest.approx(auc["least"])
        assert table.loc[measure, "gap"] == pytest.approx(auc["most"] - auc["least"])
    assert table["rank_gap"].to_dict() == {"good": 1.0, "sharp": 2.0, "flat": 3.0, "bad": 4.0}
    assert table["rank_least"].to_dict() == {"good": 2.0, "sharp": 1.0, "flat": 3.0, "bad": 4.0}
    assert table["rank_most"].to_dict() == {"good": 1.0, "sharp": 3.0, "flat": 2.0, "bad": 4.0}
    assert (table["n_seeds"] == 2).all() and "order" not in table.columns
    assert analysis.order_table(analysis.run_scores(df[df.order == "least"])).empty  # one order: no table


def test_control_table_says_which_measures_beat_their_controls_in_both_orders():
    spec = {("good", "least", "none"): 0.8, ("good~random_matched", "least", "none"): 0.6,
            ("bad", "least", "none"): 0.4, ("bad~random_matched", "least", "none"): 0.6,
            ("good", "most", "none"): 0.2, ("good~random_matched", "most", "none"): 0.6,
            ("bad", "most", "none"): 0.7, ("bad~random_matched", "most", "none"): 0.6}
    result = analysis.analyze(frame(spec), interval="t")
    table = result["controls"].set_index(["order", "measure"])
    assert table["beats_random_matched"].to_dict() == {("least", "bad"): False, ("least", "good"): True,
                                                       ("most", "bad"): False, ("most", "good"): True}
    scores = result["scores"].query("order == 'least' and measure == 'good~random_matched'")
    assert table.loc[("least", "good"), "auc_random_matched"] == pytest.approx(scores["auc"].mean())
    assert "good~random_matched" in set(result["ranking"]["treatment"])  # ranked beside the measures
    assert "random_matched: good (1 of 2)" in analysis.format_report(result)


@pytest.mark.slow
def test_recovery_agreement_is_spearmans_rho_per_seed_averaged_over_seeds_without_controls():
    none = {"a": 0.8, "b": 0.7, "c": 0.5, "d": 0.3}
    same_then_reversed = {"a": {0: 0.8, 1: 0.3}, "b": {0: 0.7, 1: 0.5}, "c": {0: 0.5, 1: 0.7}, "d": {0: 0.3, 1: 0.8}}
    spec = {(m, "least", "none"): c for m, c in none.items()}
    spec |= {(m, "least", "finetune:steps=5"): c for m, c in same_then_reversed.items()}
    spec |= {("a~random_matched", "least", r): 0.1 for r in ("none", "finetune:steps=5")}  # would break the ties
    result = analysis.analyze(frame(spec, noise=0.0), interval="t")
    row = result["recovery"].iloc[0]
    assert row["recovery"] == "finetune:steps=5" and row["n_seeds"] == 2 and row["n_measures"] == 4
    assert (row["rho"], row["rho_min"], row["rho_max"]) == pytest.approx((0.0, -1.0, 1.0))
    text = analysis.format_report(result)
    assert "Spearman's rho between the measures' rankings without recovery and with it" in text


@pytest.mark.slow
def test_report_writes_the_protocol_tables_and_figures(tmp_path):
    spec = {(m, o, r): c + (0.1 if o == "most" else 0) for m, c in {"good": 0.8, "bad": 0.4, "mid": 0.6}.items()
            for o in ("least", "most") for r in ("none", "bn")}
    spec |= {(f"{m}~{c}", o, r): 0.55 for m in ("good", "bad", "mid") for c in ("random_matched", "shuffled")
             for o in ("least", "most") for r in ("none", "bn")}
    result = analysis.report(frame(spec, seeds=(0,)), tmp_path, fmt="svg")
    names = {p.name for p in result["files"]}
    assert {"order.csv", "controls.csv", "recovery.csv"} <= names
    assert {f"order_digits_mlp_mean_global_none_zero_{r}.svg" for r in ("bn", "none")} <= names
    assert {f"controls_digits_mlp_mean_global_none_zero_{o}_{r}.svg" for o in ("least", "most")
            for r in ("bn", "none")} <= names
    markdown = (tmp_path / "ranking.md").read_text()
    assert "## Removal order" in markdown and "## Measures and their matched controls" in markdown
    fig = analysis.plot_controls(frame(spec, seeds=(0,)).query("order == 'least' and recovery == 'none'"))
    assert len(fig.axes) == 3 and {line.get_linestyle() for line in fig.axes[0].lines} == {"-", "--", ":"}
