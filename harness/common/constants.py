"""The grid's fixed choices, where the config, the pre-TensorFlow checks and ``--list`` read them.

TensorFlow-free (no imports). The modules that act on a choice (thresholding,
sweep, controls, forgetting, pooling, the prunable parameters) import their tuple from here.
"""

SCOPES = ("layer", "global", "output")  # harness.thresholding.threshold.segment_ids
NORMALIZATIONS = ("none", "mean", "max", "lamp")  # harness.thresholding.threshold.normalize_per_layer
THRESHOLD_RULES = ("exact", "legacy_cutoff")  # harness.thresholding.threshold.Thresholder
ORDERS = ("least", "most")  # removal order: least (LeRF) or most (MoRF) important first
REPLACEMENTS = ("zero", "random")  # harness.thresholding.sweep.replacement_values
METHODS = ("auto", "masked", "shrunk", "batched")  # sweep methods, harness.thresholding.sweep
CONTROLS = ("random_matched", "shuffled")  # matched controls, harness.thresholding.controls
CONTRASTS = ("ratio", "difference")  # forgetting contrasts, harness.experiments.forgetting
POOLINGS = ("mean", "sum", "max", "min", "l2")  # poolings of item scores, aggregations._items.pool
PRUNABLE_CHOICES = ("kernels", "kernels+biases", "all", "hidden-kernels")  # measures._base.prunable_params
