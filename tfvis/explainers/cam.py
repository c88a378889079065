"""The CAM family: a class activation map is ``ReLU(sum_k w_k A_k)`` upsampled to the input
(CAM itself, as in Zhou et al., keeps the signed ``sum_k w_k A_k``: ``relu=False`` by default).

Each variant is only its weight formula, ``channel_weights(acts, grads, class_weights)``,
returning channel weights ``(N, C)`` or element-wise weights ``(N, h, w, C)``; a variant whose
map is not a weighted sum overrides ``cam_map`` instead. The capture, the gradient, the ReLU and
the upsampling are shared.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfvis.explainers.base import Explainer
from tfvis.surgery import gap_dense_head, resolve_layer
from tfvis.surgery.layers import describe, layer_table


class _CAMFamily(Explainer):
    """Shared machinery of layer-activation maps.

    Args:
      model: a functional or Sequential model (nested models allowed).
      layer: name, ``"outer/inner"`` path, index, layer object, or None for the last layer
        with a spatial (rank-4, H and W > 1) output.
      relu: keep only positive evidence (as in the papers). False gives the signed map.
      **kwargs: `Explainer` options (``output``, ``logits``, ``batch_size``, ``verbose``).
    """

    uses_gradients: bool = True
    needs_internals = True

    def __init__(self, model, layer: Any = None, *, relu: bool = True, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.relu = bool(relu)
        self.layer = self._resolve(layer)

    def _resolve(self, layer: Any) -> str:
        info = resolve_layer(self.model, layer)
        if not info.is_spatial:
            spatial = [i for i in layer_table(self.model) if i.is_spatial]
            raise ValueError(
                f"layer {info.path!r} ({type(info.layer).__name__}) has output shape "
                f"{info.shape}; {self.title} needs a rank-4 (N, H, W, C) feature map with H and "
                "W > 1. Layers that qualify:\n" + describe(spatial)
            )
        return info.path

    def channel_weights(self, acts: tf.Tensor, grads: tf.Tensor | None, class_weights) -> tf.Tensor:
        """Weights of the features: ``(N, C)`` per channel or ``(N, h, w, C)`` per element.

        ``acts`` and ``grads`` (d score / d acts, None when ``uses_gradients`` is False) are
        float32 ``(N, h, w, C)``; ``class_weights`` the ``(N, K)`` class weights (None for
        callable targets).
        """
        raise NotImplementedError

    def cam_map(self, acts: tf.Tensor, grads: tf.Tensor | None, class_weights) -> tf.Tensor:
        """The ``(N, h, w)`` map before ReLU: ``sum_c weights * acts`` over channels."""
        weights = self.channel_weights(acts, grads, class_weights)
        if weights.shape.rank == 2:
            return tf.einsum("nhwc,nc->nhw", acts, weights)
        return tf.reduce_sum(acts * weights, axis=-1)

    def explain_batch(self, x, score):
        captured = {}
        with tf.GradientTape(watch_accessed_variables=False) as tape:

            def hook(acts):
                if self.uses_gradients:
                    tape.watch(acts)
                captured["acts"] = acts
                return acts

            scores, class_weights = score(self.forward(x, hooks={self.layer: hook}))
        grads = None
        if self.uses_gradients:
            grads = tape.gradient(scores, captured["acts"])
            grads = tf.zeros_like(captured["acts"]) if grads is None else grads
            grads = tf.cast(grads, tf.float32)
        acts = tf.cast(captured["acts"], tf.float32)
        cam = self.cam_map(acts, grads, class_weights)
        if self.relu:
            cam = tf.nn.relu(cam)
        cam = tf.image.resize(cam[..., None], tf.shape(x)[1:3], method="bilinear")[..., 0]
        return cam, scores, class_weights


class CAM(_CAMFamily):
    """Class Activation Mapping (Zhou et al., 2016).

    The channel weights are the class's column of the Dense layer that follows global average
    pooling: ``M_c = sum_k W[k, c] A_k``. Needs that head (otherwise a ValueError says so) and
    class targets (int, per-sample ints, one-hot or soft weights).

    Unlike the rest of the CAM family, the map is **signed by default** (``relu=False``), as in
    the paper (whose code min-max normalises ``M_c``, subtracting its minimum; no ReLU):
    regions that argue against the class are the low end of ``maps`` rather than clipped to
    zero. With ``relu=True`` CAM applies Grad-CAM's ReLU, and on a GAP -> Dense head with
    logit targets ``ReLU(CAM raw) / (h * w)`` equals Grad-CAM's raw map, so the two normalised
    maps are identical.

    Args:
      model: a functional or Sequential model with a GAP -> Dense head.
      layer: None (the features pooled by the head) or a name, path or layer for them.
      relu: False (default, the paper's signed map) or True (positive evidence only).
      **kwargs: `Explainer` options (``output``, ``logits``, ``batch_size``, ``verbose``).
    """

    name = "cam"
    title = "CAM"
    gallery_order = 10
    uses_gradients = False

    def __init__(self, model, layer: Any = None, *, relu: bool = False, **kwargs) -> None:
        super().__init__(model, layer, relu=relu, **kwargs)

    def _resolve(self, layer: Any) -> str:
        if self.output_index is None:
            raise ValueError("CAM on a multi-output model needs output=<name or index>")
        self._head = gap_dense_head(self.model, self.output_index)
        features = self._head.feature_paths
        path = super()._resolve(features[-1] if layer is None else layer)
        if path not in features:
            raise ValueError(
                f"CAM explains the features pooled by the GAP -> Dense head, i.e. layer "
                f"{features[-1]!r}; got layer {path!r}. Leave layer=None, or use GradCAM for "
                "other layers."
            )
        return path

    def channel_weights(self, acts, grads, class_weights):
        if class_weights is None:
            raise ValueError("CAM needs class targets (ints or weights), not a callable")
        kernel = tf.cast(self._head.dense.kernel, tf.float32)
        return tf.matmul(class_weights, kernel, transpose_b=True)


class GradCAM(_CAMFamily):
    """Grad-CAM (Selvaraju et al., 2017): weights are the spatial mean of d score / d A.

    On a GAP -> Dense head with logit targets it equals CAM divided by the pooled area.
    """

    name = "gradcam"
    title = "Grad-CAM"
    gallery_order = 11

    def channel_weights(self, acts, grads, class_weights):
        return tf.reduce_mean(grads, axis=(1, 2))


class GradCAMPlusPlus(_CAMFamily):
    """Grad-CAM++ (Chattopadhay et al., 2018), closed form with the exponential score.

    With ``Y = exp(S)``, higher derivatives of Y are powers of ``g = dS/dA`` times Y, giving
    ``alpha = g^2 / (2 g^2 + sum_ab A * g^3)`` and ``w = sum_ab alpha * ReLU(g)``. The common
    positive factor ``exp(S)`` is dropped (it only scales each map). Zero denominators give
    alpha = 0, never NaN.
    """

    name = "gradcampp"
    title = "Grad-CAM++"
    gallery_order = 12

    def channel_weights(self, acts, grads, class_weights):
        g2 = tf.square(grads)
        denom = 2.0 * g2 + tf.reduce_sum(acts, axis=(1, 2), keepdims=True) * g2 * grads
        safe = tf.where(denom != 0.0, denom, tf.ones_like(denom))
        alpha = tf.where(denom != 0.0, g2 / safe, tf.zeros_like(denom))
        return tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2))


class CounterfactualGradCAM(_CAMFamily):
    """Counterfactual Grad-CAM (Selvaraju et al., 2017, sec. 5): Grad-CAM with negated
    gradients, highlighting the regions whose removal would raise the class score (evidence
    against the class)."""

    name = "counterfactual_gradcam"
    title = "Counterfactual Grad-CAM"
    gallery_order = 13

    def channel_weights(self, acts, grads, class_weights):
        return -tf.reduce_mean(grads, axis=(1, 2))


def _safe_divide(numerator: tf.Tensor, denominator: tf.Tensor) -> tf.Tensor:
    """``numerator / denominator`` with 0 where the denominator is 0 (never NaN)."""
    nonzero = denominator != 0.0
    return tf.where(nonzero, numerator / tf.where(nonzero, denominator, 1.0), 0.0)


class LayerCAM(_CAMFamily):
    """Layer-CAM (Jiang et al., 2021): element-wise weights ``ReLU(d score / d A)``.

    ``M = ReLU(sum_c ReLU(g_c) * A_c)``: each location is weighted by its own positive
    gradient, so shallow layers give fine-grained maps.
    """

    name = "layercam"
    title = "Layer-CAM"
    gallery_order = 16

    def channel_weights(self, acts, grads, class_weights):
        return tf.nn.relu(grads)


class XGradCAM(_CAMFamily):
    """XGrad-CAM (Fu et al., 2020): ``w_c = sum(A_c * g_c) / sum(A_c)`` over locations.

    The weights that satisfy the paper's sensitivity and conservation axioms; channels whose
    activations sum to zero get weight 0.
    """

    name = "xgradcam"
    title = "XGrad-CAM"
    gallery_order = 17

    def channel_weights(self, acts, grads, class_weights):
        return _safe_divide(tf.reduce_sum(acts * grads, axis=(1, 2)),
                            tf.reduce_sum(acts, axis=(1, 2)))


class HiResCAM(_CAMFamily):
    """HiResCAM (Draelos & Carin, 2020): ``M = ReLU(sum_c g_c * A_c)``, element-wise.

    Unlike Grad-CAM it does not average the gradient over locations, so the map shows where
    the score's gradient and the activations agree. On a GAP -> Dense head the gradient is the
    same at every location and HiResCAM equals Grad-CAM (Draelos & Carin's equivalence).
    """

    name = "hirescam"
    title = "HiResCAM"
    gallery_order = 18

    def channel_weights(self, acts, grads, class_weights):
        return grads


class EigenCAM(_CAMFamily):
    """Eigen-CAM (Muhammad & Yeasin, 2020): the first principal component of the activations.

    The ``(h * w, C)`` activations of each image are projected on their first right-singular
    vector, ``M = A V_1`` (as in the paper, without centring; pytorch-grad-cam subtracts the
    channel means first). The singular vector's sign is arbitrary: it is chosen so the
    projection sums to a non-negative value. Class-agnostic: the map does not depend on the
    target (``.scores`` still report it).
    """

    name = "eigencam"
    title = "Eigen-CAM"
    gallery_order = 19
    uses_gradients = False

    def cam_map(self, acts, grads, class_weights):
        shape = tf.shape(acts)
        flat = tf.reshape(acts, [shape[0], shape[1] * shape[2], shape[3]])
        _, _, v = tf.linalg.svd(flat, full_matrices=False)
        projection = tf.einsum("npc,nc->np", flat, v[:, :, 0])
        sign = tf.where(tf.reduce_sum(projection, axis=1, keepdims=True) < 0.0, -1.0, 1.0)
        return tf.reshape(projection * sign, shape[:3])
