"""Multifaceted feature visualisation (Nguyen, Yosinski & Clune, 2016).

Real images are passed through the model; their activations at a layer are reduced with PCA
and clustered with k-means (scikit-learn, the ``featurevis`` extra); each facet is optimised
from the mean image of its cluster, so each shows one of the different things that excite the
unit or class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfvis.featurevis import objectives as obj_lib
from tfvis.featurevis.methods import visualize
from tfvis.featurevis.result import Visualization


def layer_activations(model, images: np.ndarray, path: str, batch_size: int = 64) -> np.ndarray:
    """``(N, D)``: the flattened activations of layer ``path`` for ``images`` (model input
    values)."""
    import tensorflow as tf

    from tfvis.surgery.graph import capture

    out = []
    for i in range(0, len(images), batch_size):
        act = capture(model, tf.constant(images[i:i + batch_size]), [path])[path]
        out.append(np.asarray(act, np.float32).reshape(len(act), -1))
    return np.concatenate(out)


def multifaceted(
    model,
    layer_or_class: Any,
    images: Any,
    facets: int = 4,
    *,
    layer: Any = None,
    components: int = 50,
    steps: int = 256,
    seed: int | None = None,
    param: Any = "pixel",
    input_range: tuple[float, float] | None = None,
    preprocess: Any = None,
    **kwargs: Any,
) -> Visualization:
    """One visualisation per facet of a class, a unit or any objective.

    Args:
      model: the model.
      layer_or_class: an int class (maximise its logit), an `Objective`, or a layer
        (maximise its mean squared activation).
      images: real images ``(M, H, W, C)`` in [0, 1] (e.g. the training images of the
        class), ``M >= facets``.
      facets: the number of clusters / images.
      layer: where activations are clustered; default the objective's layer, or the last
        spatial layer for a class.
      components: PCA dimensions before k-means (at most ``M`` and the activation size).
      steps: optimisation steps.
      seed: seeds PCA, k-means (``random_state``) and the optimisation (None means 0).
      param: the parameterisation (default sigmoid pixels, started at the cluster means).
      input_range, preprocess: the model's input convention (see `tfvis.visualize`).
      **kwargs: passed to `tfvis.visualize`.

    Returns:
      A `Visualization` with ``facets`` images; extras ``starts`` (the cluster mean images),
      ``clusters`` (the cluster of each input image), ``centers`` (k-means centres in PCA
      space) and ``layer`` (the clustered layer's path).

    Raises:
      ImportError: scikit-learn is missing (``pip install tfvis[featurevis]``).
    """
    try:
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("multifaceted needs scikit-learn: pip install 'tfvis[featurevis]'"
                          ) from err

    from tfvis.featurevis.loop import Visualizer
    from tfvis.surgery.layers import resolve_layer

    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be (M, H, W, C), got shape {images.shape}")
    facets = int(facets)
    if facets < 1 or len(images) < facets:
        raise ValueError(f"need 1 <= facets <= number of images, got facets={facets} for "
                         f"{len(images)} images")
    if isinstance(layer_or_class, (int, np.integer)) and not isinstance(layer_or_class, bool):
        objective = obj_lib.class_logit(int(layer_or_class))
    elif isinstance(layer_or_class, obj_lib.Objective):
        objective = layer_or_class
    else:
        objective = obj_lib.layer_norm(layer_or_class)
    if objective.batch not in (None, facets):
        raise ValueError("the objective must score every facet the same way (one channel or "
                         "class), not a batch of different ones")
    if layer is None:
        layer = next((t.layer for t in objective.terms if t.layer != obj_lib.LOGITS), None)
    path = resolve_layer(model, layer).path
    seed = 0 if seed is None else int(seed)
    probe = Visualizer(model, image_shape=images.shape[1:], transforms=(),
                       input_range=input_range, preprocess=preprocess)
    acts = layer_activations(model, np.asarray(probe._to_model(images)), path)
    dims = max(1, min(int(components), len(acts), acts.shape[1]))
    reduced = PCA(dims, random_state=seed).fit_transform(acts)
    kmeans = KMeans(facets, n_init=10, random_state=seed).fit(reduced)
    clusters = kmeans.labels_.astype(np.int64)
    starts = np.stack([images[clusters == j].mean(0) for j in range(facets)]).astype(np.float32)
    run = visualize(model, objective, start=starts, batch=facets, steps=steps, seed=seed,
                    param=param, input_range=input_range, preprocess=preprocess, **kwargs)
    return Visualization(
        run.images, run.values, run.losses, f"multifaceted({objective.description})",
        run.seeds, tuple(f"facet {j}" for j in range(facets)),
        {"starts": starts, "clusters": clusters, "centers": kmeans.cluster_centers_,
         "layer": path},
    )
