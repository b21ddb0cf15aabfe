"""A study: a grid of runs over seeds on Ray (``python -m harness.study``), its engine and one trial."""
