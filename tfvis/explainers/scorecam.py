"""Score-CAM (Wang et al., 2020): channel weights from the score of the input masked by each
channel's own activation map; no gradients."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
import tensorflow as tf

from tfvis.checks import positive_int
from tfvis.engine.imageops import EPS, resize
from tfvis.engine.perturbation import MaskSet
from tfvis.explainers.perturbation import ChannelCAM, Unperturbed, broadcast_fill, finite_fill


def top_variance_channels(acts: np.ndarray, k: int | None) -> np.ndarray:
    """``(N, k)`` indices of each image's ``k`` channels of largest spatial variance, in
    channel order (Faster Score-CAM); all channels when ``k`` is None or at least ``C``.
    Ties go to the lower channel index."""
    n, channels = acts.shape[0], acts.shape[-1]
    if k is None or k >= channels:
        return np.broadcast_to(np.arange(channels, dtype=np.int32), (n, channels)).copy()
    variance = acts.reshape(n, -1, channels).var(axis=1)
    order = np.argsort(-variance, axis=1, kind="stable")[:, :k]
    return np.sort(order, axis=1).astype(np.int32)


class ScoreCAM(ChannelCAM):
    """Score-CAM (Wang et al., 2020).

    Each channel ``A_k`` of the layer's activations of an image, upsampled bilinearly to the
    input and min-max normalised to [0, 1] (a constant channel gives an all-zero mask), is a
    mask ``H_k`` on that image: the masked image is ``b + H_k * (x - b)`` (``x * H_k`` for the
    default black baseline ``b = 0``). The channel's weight is the target's probability on the
    masked image minus that on the baseline image, ``w_k = p(b + H_k (x - b)) - p(b)``, and
    the map is ``ReLU(sum_k w_k A_k)`` at the layer's resolution, upsampled bilinearly to the
    input like the gradient CAM family.

    The probability: for class targets, ``sum_c t_c softmax(z)_c`` where ``z`` is the
    explained output's logits (the final softmax is bypassed as everywhere, then applied
    here; a model without a final activation gets the softmax of its outputs) and ``t`` the
    class weights; with ``logits=False`` the explained (activated) output is used as it is,
    which is the right choice for a sigmoid (multi-label) head. Callable and task targets are
    used as they are (their score, e.g. a regression value, is not a probability). The
    result's ``.scores`` stay the target's logit on the unperturbed image, as for every
    method.

    The (image, channel) pairs stream through the perturbation engine in chunks of
    ``batch_size`` masked images: each image's masks are rendered from its own activations
    chunk by chunk (per-image mask parameters), so memory does not grow with the number of
    channels. Each image costs ``C + 1`` forward passes (one for the baseline).

    Args:
      model: a functional or Sequential model (nested models allowed).
      layer: name, ``"outer/inner"`` path, index, layer object, or None for the last layer
        with a spatial (rank-4, H and W > 1) output.
      top_k: Faster Score-CAM (from the authors' repository): use only each image's ``k``
        channels with the largest spatial variance of their activation maps (the others get
        weight 0); None uses every channel.
      baseline: the image whose probability is subtracted and which shows where a mask is 0:
        a number (all channels; 0 = black), one value per channel, or an array broadcastable
        to ``(H, W, C)`` or ``(N, H, W, C)``, in the model's input units.
      relu: keep only positive evidence (as in the paper). False gives the signed map.
      **kwargs: `Explainer` options (``output``, ``logits``, ``batch_size`` = masked images
        per model call, ``verbose``, ``input`` for multi-input models).
    """

    name = "scorecam"
    title = "Score-CAM"
    gallery_order = 14
    quick_options = MappingProxyType({"top_k": 64, "batch_size": 128})

    def __init__(
        self,
        model,
        layer: Any = None,
        top_k: int | None = None,
        baseline: Any = 0.0,
        *,
        relu: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, layer, relu=relu, **kwargs)
        self.top_k = None if top_k is None else positive_int("top_k", top_k)
        self.baseline = finite_fill(baseline, "baseline")

    def num_perturbations(self, height: int, width: int) -> int:
        used = self.channels if self.top_k is None else min(self.top_k, self.channels)
        return used + 1

    def fill_values(self, x: np.ndarray) -> np.ndarray:
        return broadcast_fill(self.baseline, x, "baseline")

    def masks(self, base: Unperturbed, height: int, width: int) -> MaskSet:
        # Per image: its selected channels as (k, h, w) maps, then one constant map (an
        # all-zero mask: the baseline image itself, so p(b) goes through the same step).
        channels = top_variance_channels(base.acts, self.top_k)
        maps = np.take_along_axis(base.acts, channels[:, None, None, :], axis=-1)
        maps = np.moveaxis(maps, -1, 1)
        baseline = np.zeros_like(maps[:, :1])
        return MaskSet((np.ascontiguousarray(np.concatenate([maps, baseline], 1)),),
                       per_image=True)

    def render(self, params, height, width):
        (maps,) = params
        up = resize(maps, height, width)
        low = tf.reduce_min(up, axis=(1, 2), keepdims=True)
        span = tf.reduce_max(up, axis=(1, 2), keepdims=True) - low
        peak = tf.reduce_max(tf.abs(up), axis=(1, 2), keepdims=True)
        constant = span <= EPS * peak  # also all zeros (a dead channel): the zero mask
        keep = tf.where(constant, tf.zeros_like(up), (up - low) / tf.where(constant, 1.0, span))
        return keep, None

    def perturbed_scores(self, kind, outputs, weights, params):
        if kind is None and self.logits:
            probabilities = tf.nn.softmax(tf.cast(self._select(outputs), tf.float32), axis=-1)
            return tf.reduce_sum(probabilities * weights, axis=-1)
        return super().perturbed_scores(kind, outputs, weights, params)

    def channel_weights(self, result, base):
        channels = top_variance_channels(base.acts, self.top_k)
        scores = result.scores
        weights = np.zeros((len(scores), base.acts.shape[-1]), np.float32)
        np.put_along_axis(weights, channels, scores[:, :-1] - scores[:, -1:], axis=1)
        return weights
