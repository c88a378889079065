"""DeepDream with an image pyramid (octaves), on the one optimisation loop.

From the smallest octave up: the image at that scale plus the detail dreamed so far
(upscaled) is optimised for ``steps_per_octave`` steps of normalised gradient ascent on the
layer objective (random roll each step; tiles when the image is larger than ``tile_size``);
the detail is what the optimisation added at that scale. The last octave is the input's own
size, so the output has the input's shape and stays in [0, 1].
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from tfvis.featurevis import objectives as obj_lib
from tfvis.featurevis.loop import Visualizer, image_seeds, score_images
from tfvis.featurevis.params import Pixel
from tfvis.featurevis.result import Visualization
from tfvis.featurevis.transforms import Roll


def _objective(spec: Any) -> obj_lib.Objective:
    if isinstance(spec, obj_lib.Objective):
        return spec
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError("layer_or_objective is an empty list")
        out = obj_lib.layer_norm(spec[0])
        for layer in spec[1:]:
            out = out + obj_lib.layer_norm(layer)
        return out
    return obj_lib.layer_norm(spec)


def octave_shapes(h: int, w: int, octaves: int, octave_scale: float) -> list[tuple[int, int]]:
    """Image sizes from the smallest octave to ``(h, w)``."""
    return [(max(1, round(h / octave_scale ** k)), max(1, round(w / octave_scale ** k)))
            for k in reversed(range(octaves))]


def deepdream(
    model,
    image: Any,
    layer_or_objective: Any,
    *,
    octaves: int = 4,
    octave_scale: float = 1.4,
    steps_per_octave: int = 20,
    learning_rate: float = 0.01,
    tile_size: int | None = 512,
    seed: int | Sequence[int] | None = None,
    input_range: tuple[float, float] | None = None,
    preprocess: Callable[[Any], Any] | None = None,
    verbose: int = 1,
) -> Visualization:
    """DeepDream (Mordvintsev et al. 2015) from a real image.

    Args:
      model: a functional or Sequential model (fully convolutional up to the layer, or with
        a fixed input size when ``octaves=1``).
      image: ``(H, W, C)`` or ``(N, H, W, C)`` in [0, 1].
      layer_or_objective: a layer (maximise its mean squared activation), a list of layers
        (their sum), or any `tfvis.objectives` objective.
      octaves: pyramid levels (1: plain gradient ascent from the image).
      octave_scale: size ratio between levels.
      steps_per_octave: gradient steps at each level.
      learning_rate: step size of the normalised gradient (display units per step).
      tile_size: largest tile the gradient is computed on (memory); None: whole image.
      seed: seeds the random rolls (None means 0). The last octave uses ``seed`` itself.
      input_range, preprocess: the model's input convention (see `tfvis.visualize`).
      verbose: 1 shows progress bars.

    Returns:
      A `Visualization` whose ``images`` have the input's shape, in [0, 1];
      ``octave_values`` is ``(octaves, 2, N)``: the objective before and after each octave
      (on the unrolled image at that octave's size), ``octave_shapes`` the sizes.
    """
    import keras

    from tfvis.engine.imageops import resize

    arr = np.asarray(image, np.float32)
    single = arr.ndim == 3
    if single:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"image must be (H, W, C) or (N, H, W, C), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise ValueError("image must be finite and in [0, 1]; scale it (e.g. / 255.0) and give "
                         "the model's range with input_range= or preprocess=")
    if int(octaves) < 1 or float(octave_scale) <= 1.0:
        raise ValueError(f"need octaves >= 1 and octave_scale > 1, got {octaves}, {octave_scale}")
    objective = _objective(layer_or_objective)
    n, h, w, c = arr.shape
    shapes = octave_shapes(h, w, int(octaves), float(octave_scale))
    if min(min(s) for s in shapes) < 8:
        raise ValueError(f"the smallest octave would be {shapes[0]}: use fewer octaves or a "
                         "smaller octave_scale")
    base_seeds = image_seeds(seed, n)
    optimizer = keras.optimizers.SGD(learning_rate)
    detail = np.zeros((n,) + shapes[0] + (c,), np.float32)
    values, losses, per_octave = [], [], []
    vis = None
    result = arr
    for k, (oh, ow) in enumerate(shapes):
        small = arr if (oh, ow) == (h, w) else np.asarray(resize(arr, oh, ow))
        if detail.shape[1:3] != (oh, ow):
            detail = np.asarray(resize(detail, oh, ow))
        start = np.clip(small + detail, 0.0, 1.0)
        vis = Visualizer(model, image_shape=(oh, ow, c), param=Pixel("clip"),
                         transforms=(Roll(),), input_range=input_range, preprocess=preprocess,
                         optimizer=optimizer, normalize_gradients=True, tile_size=tile_size)
        offset = (len(shapes) - 1 - k) * 1_000_003
        seeds = [s + offset for s in base_seeds]
        before = score_images(model, objective, start, input_range=input_range,
                              preprocess=preprocess)
        run = vis.run(objective, steps=steps_per_octave, start=start, seed=seeds,
                      verbose=verbose)
        after = score_images(model, objective, run.images, input_range=input_range,
                             preprocess=preprocess)
        per_octave.append(np.stack([before, after]))
        values.append(run.values)
        losses.append(run.losses)
        detail = run.images - small
        result = run.images
    return Visualization(
        result.astype(np.float32), np.concatenate(values), np.concatenate(losses),
        f"deepdream({objective.description}, octaves={octaves})", base_seeds,
        tuple(f"dream {i}" for i in range(n)),
        {"octave_values": np.stack(per_octave), "octave_shapes": tuple(shapes)},
    )
