"""Figures, rankings and significance tests from harness result CSVs and study folders (``analysis.py``).

Modules: ``loading`` and ``validate`` (CSVs, folders, metadata, checks), ``keys`` (column roles), ``metrics``
(per-run scores, ``--metric``), ``statistics`` (intervals, tests), ``pairs`` (planned families, effect sizes),
``ranking`` (blocks, tables), ``disagreement`` (metrics that disagree; the ``--at`` table), ``analyze`` (every
table), ``colors``, ``curves``, ``figures``, ``forgetting``, ``protocol``, ``outputs`` (output folders),
``report`` (files), ``markdown`` (text), ``options`` (the options checked before pandas, SciPy or
matplotlib are imported), ``cli``; ``claims`` (the claims ledger) and ``verdicts`` (its verdicts).

Command line::

    python analysis.py data/studies/digits5 --out figures/digits5          # a study folder (its trials/*.csv)
    python analysis.py data/results.csv "data/*.csv" --out figures/ [--format svg] [--epoch last] [--epochs 1 5 10]
    python analysis.py data/studies/obd --compare measure,scope             # rank (measure x scope) jointly
    python analysis.py data/studies/obd --metric accuracy_at:0.9 loss_auc --control magnitude --at 0.9

Notebook::

    import analysis
    df = analysis.load("data/studies/digits5")        # a folder, CSVs or globs
    analysis.plot_curves(df[df.aggregation == "weight"])   # a Figure
    table = analysis.rank_table(df)                  # a DataFrame
    analysis.summary(table)
    result = analysis.report(df, "figures")          # every table and file
    print(analysis.format_report(result))

Definitions. The key columns of a row are task, model, measure, aggregation, pooling, scope, normalization,
replacement, any further text column (``order``, ``recovery``, ...), and every run setting that differs between the
loaded runs (read from each run's ``<csv stem>.<run_id>.json``: ``learning_rate``, ``epochs``, ...). A treatment is
what is ranked: the measure, or with ``compare`` a combination such as (measure, scope). A condition is the epoch plus
every other key column. A replicate is a seed: the runs of one condition differ only in their seed. Within a
condition, for each treatment and seed:

- AUC: trapezoid integral of val_loss over achieved sparsity, points sorted by sparsity. Lower is better: the model
  lost less while its least important weights were replaced.
- Tolerated sparsity (prefix definition): the largest sparsity s such that every point with sparsity <= s keeps
  val_loss <= loss0 + loss_tol * |loss0| and val_accuracy >= acc0 - acc_tol, where loss0 and acc0 are the values at
  the smallest threshold (t = 0). Both limits are one-sided; a NaN accuracy (regression) passes.
- The metric (``--metric``, ``reports.metrics``): ``loss_auc`` (the AUC above, default), ``accuracy_auc``,
  ``accuracy_at:S``, ``loss_at:S`` or ``tolerated_sparsity``; each requested metric is ranked and tested alike.
- Rank: within each seed, treatments ranked by the metric (1 = best, ties averaged); ``mean_rank`` is the mean over
  seeds, ``rank`` the rank of the mean; best and second are chosen by mean rank.

Statistics, per condition at the ranked epoch (``epoch="last"`` by default), with seeds as blocks (never epochs or
thresholds: the epochs of one run are not independent, so they are drawn as curves over training):

- Mean metric, AUC and tolerated sparsity over seeds with a 95% interval: percentile bootstrap over seeds
  (``scipy.stats.bootstrap``, 9,999 resamples) or a t-interval; both clipped to the metric's range. No interval for
  one seed.
- Friedman test over seeds (``scipy.stats.friedmanchisquare``; k >= 3 treatments).
- Two-sided Wilcoxon signed-rank tests on the per-seed values, Holm-adjusted over the family tested
  (``reports.pairs``): every pair (k(k-1)/2), each treatment against a control (k - 1), or listed pairs; per pair
  the raw and adjusted p, direction, wins/ties/losses, median difference with a bootstrap interval and the
  matched-pairs rank-biserial correlation. The critical-difference diagram, drawn when every pair is tested,
  joins the treatments these tests cannot separate. Mean-rank post-hoc tests (Nemenyi) are not used: whether
  they separate two treatments depends on which other treatments are in the pool (Benavoli, Corani and Mangili
  2016, "Should we really use post-hoc tests based on mean-ranks?", JMLR 17(5)). With n seeds the smallest
  two-sided Wilcoxon p is 2 / 2**n (0.0625 at n = 5), so separating any pair of a family of m tests needs
  2 / 2**n * m < alpha.
- A seed with a non-finite score (NaN or inf loss) or a missing treatment is excluded from its condition, and
  reported; when nothing is left to rank, ``analyze`` raises ``ValueError``.

Selective forgetting (runs with ``forget_classes`` in their metadata, seed 001). ``load`` reads each such run's
per-class companion CSV (``<csv stem>.per_class.csv``) and adds, per row, the accuracy and loss on the forget set A
(``forget_accuracy``, ``forget_loss``: over the validation examples of the classes in A) and on the other classes R
(``retain_accuracy``, ``retain_loss``), and a ``forget_classes`` key column ("7", "3,8"). Per run and condition:

- Selectivity: trapezoid integral of (accuracy on R - accuracy on A) over achieved sparsity (the fraction t of the
  prunable weights replaced, most A-specific first). Larger is better: the model lost A while it kept R.
- Retained at forgotten: the accuracy on R at the first threshold where the accuracy on A is below ``level`` (10%),
  and the sparsity there; NaN when A is never forgotten that far.
- ``forgetting_table``: both, averaged over seeds, ranked by selectivity (1 = most selective), with the margin over
  the ``random`` measure of the same condition.

Figures: curves (one per (task, model, pooling, scope, normalization, replacement, ...) combination, facets
aggregation x epoch, named ``<kind>_<values>.<fmt>``; missing key values read "-"), a rank heatmap over epochs per
combination, a CD diagram per ranked condition and a heatmap of mean ranks across conditions. Each measure has one
colour and line style in every figure of every analysis, fixed by its name (``reports.colors``).
"""

