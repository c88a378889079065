"""The perturbation engine: (image x mask) pairs streamed through a model in fixed-size chunks.

Perturbation methods (occlusion, RISE, ...) score a model on many masked copies of each image
and combine the scores with the masks. Materialising every copy needs memory proportional to
the number of masks; this engine never does. Pairs are numbered image-major
(``k = image * M + mask``); a `tf.data` pipeline yields chunks of at most ``batch_size`` pair
indices (prefetched; the last chunk is padded and flagged invalid, so nothing retraces), and one
compiled step per chunk

1. renders the chunk's masks at full resolution from small per-mask parameters (a few numbers
   per mask, e.g. a patch corner or a coarse random grid),
2. blends ``fill + keep * (image - fill)``,
3. runs the model once on the chunk of perturbed images and scores the target,
4. adds ``score * weight`` into an ``(N, H, W)`` accumulator (a scatter-add by image index).

Peak memory is one chunk plus the accumulator: it does not grow with the number of masks. The
step runs wherever TensorFlow places it (the GPU when it sees one); the inputs, fill values and
accumulator are put on that device once per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfvis.engine.compiled import compile_step

#: ``(params chunk, height, width) -> (keep (B, H, W), weight (B, H, W))``, pure TF.
#: ``keep`` is 1 where the image is kept and 0 where the fill shows; ``weight`` is what the
#: score is accumulated against (the mask itself for RISE, the patch for occlusion).
RenderFn = Callable[[tuple, tf.Tensor, tf.Tensor], tuple]
#: ``(perturbed inputs (B, H, W, C), class weights (B, K)) -> (scores (B,), top class (B,))``.
ScoreFn = Callable[[tf.Tensor, tf.Tensor], tuple]


@dataclass(frozen=True)
class MaskSet:
    """M masks over one image size, held as small per-mask parameters.

    Attributes:
      params: arrays sharing a leading axis of length M (e.g. patch corners, or coarse grids
        and shifts); a chunk's rows are gathered and rendered inside the compiled step.
    """

    params: tuple

    @property
    def count(self) -> int:
        """The number of masks M."""
        return len(self.params[0])


@dataclass(frozen=True)
class StreamResult:
    """What `stream` returns (numpy arrays).

    Attributes:
      accumulated: ``(N, H, W)``, ``sum_j score[i, j] * weight_j``.
      scores: ``(N, M)`` target score of every perturbed image, when ``keep_scores``.
      top: ``(N, M)`` top-1 class of every perturbed image, when ``keep_scores``.
    """

    accumulated: np.ndarray
    scores: np.ndarray | None = None
    top: np.ndarray | None = None


def pair_step(score: ScoreFn, render: RenderFn):
    """Compiles the per-chunk step of `stream` (traced once per input signature).

    Args:
      score: model and target, see `ScoreFn`.
      render: mask rendering, see `RenderFn`.

    Returns:
      A `tf.function` ``(acc, images, fill, weights, params, image, mask, valid) ->
      (acc, scores, top)`` where ``image``/``mask`` are ``(B,)`` pair indices and ``valid``
      is 0 for padding.
    """

    def step(acc, images, fill, weights, params, image, mask, valid):
        size = tf.shape(images)
        keep, weight = render(tuple(tf.gather(p, mask) for p in params), size[1], size[2])
        base = tf.gather(fill, image)
        perturbed = base + keep[..., None] * (tf.gather(images, image) - base)
        scores, top = score(perturbed, tf.gather(weights, image))
        scores = tf.cast(scores, tf.float32)
        contribution = (scores * valid)[:, None, None] * tf.cast(weight, tf.float32)
        acc = tf.tensor_scatter_nd_add(acc, image[:, None], contribution)
        return acc, scores, tf.cast(top, tf.int32)

    return compile_step(step)


def chunk_size(total: int, batch_size: int) -> int:
    """The chunk size used for ``total`` pairs: at most ``batch_size``, and as even as the
    number of chunks allows, so the padded last chunk wastes fewer than one pair per chunk."""
    chunks = -(-total // batch_size)
    return -(-total // chunks)


def pair_chunks(num_images: int, num_masks: int, batch_size: int) -> tf.data.Dataset:
    """A `tf.data` pipeline of ``(image, mask, valid)`` index chunks of ``batch_size`` pairs.

    Only indices travel through the pipeline (a few bytes per pair); the last chunk is padded
    with copies of the last pair and ``valid = 0``.
    """
    total = num_images * num_masks

    def chunk(c):
        k = c * batch_size + tf.range(batch_size, dtype=tf.int64)
        valid = tf.cast(k < total, tf.float32)
        k = tf.minimum(k, total - 1)
        return tf.cast(k // num_masks, tf.int32), tf.cast(k % num_masks, tf.int32), valid

    chunks = -(-total // batch_size)
    return tf.data.Dataset.range(chunks).map(chunk).prefetch(tf.data.AUTOTUNE)


def _on_device(array) -> tf.Tensor:
    # tf.constant lives on the host; the identity puts it where the step runs, once per run.
    return tf.identity(tf.convert_to_tensor(array))


def stream(
    step,
    images: np.ndarray,
    fill: np.ndarray,
    weights: np.ndarray,
    masks: MaskSet,
    batch_size: int,
    *,
    keep_scores: bool = False,
    verbose: int = 0,
    chunks: tf.data.Dataset | None = None,
) -> StreamResult:
    """Scores every (image, mask) pair in chunks of ``batch_size`` and accumulates.

    Args:
      step: from `pair_step`.
      images: float32 ``(N, H, W, C)``.
      fill: float32 ``(N, H, W, C)``, what shows where a mask's ``keep`` is 0.
      weights: float32 ``(N, K)`` class weights per image (passed to the score function).
      masks: the mask parameters.
      batch_size: the most perturbed images per model call (see `chunk_size`).
      keep_scores: also return every pair's score and top-1 class (``N * M`` numbers).
      verbose: 1 shows a progress bar when there are several chunks.
      chunks: a cached `pair_chunks` dataset for these sizes and the `chunk_size` (built
        when None).

    Returns:
      A `StreamResult`.
    """
    n, m = len(images), masks.count
    batch_size = chunk_size(n * m, batch_size)
    if chunks is None:
        chunks = pair_chunks(n, m, batch_size)
    count = -(-n * m // batch_size)
    acc = tf.zeros(images.shape[:3], tf.float32)
    args = [_on_device(a) for a in (images, fill, weights)]
    params = tuple(_on_device(p) for p in masks.params)
    scores = np.zeros(n * m if keep_scores else 0, np.float32)
    top = np.zeros(n * m if keep_scores else 0, np.int32)
    bar = keras.utils.Progbar(count, unit_name="chunk") if verbose and count > 1 else None
    for c, (image, mask, valid) in enumerate(chunks):
        acc, chunk_scores, chunk_top = step(acc, *args, params, image, mask, valid)
        if keep_scores:
            start = c * batch_size
            stop = min(start + batch_size, n * m)
            scores[start:stop] = chunk_scores.numpy()[: stop - start]
            top[start:stop] = chunk_top.numpy()[: stop - start]
        if bar is not None:
            bar.update(c + 1)
    if not keep_scores:
        return StreamResult(acc.numpy())
    return StreamResult(acc.numpy(), scores.reshape(n, m), top.reshape(n, m))
