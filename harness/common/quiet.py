"""A quiet start: TensorFlow's C++ start-up lines kept from the user, and one line of ours naming the device.

Imported first (through ``harness/__init__.py``) by every entry point: it
sets the environment TensorFlow and gRPC read when they load
(``TF_CPP_MIN_LOG_LEVEL=2``: no C++ info or warning lines once logging is
set up; ``GRPC_VERBOSITY=ERROR``). Numerics are untouched: oneDNN stays on
(``TF_ENABLE_ONEDNN_OPTS`` is not set; turning it off changes round-off).

With TensorFlow 2.21 that is not enough: its two shared libraries each log
before absl's C++ logging is initialised, and such lines go to stderr
whatever the level ("All log messages before absl::InitializeLog() ...",
"oneDNN custom operations are on", "Could not find cuda drivers"), and the
first device query on a machine without a GPU logs ``E0000 ... failed call to
cuInit ... (303)``. No Python call initialises absl's C++ logging first, so
:func:`load_tensorflow` imports TensorFlow and queries its devices with file
descriptor 2 captured, then writes back every line that is not one of
:data:`NOISE`'s known start-up lines: a real error still shows.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_VERBOSITY": "ERROR"}
NOISE = re.compile("|".join([
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"oneDNN custom operations are on",
    r"Could not find cuda drivers on your machine",
    r"failed call to cuInit",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
    r"TF-TRT Warning: Could not find TensorRT",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"rebuild TensorFlow with the appropriate compiler flags",
]))
for _name, _value in ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)


@contextlib.contextmanager
def filtered_stderr():
    """Capture file descriptor 2; on exit write back every captured line that :data:`NOISE` does not match."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no file descriptor 2 (an embedded interpreter): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if line.strip() and not NOISE.search(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def load_tensorflow() -> str:
    """Import TensorFlow and list its devices quietly (see the module's docstring); return a line naming the device.

    Returns:
        ``"device: GPU (1: /physical_device:GPU:0)"`` or ``"device: CPU (no GPU visible to TensorFlow)"``.
    """
    if "tensorflow" in sys.modules and getattr(load_tensorflow, "line", None):
        return load_tensorflow.line
    with filtered_stderr():
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    names = ", ".join(gpu.name for gpu in gpus)
    load_tensorflow.line = f"device: GPU ({len(gpus)}: {names})" if gpus else "device: CPU (no GPU visible to TensorFlow)"
    return load_tensorflow.line
