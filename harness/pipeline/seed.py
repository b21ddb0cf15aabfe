"""One function that seeds every random generator a run uses."""

import keras
import numpy as np
import tensorflow as tf


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy and Keras/TensorFlow.

    Args:
        seed: The run's seed.
        deterministic: Also enable TensorFlow's deterministic kernels, which
            makes repeated runs bit-identical at some cost in speed on a GPU.
            It cannot be switched off again within the process.
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def derived_seed(*parts: int) -> int:
    """A 32-bit seed derived from several integers (run seed, epoch, ...)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])
