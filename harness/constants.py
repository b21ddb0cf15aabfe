"""The grid's fixed choices, where the config, the pre-TensorFlow checks and ``--list`` read them.

TensorFlow-free (no imports). The modules that act on a choice (thresholding,
sweep, controls, forgetting) import their tuple from here.
"""

SCOPES = ("layer", "global", "output")  # harness.threshold.segment_ids
NORMALIZATIONS = ("none", "mean", "max", "lamp")  # harness.threshold.normalize_per_layer
THRESHOLD_RULES = ("exact", "legacy_cutoff")  # harness.threshold.Thresholder
ORDERS = ("least", "most")  # removal order: least (LeRF) or most (MoRF) important first
REPLACEMENTS = ("zero", "random")  # harness.sweep.replacement_values
METHODS = ("auto", "masked", "shrunk", "batched")  # sweep methods, harness.sweep
CONTROLS = ("random_matched", "shuffled")  # matched controls, harness.controls
CONTRASTS = ("ratio", "difference")  # forgetting contrasts, harness.forgetting
