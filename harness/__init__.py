"""The harness: trains, thresholds by importance, and writes the result CSV."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
