"""One run as a pipeline of small parts.

Its config and plan, training, scoring the measures of an epoch, one sweep step, checkpoints and the run's
files: task -> model -> train -> measure -> aggregate -> threshold -> evaluate -> CSV.
"""
