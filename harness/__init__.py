"""The harness: trains, thresholds by importance, and writes the result CSV."""

from harness import quiet  # noqa: F401  (the environment TensorFlow reads, set before anything imports it)
