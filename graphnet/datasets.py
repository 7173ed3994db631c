"""Datasets: the digits shipped with graphnet, and loaders for them.

A dataset's ``load(**options)`` returns ``{"train": {...}, "test": {...}}``;
each split maps ``"x"`` (features) and ``"y"`` (targets) to arrays with the
samples along the first axis.
"""

from importlib import resources

import numpy as np


def load_digits():
    """The UCI handwritten digits (1797 8x8 images, classes 0-9) with graphnet's fixed
    stratified split: 1438 train, 359 test. x is float32 in [0, 1], y int64."""
    with resources.files("graphnet").joinpath("data/digits.npz").open("rb") as f:
        data = np.load(f, allow_pickle=False)
        images = data["images"].astype(np.float32) / 16.0
        labels = data["labels"].astype(np.int64)
        train, test = data["train_index"], data["test_index"]
    return {"train": {"x": images[train], "y": labels[train]},
            "test": {"x": images[test], "y": labels[test]}}
