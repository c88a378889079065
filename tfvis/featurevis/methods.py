"""The feature-visualisation methods: thin helpers over the one loop (`loop.Visualizer`).

* `visualize`: any objective.
* `class_model`: Simonyan et al. 2014, ``argmax_I S_c(I) - lambda ||I||^2``.
* `filters`: a grid of a layer's channels (Yosinski et al. 2015 style), chunked batches.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from tfvis.featurevis import objectives as obj_lib
from tfvis.featurevis import regularizers as reg_lib
from tfvis.featurevis.loop import Visualizer
from tfvis.featurevis.result import Visualization


def visualize(
    model,
    objective: obj_lib.Objective,
    *,
    steps: int = 256,
    image_shape: Sequence[int] | None = None,
    param: Any = "fourier",
    regularizers: Sequence[Any] = (),
    transforms: Any = "standard",
    start: Any = None,
    seed: int | Sequence[int] | None = None,
    input_range: tuple[float, float] | None = None,
    preprocess: Callable[[Any], Any] | None = None,
    optimizer: Any = None,
    learning_rate: float = 0.05,
    batch: int | None = None,
    redirect_relu: int = 0,
    normalize_gradients: bool = False,
    verbose: int = 1,
) -> Visualization:
    """Optimises images that maximise ``objective`` (lucid's ``render``, on Keras 3).

    Args:
      model: a functional or Sequential Keras model, nested models allowed; never modified.
      objective: a `tfvis.objectives` objective, e.g. ``channel("conv3", range(16))``
        (16 images, image i for channel i, in one compiled run).
      steps: optimisation steps.
      image_shape: ``(H, W)`` or ``(H, W, C)``; default the model's input shape.
      param: ``"fourier"`` (decorrelated 1/f spectrum), ``"pixel"`` (sigmoid-squashed
        pixels), or a `tfvis.featurevis.params.Pixel` / ``Fourier`` object.
      regularizers: from `tfvis.featurevis.regularizers` (L1, L2, TotalVariation,
        AlphaNorm; Blur, ClipNorm, ClipContribution with ``param="pixel"``).
      transforms: ``"standard"`` (jitter, scale, rotate) or a sequence of
        `tfvis.featurevis.transforms` (``()`` for none).
      start: images ``(N, H, W, C)`` in [0, 1] to start from; default random.
      seed: image i uses ``seed + i`` (None means 0, so the default is reproducible), or a
        list of per-image seeds. Same seeds give bitwise identical images.
      input_range: the range the model's input expects (images are optimised in [0, 1]);
        default (0, 1), or (0, 255) when ``preprocess`` is given.
      preprocess: applied inside the graph after the range mapping, e.g.
        ``keras.applications.vgg16.preprocess_input``.
      optimizer: a `keras.optimizers.Optimizer` (its config is copied); default Adam.
      learning_rate: the default Adam's learning rate.
      batch: number of images when the objective does not set it.
      redirect_relu: first steps run with redirected ReLU gradients (dead units).
      normalize_gradients: divide each image's gradient by its mean absolute value.
      verbose: 1 shows a progress bar, 0 is quiet.

    Returns:
      A `Visualization` (``images`` float32 in [0, 1], ``values`` / ``losses`` per step).

    Note:
      Each call compiles its step once. To reuse the compiled step across calls (other
      channels or classes without retracing), use one `tfvis.featurevis.Visualizer`.
    """
    vis = Visualizer(
        model, image_shape=image_shape, param=param, regularizers=regularizers,
        transforms=transforms, input_range=input_range, preprocess=preprocess,
        optimizer=optimizer, learning_rate=learning_rate,
        normalize_gradients=normalize_gradients, redirect_relu=redirect_relu,
    )
    return vis.run(objective, steps=steps, batch=batch, start=start, seed=seed,
                   verbose=verbose)


def class_model(
    model,
    classes: int | Iterable[int],
    *,
    steps: int = 256,
    l2: float = 1e-3,
    param: Any = "fourier",
    regularizers: Sequence[Any] | None = None,
    score: str = "logit",
    **kwargs: Any,
) -> Visualization:
    """Simonyan et al.'s class model: ``argmax_I S_c(I) - l2 * ||I||^2`` for each class.

    ``S_c`` is the class logit (a final softmax is bypassed), as in the paper; with
    ``score="logprob"`` it is the log-probability, which also pushes the other classes
    down, so the image is classified as ``c`` even where a class's logit grows together
    with another's. One image per class, all classes in one run.

    Args:
      model: the classifier.
      classes: a class index or several (``range(4)``).
      steps: optimisation steps.
      l2: the L2 weight (``lambda``); ignored when ``regularizers`` is given.
      param: as in `visualize`.
      regularizers: replaces the default ``[L2(l2)]``.
      score: ``"logit"`` (Simonyan) or ``"logprob"``.
      **kwargs: passed to `visualize` (``seed``, ``transforms``, ``input_range``, ...).
    """
    regs = [reg_lib.L2(l2)] if regularizers is None else list(regularizers)
    scores = {"logit": obj_lib.class_logit, "logprob": obj_lib.class_logprob}
    if score not in scores:
        raise ValueError(f"score must be 'logit' or 'logprob', got {score!r}")
    return visualize(model, scores[score](classes), steps=steps, param=param,
                     regularizers=regs, **kwargs)


def _channels_of(model, layer) -> tuple[str, int]:
    from tfvis.surgery.layers import resolve_layer

    info = resolve_layer(model, layer)
    shape = info.shape
    if not isinstance(shape, tuple) or not shape or shape[-1] is None:
        raise ValueError(f"layer {info.path!r} has output shape {shape}: no channel axis to "
                         "visualise")
    return info.path, int(shape[-1])


def filters(
    model,
    layer: Any,
    channels: Iterable[int] | None = None,
    *,
    steps: int = 256,
    batch_size: int = 64,
    neuron: bool = False,
    seed: int | None = None,
    verbose: int = 1,
    **kwargs: Any,
) -> Visualization:
    """One image per channel of ``layer``: the filter grid, ``batch_size`` channels per run.

    All chunks share one compiled step (a `Visualizer`). Channel ``channels[j]`` is optimised
    with seed ``seed + j`` whatever the chunking, so the grid does not depend on
    ``batch_size``.

    Args:
      model: the model.
      layer: a name, ``"outer/inner"`` path, index or layer object.
      channels: the channels (default all).
      steps: optimisation steps per chunk.
      batch_size: channels optimised together.
      neuron: maximise the centre unit (`objectives.neuron`) instead of the channel mean.
      seed: as in `visualize`.
      verbose: 1 shows one progress bar per chunk.
      **kwargs: `Visualizer` options (``param``, ``regularizers``, ``transforms``,
        ``image_shape``, ``input_range``, ``preprocess``, ``optimizer``, ``learning_rate``,
        ``redirect_relu``).

    Returns:
      A `Visualization` with one image per channel, labelled ``"channel c"``.
    """
    path, count = _channels_of(model, layer)
    chans = list(range(count)) if channels is None else [int(c) for c in channels]
    bad = [c for c in chans if not 0 <= c < count]
    if bad:
        raise ValueError(f"layer {path!r} has {count} channels (0..{count - 1}); got {bad}")
    if not chans:
        raise ValueError("channels is empty")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    vis = Visualizer(model, **kwargs)
    make = obj_lib.neuron if neuron else obj_lib.channel
    parts = []
    for i in range(0, len(chans), int(batch_size)):
        chunk = chans[i:i + int(batch_size)]
        parts.append(vis.run(make(path, chunk), steps=steps, batch=len(chunk), seed=seed,
                             seed_offset=i, verbose=verbose))
    return Visualization(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.values for p in parts], 1),
        np.concatenate([p.losses for p in parts], 1),
        f"{'neuron' if neuron else 'channel'}({path!r}, {len(chans)} channels)",
        tuple(s for p in parts for s in p.seeds),
        tuple(f"channel {c}" for c in chans),
        {"layer": path, "channels": tuple(chans)},
    )
