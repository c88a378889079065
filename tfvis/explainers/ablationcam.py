"""Ablation-CAM (Desai & Ramaswamy, 2020): channel weights from the score drop when a channel
of the layer's activations is zeroed; no gradients."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import tensorflow as tf

from tfvis.engine.perturbation import MaskSet
from tfvis.explainers.perturbation import ChannelCAM


class AblationCAM(ChannelCAM):
    """Ablation-CAM (Desai & Ramaswamy, WACV 2020).

    The weight of channel k is the relative drop of the target score when that channel of
    the layer's activations is zeroed (ablated): ``w_k = (y - y_k) / y``, where ``y`` is the
    target's score (the logit by default) on the unperturbed image and ``y_k`` the score with
    channel k set to 0 everywhere. The map is ``ReLU(sum_k w_k A_k)`` at the layer's
    resolution, upsampled bilinearly to the input like the gradient CAM family.

    Dividing by ``y`` scales an image's map by ``1 / y``, which the [0, 1] maps do not show,
    but a negative ``y`` flips the sign of every weight (as in the paper's formula). Where
    ``y == 0`` the division is skipped (``w_k = y - y_k``): no NaN, and the map shows the same
    evidence.

    Batched at the layer: the activations are computed once per image (in chunks of
    ``batch_size`` images, together with ``y``), and only the network after the layer runs
    on each (image, channel) pair, the ablated activations being fed in its place, in chunks
    of ``batch_size`` pairs. Each image costs one full forward pass plus ``C`` passes of the
    network after the layer.

    Args:
      model: a functional or Sequential model (nested models allowed).
      layer: name, ``"outer/inner"`` path, index, layer object, or None for the last layer
        with a spatial (rank-4, H and W > 1) output.
      relu: keep only positive evidence (as in the paper). False gives the signed map.
      **kwargs: `Explainer` options (``output``, ``logits``, ``batch_size`` = ablated
        activations per call of the network's suffix, ``verbose``, ``input`` for
        multi-input models).
    """

    name = "ablationcam"
    title = "Ablation-CAM"
    gallery_order = 15
    quick_options = MappingProxyType({"batch_size": 256})
    perturbs_layer = True

    def num_perturbations(self, height: int, width: int) -> int:
        return self.channels

    def masks(self, base, height, width):
        self.channels = base.acts.shape[-1]  # the layer's static shape may not know it
        return MaskSet((np.arange(self.channels, dtype=np.int32),))

    def render(self, params, height, width):
        (channel,) = params
        keep = 1.0 - tf.one_hot(channel, self.channels, dtype=tf.float32)
        return keep[:, None, None, :], None  # (B, 1, 1, C): channel k of pair k is zeroed

    def channel_weights(self, result, base):
        y = base.scores[:, None].astype(np.float32)
        drop = y - result.scores
        return np.where(y != 0, drop / np.where(y != 0, y, 1), drop).astype(np.float32)
