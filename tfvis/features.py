"""Saliency of feature (embedding) dimensions, for models whose output is a feature vector.

One dimension needs nothing new: an int target picks output dimension ``i`` (``targets=i``).
`feature_saliency` adds the two other views: one map per dimension of a list, and one merged
map whose gradient is accumulated over the dimensions (the gradient of their sum). Both go
through class-weight targets, so no dimension ever retraces the explainer.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np

from tfvis.explainers.base import Explainer
from tfvis.explanation import Explanation
from tfvis.inputs import as_batch


def feature_saliency(
    explainer: Explainer | keras.Model,
    inputs: Any,
    dims: int | Sequence[int] | None = None,
    *,
    merge: bool = False,
    batch_size: int | None = None,
) -> list[Explanation] | Explanation:
    """Explains dimensions of a feature vector output.

    Args:
      explainer: any explainer (e.g. ``tfvis.Saliency(model)``, ``tfvis.GuidedBackprop``), or a
        model, which means ``tfvis.Saliency(model)``.
      inputs: as for `Explainer.explain`.
      dims: the output dimensions: an int, a sequence of ints, or None for all of them.
      merge: False gives one explanation per dimension; True gives one explanation of the
        sum of the dimensions (the gradient accumulated over them, one backward pass).
      batch_size: samples per compiled chunk.

    Returns:
      A list of Explanations, one per dimension in ``dims`` order, or (``merge=True``) one
      Explanation whose ``targets`` are the ``(N, K)`` 0/1 weights of the merged dimensions.

    Raises:
      ValueError: the model has no single ``(N, K)`` output, or a dimension is out of range.
    """
    if isinstance(explainer, keras.Model):
        from tfvis.explainers.gradients import Saliency

        explainer = Saliency(explainer)
    x = as_batch(inputs, explainer.input_shape)
    size = explainer._num_classes(x)
    if size is None:
        raise ValueError(
            "feature_saliency needs one (N, K) feature output: for a multi-output model, "
            "build the explainer with output=<name or index>"
        )
    if dims is None:
        chosen = np.arange(size)
    else:
        chosen = np.atleast_1d(np.asarray(dims))
        if chosen.ndim != 1 or not np.issubdtype(chosen.dtype, np.integer):
            raise TypeError(f"dims must be an int or a sequence of ints, got {dims!r}")
        bad = chosen[(chosen < -size) | (chosen >= size)]
        if bad.size:
            raise ValueError(
                f"dimension {int(bad[0])} is out of range: the output has {size} dimensions"
            )
    if merge:
        weights = np.zeros((len(x), size), np.float32)
        weights[:, chosen] = 1.0
        return explainer.explain(x, targets=weights, batch_size=batch_size)
    return [explainer.explain(x, targets=int(d), batch_size=batch_size) for d in chosen]
