"""The perturbation engine: (image x mask) pairs streamed through a model in fixed-size chunks.

Perturbation methods (occlusion, RISE, Score-CAM, Ablation-CAM, ...) score a model on many
perturbed copies of each image and combine the scores with the masks. Materialising every
copy needs memory proportional to the number of masks; this engine never does. Pairs are
numbered image-major (``k = image * M + mask``); a `tf.data` pipeline yields chunks of at most
``batch_size`` pair indices (prefetched; the last chunk is padded and flagged invalid, so
nothing retraces), and one compiled step per chunk

1. gathers the chunk's mask parameters (small per-mask arrays, e.g. a patch corner or a
   coarse random grid, shared by all images; or per-image arrays, e.g. the image's own
   activation maps) and renders its masks,
2. blends ``fill + keep * (x - fill)``, where ``x`` is what is perturbed: the images, or a
   layer's activations computed once per image,
3. scores the chunk of perturbed tensors with the method's score function, which gets the
   chunk's rows of per-image context arrays (class weights, the model's other inputs, ...)
   and decides where the perturbed tensor goes: into the model's input, or fed as a layer's
   output so that only the network after that layer runs (`tfvis.surgery.run_graph`'s
   ``feed``),
4. adds ``score * weight`` into an ``(N, h, w)`` accumulator (a scatter-add by image index),
   and/or hands back every pair's score.

Peak memory is one chunk plus the accumulator and the per-image arrays: it does not grow with
the number of masks. The step runs wherever TensorFlow places it (the GPU when it sees one);
the tensors, fill values and context are put on that device once per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tfvis.engine.compiled import compile_step

#: ``(params rows, height, width) -> (keep, weight)``, pure TF; ``height``/``width`` are those
#: of the perturbed tensor. ``keep`` is 1 where the tensor is kept and 0 where the fill shows,
#: ``(B, H, W)`` (every channel alike) or broadcastable to ``(B, H, W, C)`` (e.g.
#: ``(B, 1, 1, C)`` to drop channels). ``weight`` is what the score is accumulated against,
#: ``(B, h, w)`` like the accumulator (the mask itself for RISE, the patch for occlusion), or
#: None when nothing is accumulated (the pair scores are the result).
RenderFn = Callable[[tuple, tf.Tensor, tf.Tensor], tuple]
#: ``(perturbed (B, H, W, C), context rows) -> (scores (B,), top class (B,))``: the context
#: rows are the chunk's rows of the per-image context arrays (gathered by image index).
ScoreFn = Callable[[tf.Tensor, tuple], tuple]


@dataclass(frozen=True)
class MaskSet:
    """M masks, held as small parameters rendered chunk by chunk.

    Attributes:
      params: arrays sharing a leading axis of length M (one row per mask, shared by every
        image: patch corners, coarse grids and shifts, channel indices); with ``per_image``,
        leading axes ``(N, M)`` (one row per image and mask: e.g. each image's own activation
        maps). A chunk's rows are gathered and rendered inside the compiled step.
      per_image: whether the params have the ``(N, M, ...)`` layout.
      by_image: how many of the last params are per image only, ``(N, ...)``, gathered by the
        pair's image index (e.g. each image's pixel ranks, compared with a per-mask count):
        one copy per image, whatever the number of masks.
    """

    params: tuple
    per_image: bool = False
    by_image: int = 0

    @property
    def count(self) -> int:
        """The number of masks M (per image)."""
        return int(np.shape(self.params[0])[1 if self.per_image else 0])


@dataclass(frozen=True)
class StreamResult:
    """What `stream` returns (numpy arrays).

    Attributes:
      accumulated: ``(N, h, w)``, ``sum_j score[i, j] * weight_ij`` (zeros when the render
        gives no weight).
      scores: ``(N, M)`` target score of every perturbed image, when ``keep_scores``.
      top: ``(N, M)`` top-1 class of every perturbed image, when ``keep_scores``.
    """

    accumulated: np.ndarray
    scores: np.ndarray | None = None
    top: np.ndarray | None = None


def blend(x: tf.Tensor, fill: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
    """The combine rule of a perturbation: ``fill + keep * (x - fill)``.

    ``keep`` is ``(B, H, W)`` (every channel alike) or broadcastable to ``x``'s
    ``(B, H, W, C)``.
    """
    keep = tf.cast(keep, x.dtype)
    if keep.shape.rank == 3:
        keep = keep[..., None]
    return fill + keep * (x - fill)


def pair_step(score: ScoreFn, render: RenderFn, *, per_image: bool = False, by_image: int = 0):
    """Compiles the per-chunk step of `stream` (traced once per input signature).

    Args:
      score: model and target, see `ScoreFn`.
      render: mask rendering, see `RenderFn`; it gets the mask-indexed rows, then the
        image-indexed ones.
      per_image: whether the mask params are per image (`MaskSet.per_image`).
      by_image: how many trailing params are gathered by image only (`MaskSet.by_image`).

    Returns:
      A `tf.function` ``(acc, tensors, fill, context, params, image, mask, valid) ->
      (acc, scores, top)`` where ``image``/``mask`` are ``(B,)`` pair indices and ``valid``
      is 0 for padding.
    """

    def step(acc, tensors, fill, context, params, image, mask, valid):
        size = tf.shape(tensors)
        split = len(params) - by_image
        if per_image:
            at = tf.stack([image, mask], axis=1)
            rows = tuple(tf.gather_nd(p, at) for p in params[:split])
        else:
            rows = tuple(tf.gather(p, mask) for p in params[:split])
        rows += tuple(tf.gather(p, image) for p in params[split:])
        keep, weight = render(rows, size[1], size[2])
        perturbed = blend(tf.gather(tensors, image), tf.gather(fill, image), keep)
        scores, top = score(perturbed, tuple(tf.gather(c, image) for c in context))
        scores = tf.cast(scores, tf.float32)
        if weight is not None:
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
    tensors: np.ndarray,
    fill: np.ndarray,
    context: tuple,
    masks: MaskSet,
    batch_size: int,
    *,
    keep_scores: bool = False,
    verbose: int = 0,
    chunks: tf.data.Dataset | None = None,
    accumulator: tuple | None = None,
) -> StreamResult:
    """Scores every (image, mask) pair in chunks of ``batch_size`` and accumulates.

    Args:
      step: from `pair_step` (with ``per_image`` and ``by_image`` matching ``masks``).
      tensors: float32 ``(N, H, W, C)``, what is perturbed: the images, or a layer's
        activations of each image.
      fill: float32 ``(N, H, W, C)``, what shows where a mask's ``keep`` is 0.
      context: per-image arrays (each ``(N, ...)``) whose rows the score function gets, e.g.
        the class weights and the model's other inputs.
      masks: the mask parameters (per image: leading axes ``(N, M)``).
      batch_size: the most perturbed tensors per model call (see `chunk_size`).
      keep_scores: also return every pair's score and top-1 class (``N * M`` numbers).
      verbose: 1 shows a progress bar when there are several chunks.
      chunks: a cached `pair_chunks` dataset for these sizes and the `chunk_size` (built
        when None).
      accumulator: ``(h, w)`` of the accumulated maps (default: ``tensors``' ``(H, W)``).

    Returns:
      A `StreamResult`.
    """
    n, m = len(tensors), masks.count
    split = len(masks.params) - masks.by_image
    per_image = list(masks.params[split:]) + (list(masks.params[:split]) if masks.per_image
                                              else [])
    if any(len(p) != n for p in per_image):
        raise ValueError(f"per-image mask parameters have {[len(p) for p in per_image]} "
                         f"rows for {n} images")
    batch_size = chunk_size(n * m, batch_size)
    if chunks is None:
        chunks = pair_chunks(n, m, batch_size)
    count = -(-n * m // batch_size)
    acc = tf.zeros((n, *(accumulator or tensors.shape[1:3])), tf.float32)
    args = [_on_device(a) for a in (tensors, fill)]
    context = tuple(_on_device(c) for c in context)
    params = tuple(_on_device(p) for p in masks.params)
    scores = np.zeros(n * m if keep_scores else 0, np.float32)
    top = np.zeros(n * m if keep_scores else 0, np.int32)
    bar = keras.utils.Progbar(count, unit_name="chunk") if verbose and count > 1 else None
    for c, (image, mask, valid) in enumerate(chunks):
        acc, chunk_scores, chunk_top = step(acc, *args, context, params, image, mask, valid)
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
