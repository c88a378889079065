"""Fooling images (Nguyen et al. 2015): unrecognisable images classified with high confidence.

`fooling_image` runs plain gradient ascent on the target class's log-probability
(`objectives.class_logprob`) from seeded noise, through the feature-visualisation loop
(`loop.Visualizer`), until the target's probability passes ``threshold``. Without
regularisers or transforms (the default) the result is structured noise that the network
nevertheless assigns to the class with >= 99% probability; with ``regularizers`` (and, for
instance, ``param="fourier"``, ``transforms="standard"``) the images become more recognisable
and the per-step probability rises more slowly or stops lower: the trade-off is in the
returned ``probabilities``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from tfvis.checks import positive_int
from tfvis.featurevis import objectives as obj_lib
from tfvis.featurevis.loop import Visualizer, image_seeds, score_images
from tfvis.featurevis.result import Visualization


def _start_images(start: Any, seeds: Sequence[int], shape: tuple[int, int, int]):
    if isinstance(start, str):
        if start == "noise":
            return np.stack([np.random.default_rng([s, 2]).random(shape) for s in seeds]
                            ).astype(np.float32)
        if start == "grey":
            return None  # the parameterisation's own start: grey plus small noise
        raise ValueError(f"start must be 'noise', 'grey' or images, got {start!r}")
    return start


def fooling_image(
    model,
    target_class: int | Iterable[int],
    *,
    threshold: float = 0.99,
    steps: int = 512,
    check_every: int = 16,
    param: Any = "pixel",
    regularizers: Sequence[Any] = (),
    transforms: Any = (),
    start: Any = "noise",
    learning_rate: float = 0.05,
    optimizer: Any = None,
    image_shape: Sequence[int] | None = None,
    input_range: tuple[float, float] | None = None,
    preprocess: Callable[[Any], Any] | None = None,
    seed: int | Sequence[int] | None = None,
    verbose: int = 1,
) -> Visualization:
    """Images the model assigns to ``target_class`` with probability >= ``threshold``.

    Gradient ascent on ``log p(target | image)`` (logits: a final softmax is bypassed) from
    seeded uniform noise, one image per class in one batch. Every ``check_every`` steps the
    images are scored (untransformed); the run stops when every image has passed
    ``threshold`` or after ``steps`` steps (one run: the optimiser's moments carry on across
    checks; ``check_every=steps`` checks only at the end).

    Args:
      model: a functional or Sequential Keras classifier; never modified.
      target_class: a class id, or several (one image each, optimised together).
      threshold: the probability to reach, in (0, 1).
      steps: the most steps to run.
      check_every: steps between two checks of the probability.
      param: ``"pixel"`` (default: plain pixels, as in Nguyen et al.'s gradient-ascent
        images), ``"fourier"`` or a parameterisation object (`tfvis.featurevis.params`).
      regularizers: as in `tfvis.visualize` (none by default: an unregularised ascent).
      transforms: ``()`` (default) or ``"standard"`` / a sequence of transforms.
      start: ``"noise"`` (uniform per pixel, seeded), ``"grey"`` (the parameterisation's own
        start), or images ``(N, H, W, C)`` in [0, 1].
      learning_rate: Adam's learning rate (``optimizer`` replaces Adam).
      optimizer: a `keras.optimizers.Optimizer` (its config is copied).
      image_shape: ``(H, W)`` or ``(H, W, C)``; default the model's input shape.
      input_range, preprocess: the model's input convention (see `tfvis.visualize`).
      seed: image i uses ``seed + i`` (None means 0) or the i-th of a list.
      verbose: 1 shows a progress bar, 0 is quiet.

    Returns:
      A `Visualization` whose ``values`` are the target's log-probability per step (on the
      image each step saw), with extras ``probabilities`` (``exp(values)``, ``(steps_used,
      N)``), ``final_probability`` ``(N,)`` of the returned images, ``reached`` (bool
      ``(N,)``: final probability >= threshold), ``first_step`` (int ``(N,)``: the first
      step whose image passed the threshold, -1 if none), ``steps_used``, ``threshold`` and
      ``target_class``.

    Raises:
      ValueError: a bad threshold, steps or check_every, or class ids outside the model's.
    """
    threshold = float(threshold)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be a probability in (0, 1), got {threshold}")
    steps = positive_int("steps", steps)
    check_every = positive_int("check_every", check_every)
    objective = obj_lib.class_logprob(target_class)
    classes = objective.terms[0].arrays()["index"]
    out_shape = tuple(model.outputs[0].shape) if getattr(model, "outputs", None) else ()
    if len(out_shape) == 2 and out_shape[-1] and int(classes.max()) >= out_shape[-1]:
        raise ValueError(f"target_class must be in 0..{out_shape[-1] - 1} (the model has "
                         f"{out_shape[-1]} classes), got {classes.tolist()}")
    vis = Visualizer(model, image_shape=image_shape, param=param, regularizers=regularizers,
                     transforms=transforms, input_range=input_range, preprocess=preprocess,
                     optimizer=optimizer, learning_rate=learning_rate)
    n = len(classes)
    seeds = image_seeds(seed, n)

    checked: list[np.ndarray] = []  # the probabilities of the last check

    def probability(images: np.ndarray) -> np.ndarray:
        return np.exp(score_images(model, objective, images, input_range=input_range,
                                   preprocess=preprocess)).astype(np.float32)

    def passed(images: np.ndarray) -> bool:
        checked[:] = [probability(images)]
        return bool(np.all(checked[0] >= threshold))

    run = vis.run(objective, steps=steps, batch=n, start=_start_images(start, seeds, vis.shape),
                  seed=list(seeds), seed_offset=0, verbose=verbose, stop=passed,
                  stop_every=check_every)
    images, used = run.images, len(run.values)
    # a run that stopped early ended on the images its last check scored
    final = checked[0] if used < steps else probability(images)
    vals = run.values.astype(np.float32)
    probs = np.exp(vals).astype(np.float32)
    passed = probs >= threshold
    first = np.where(passed.any(0), passed.argmax(0), -1)
    return Visualization(
        images, vals, run.losses.astype(np.float32),
        f"fooling {objective.description}", seeds,
        tuple(f"class {int(c)}: p={p:.3f}" for c, p in zip(classes, final)),
        {"probabilities": probs, "final_probability": final, "reached": final >= threshold,
         "first_step": first.astype(np.int64), "steps_used": used, "threshold": threshold,
         "target_class": classes.astype(np.int64)},
    )
