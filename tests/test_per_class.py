"""Per-class evaluation: one compiled pass gives each class's loss and accuracy, for every sweep method."""

import numpy as np
import pytest

from aggregations import get_aggregation
from harness.thresholding.evaluator import Evaluator
from harness.thresholding.sweep import replacement_values, sweep
from harness.thresholding.threshold import Thresholder
from measures import prunable_params
from tests.helpers import CE_LOGITS, random_data, tiny_conv_model, tiny_dense_model

THRESHOLDS = [0.5, 0.0, 0.15, 1.0, 0.8]  # unsorted
CLASSES = 4  # one more than the models' outputs: class 3 has no validation examples


def per_class_reference(model, params, masks, replacement, x, y):
    """Reference: assign the mask, then ``model.evaluate`` on each class's examples alone; restore."""
    originals = [p.variable.numpy().copy() for p in params]
    for p, mask, r, o in zip(params, masks, replacement, originals):
        p.variable.assign(np.where(mask, r, o))
    out = [model.evaluate(x[y == c], y[y == c], batch_size=7, verbose=0) for c in range(3)]
    for p, o in zip(params, originals):
        p.variable.assign(o)
    return np.array(out)  # (class, [loss, accuracy])


@pytest.mark.slow
@pytest.mark.parametrize("model_fn, aggregation", [(tiny_dense_model, "unit"), (tiny_conv_model, "filter")])
def test_per_class_metrics_equal_a_per_class_evaluate_for_every_method(model_fn, aggregation):
    model = model_fn()
    x, y = random_data(model, n=30, seed=5)
    model.compile(loss=CE_LOGITS, metrics=["sparse_categorical_accuracy"])
    params = prunable_params(model, "kernels+biases")
    scores = [np.random.default_rng([2, i]).random(p.shape) for i, p in enumerate(params)]
    thresholder = Thresholder(get_aggregation(aggregation)(params, scores), "layer", seed=2)
    replacement = replacement_values(params, "zero", 0)
    evaluate = Evaluator(model, CE_LOGITS, x, y, batch_size=8, classes=CLASSES)
    plain = Evaluator(model, CE_LOGITS, x, y, batch_size=8)
    reference = {t: per_class_reference(model, params, thresholder.masks(t), replacement, x, y) for t in THRESHOLDS}
    counts = np.bincount(y, minlength=CLASSES)
    for method, recovery in [("masked", None), ("shrunk", None), ("batched", None), ("masked", lambda t: None)]:
        rows = sweep(params, thresholder, replacement, THRESHOLDS, evaluate, method, recovery)
        overall = sweep(params, thresholder, replacement, THRESHOLDS, plain, method, recovery)
        for row, same in zip(rows, overall):
            got = row["per_class"]
            assert [c["class"] for c in got] == list(range(CLASSES)) and "per_class" not in same
            assert [c["n_examples"] for c in got] == counts.tolist()
            want = reference[row["threshold"]]
            np.testing.assert_allclose([c["val_loss"] for c in got[:3]], want[:, 0], rtol=1e-5, err_msg=method)
            np.testing.assert_allclose([c["val_accuracy"] for c in got[:3]], want[:, 1], rtol=1e-5, err_msg=method)
            assert np.isnan(got[3]["val_loss"]) and np.isnan(got[3]["val_accuracy"])  # no example of class 3
            np.testing.assert_allclose(row["val_loss"], same["val_loss"], rtol=1e-12)  # the main columns are unchanged
            np.testing.assert_allclose(sum(c["val_accuracy"] * c["n_examples"] for c in got[:3]) / len(y),
                                       row["val_accuracy"], rtol=1e-12)


def test_per_class_columns_refuse_regression_and_labels_outside_the_classes():
    model = tiny_dense_model()
    x, y = random_data(model, n=8)
    with pytest.raises(ValueError, match="per-class evaluation needs a classification task"):
        Evaluator(model, CE_LOGITS, x, y, classification=False, classes=3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\) for per-class evaluation"):
        Evaluator(model, CE_LOGITS, x, np.maximum(y, 2), classes=2)
