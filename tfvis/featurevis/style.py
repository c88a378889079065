"""Neural style transfer (Gatys, Ecker & Bethge, CVPR 2016) on the one optimisation loop.

An image is optimised to keep the content image's feature maps at the content layers and the
style image's feature statistics (Gram matrices) at the style layers:

    L = alpha * L_content + beta * sum_l w_l E_l (+ tv_weight * TV^2)

with ``L_content = 1/2 sum_c ||F_c - P_c||^2`` summed over the content layers
(`objectives.feature_match` with ``normalize=False``) and
``E_l = sum (G_l - A_l)^2 / (4 N_l^2 M_l^2)`` (`objectives.gram_match`; ``N_l`` channels,
``M_l`` positions). The losses are in the model's feature units (the content loss grows as
the features squared, the style loss as their fourth power), so ``alpha / beta`` depends on
the model and its input scale: Gatys et al.'s 1e-3 suits keras.applications VGG16 / VGG19
with ImageNet weights and their ``preprocess_input`` (0..255 inputs); a VGG fed [0, 1] images
(random weights, ``input_range`` left at (0, 1)) needs about 255^2 times more style weight
(``beta`` ~1e6). The content and style targets are step inputs: other images of the same
shape reuse the compiled step (`StyleTransfer`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from tfvis.featurevis import objectives as obj_lib
from tfvis.featurevis import params as params_lib
from tfvis.featurevis import regularizers as reg_lib
from tfvis.featurevis.inversion import check_images, layer_features
from tfvis.featurevis.loop import ShapeVisualizers, Visualizer, image_seeds, score_images
from tfvis.featurevis.result import Visualization

#: Gatys et al.'s style layers, as keras.applications VGG16 / VGG19 name them.
VGG_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1",
                    "block5_conv1")
#: Gatys et al.'s content layer (conv4_2).
VGG_CONTENT_LAYERS = ("block4_conv2",)


def gram_matrix(features: Any, normalize: bool = False) -> np.ndarray:
    """Gram matrices ``G_cd = sum_positions F_c F_d`` of feature maps.

    Args:
      features: ``(N, ..., C)`` activations (e.g. ``(N, H, W, C)``).
      normalize: divide by the number of positions ``M`` (what `objectives.gram_match`
        takes as its target, so style images of any size can be matched).

    Returns:
      float32 ``(N, C, C)``.
    """
    import tensorflow as tf

    arr = np.asarray(features, np.float32)
    if arr.ndim < 2:
        raise ValueError(f"features must be (N, ..., C) activations, got shape {arr.shape}")
    out = np.asarray(obj_lib.gram_sums(tf.constant(arr)), np.float32)
    if normalize:
        out = out / np.float32(max(1, int(np.prod(arr.shape[1:-1]))))
    return out


def conv_layers(model) -> list[str]:
    """Paths of ``model``'s convolution layers with spatial outputs (nested models too)."""
    from tfvis.surgery.graph import layer_table

    return [i.path for i in layer_table(model)
            if i.is_spatial and "conv" in type(i.layer).__name__.lower()]


def _resolve(model, layers: Any, what: str) -> tuple[str, ...] | None:
    from tfvis.surgery.layers import resolve_layer

    if layers is None:
        return None
    specs = [layers] if isinstance(layers, (str, int)) or not isinstance(
        layers, (list, tuple)) else list(layers)
    if not specs:
        raise ValueError(f"{what} is empty: give at least one layer")
    return tuple(dict.fromkeys(resolve_layer(model, s).path for s in specs))


def _vgg_default(model, names: Sequence[str], what: str) -> tuple[str, ...]:
    from tfvis.surgery.layers import resolve_layer

    try:
        return tuple(resolve_layer(model, n).path for n in names)
    except ValueError:
        pass
    convs = conv_layers(model)
    listing = ", ".join(convs[:40]) + (f", ... ({len(convs)} in all)" if len(convs) > 40 else "")
    raise ValueError(
        f"model {model.name!r} is not a keras.applications VGG16/VGG19 (it has no layers "
        f"{', '.join(names)}), so there is no default {what}: pass {what}=[...] with some of "
        f"its convolution layers: {listing or '(none found)'}"
    )


class StyleTransfer:
    """Gatys et al.'s style transfer on one model, reusing compiled steps across calls.

    Args:
      model: a functional or Sequential Keras model (nested models allowed). Never modified.
      content_layers: layers whose feature maps are kept; default ``block4_conv2`` for
        keras.applications VGG16 / VGG19, required for other models.
      style_layers: layers whose Gram matrices are matched; default ``block1_conv1`` ..
        ``block5_conv1`` for VGG, required for other models.
      style_weights: ``w_l`` per style layer; default ``1 / len(style_layers)`` each.
      alpha, beta: content and style weights (only their ratio and ``tv_weight`` matter to
        Adam).
      tv_weight: weight of the squared total variation of the display-space image.
      param: ``"pixel"`` (pixels clipped to [0, 1]) or a `params` object.
      learning_rate: the default Adam's (display units per step).
      optimizer: a `keras.optimizers.Optimizer` (its config is copied); default Adam.
      input_range, preprocess: the model's input convention (see `tfvis.visualize`).
    """

    def __init__(
        self,
        model,
        *,
        content_layers: Any = None,
        style_layers: Any = None,
        style_weights: Sequence[float] | None = None,
        alpha: float = 1.0,
        beta: float = 1e3,
        tv_weight: float = 0.0,
        param: Any = "pixel",
        learning_rate: float = 0.02,
        optimizer: Any = None,
        input_range: tuple[float, float] | None = None,
        preprocess: Callable[[Any], Any] | None = None,
    ) -> None:
        from tfvis.surgery.layers import require_built, require_graph

        require_graph(model, "Style transfer")
        require_built(model)
        self.model = model
        self.style_layers = (_resolve(model, style_layers, "style_layers")
                             or _vgg_default(model, VGG_STYLE_LAYERS, "style_layers"))
        self.content_layers = (_resolve(model, content_layers, "content_layers")
                               or _vgg_default(model, VGG_CONTENT_LAYERS, "content_layers"))
        if style_weights is None:
            weights = np.full(len(self.style_layers), 1.0 / len(self.style_layers))
        else:
            weights = np.asarray(style_weights, np.float64).reshape(-1)
            if len(weights) != len(self.style_layers) or not np.all(np.isfinite(weights)):
                raise ValueError(f"style_weights must be {len(self.style_layers)} finite numbers "
                                 f"(one per style layer), got {style_weights!r}")
        self.style_weights = tuple(float(w) for w in weights)
        for name, value in (("alpha", alpha), ("beta", beta), ("tv_weight", tv_weight)):
            if not (np.isfinite(value) and float(value) >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.alpha, self.beta, self.tv_weight = float(alpha), float(beta), float(tv_weight)
        self.param = params_lib.Pixel("clip") if param == "pixel" else params_lib.get(param)
        self.options = dict(learning_rate=learning_rate, optimizer=optimizer,
                            input_range=input_range, preprocess=preprocess)
        self._visualizers = ShapeVisualizers(self._make_visualizer)

    def _make_visualizer(self, shape: tuple[int, ...]) -> Visualizer:
        regs = [reg_lib.TotalVariation(self.tv_weight, 2.0)] if self.tv_weight else []
        return Visualizer(self.model, image_shape=shape, param=self.param, regularizers=regs,
                          transforms=(), **self.options)

    def visualizer(self, shape: Sequence[int]) -> Visualizer:
        """The `Visualizer` of images of ``shape`` ``(H, W, C)`` (made once)."""
        return self._visualizers.get(shape)

    @property
    def traces(self) -> int:
        """How many times compiled steps were traced (for retracing checks)."""
        return self._visualizers.traces

    def objectives(self, content: np.ndarray, style: np.ndarray
                   ) -> tuple[obj_lib.Objective, obj_lib.Objective]:
        """``(content_objective, style_objective)``: minus ``L_content`` and minus
        ``sum_l w_l E_l`` for display-space ``content`` and ``style`` images."""
        vis = self.visualizer(content.shape[1:])
        targets = layer_features(vis, content, self.content_layers)
        grams = layer_features(vis, style, self.style_layers)
        content_obj = obj_lib.Objective()
        for path in self.content_layers:
            content_obj = content_obj + obj_lib.feature_match(path, targets[path],
                                                              normalize=False)
        style_obj = obj_lib.Objective()
        for path, w in zip(self.style_layers, self.style_weights):
            style_obj = style_obj + w * obj_lib.gram_match(
                path, gram_matrix(grams[path], normalize=True))
        return content_obj, style_obj

    def run(
        self,
        content: Any,
        style: Any,
        *,
        steps: int = 200,
        init: str = "content",
        seed: int | Sequence[int] | None = None,
        verbose: int = 1,
    ) -> Visualization:
        """Renders ``content`` in the style of ``style``.

        Args:
          content: ``(N, H, W, C)`` (or one ``(H, W, C)``) in [0, 1].
          style: one style image ``(H', W', C)`` for all, or ``(N, H', W', C)`` one per
            content image, in [0, 1]; any size the model takes (its Gram matrices are
            normalised by the number of positions).
          steps: optimisation steps.
          init: ``"content"`` (start from the content image) or ``"noise"`` (uniform noise
            seeded per image).
          seed: for ``init="noise"``: image i uses ``seed + i`` (None means 0), or one seed
            per image.
          verbose: 1 shows a progress bar, 0 is quiet.

        Returns:
          A `Visualization` whose ``values`` are ``-(alpha L_content + beta L_style)`` per
          step, with extras ``content_loss`` and ``style_loss`` (``(2, N)``: at the start and
          at the end, unweighted), ``content_error`` (``(N,)``: the result's relative
          feature error ``||F - P|| / ||P||`` at the content layers), ``content_layers``,
          ``style_layers``.
        """
        if init not in ("content", "noise"):
            raise ValueError(f"init must be 'content' or 'noise', got {init!r}")
        content = check_images(content, self.model, "content")
        style = check_images(style, self.model, "style")
        if content.shape[-1] != style.shape[-1]:
            raise ValueError(f"content has {content.shape[-1]} channels but style has "
                             f"{style.shape[-1]}")
        n = len(content)
        if len(style) not in (1, n):
            if n != 1:
                raise ValueError(f"style has {len(style)} images for {n} content images: give "
                                 "one style image, or one per content image")
            n = len(style)
            content = np.broadcast_to(content, (n,) + content.shape[1:])
        seeds = image_seeds(seed, n)
        content_obj, style_obj = self.objectives(content, style)
        if init == "content":
            start = content
        else:
            shape = content.shape[1:]
            start = np.stack([np.random.default_rng([s, 2]).random(shape, np.float32)
                              for s in seeds])
        objective = self.alpha * content_obj + self.beta * style_obj
        run = self.visualizer(content.shape[1:]).run(objective, steps=steps, batch=n,
                                                      start=start, seed=seeds, verbose=verbose)

        def loss(objective, images):
            return 0.0 - score_images(self.model, objective, images, **self._convention())

        relative = obj_lib.Objective()
        for path, p in zip(self.content_layers, content_obj.terms):
            relative = relative + obj_lib.feature_match(path, p.arrays()["target"])
        extras = {
            "content_loss": np.stack([loss(content_obj, start), loss(content_obj, run.images)]),
            "style_loss": np.stack([loss(style_obj, start), loss(style_obj, run.images)]),
            "content_error": np.sqrt(np.maximum(loss(relative, run.images), 0.0)
                                     / len(self.content_layers)).astype(np.float32),
            "content_layers": self.content_layers,
            "style_layers": self.style_layers,
        }
        return Visualization(run.images, run.values, run.losses,
                             f"style_transfer(alpha={self.alpha:g}, beta={self.beta:g})",
                             seeds, tuple(f"stylised {i}" for i in range(n)), extras)

    def _convention(self) -> dict[str, Any]:
        return {"input_range": self.options["input_range"],
                "preprocess": self.options["preprocess"]}


def style_transfer(
    model,
    content: Any,
    style: Any,
    *,
    content_layers: Any = None,
    style_layers: Any = None,
    style_weights: Sequence[float] | None = None,
    alpha: float = 1.0,
    beta: float = 1e3,
    tv_weight: float = 0.0,
    steps: int = 200,
    init: str = "content",
    seed: int | Sequence[int] | None = None,
    param: Any = "pixel",
    learning_rate: float = 0.02,
    optimizer: Any = None,
    input_range: tuple[float, float] | None = None,
    preprocess: Callable[[Any], Any] | None = None,
    verbose: int = 1,
) -> Visualization:
    """Neural style transfer (Gatys, Ecker & Bethge 2016).

    Minimises ``alpha * L_content + beta * sum_l w_l E_l + tv_weight * TV^2`` over the image,
    ``L_content = 1/2 ||F - P||^2`` at the content layers and
    ``E_l = sum (G_l - A_l)^2 / (4 N_l^2 M_l^2)`` on the Gram matrices at the style layers.

    Args:
      model: a functional or Sequential Keras model, nested models allowed; never modified
        (``weights=None`` models work too: random features still carry texture statistics).
      content: ``(N, H, W, C)`` (or one ``(H, W, C)``) in [0, 1].
      style: one ``(H', W', C)`` style image, or one per content image, in [0, 1].
      content_layers: default ``["block4_conv2"]`` on keras.applications VGG16 / VGG19;
        required for other models (the error lists their convolution layers).
      style_layers: default ``block1_conv1`` .. ``block5_conv1`` on VGG; required otherwise.
      style_weights: ``w_l``; default equal weights summing to 1.
      alpha, beta: content and style weights (Gatys et al.: ``alpha / beta = 1e-3``).
      tv_weight: weight of a squared total-variation penalty (0: none).
      steps: optimisation steps.
      init: ``"content"`` or ``"noise"`` (seeded uniform noise).
      seed: seeds of the noise start (image i: ``seed + i``; None means 0).
      param: ``"pixel"`` (clipped pixels) or a `tfvis.featurevis.params` object.
      learning_rate: the default Adam's.
      optimizer: a `keras.optimizers.Optimizer` (its config is copied); default Adam.
      input_range, preprocess: the model's input convention (for VGG with ImageNet weights:
        ``preprocess=keras.applications.vgg16.preprocess_input``).
      verbose: 1 shows a progress bar, 0 is quiet.

    Returns:
      A `Visualization` (``images`` float32 in [0, 1]) with extras ``content_loss``,
      ``style_loss`` (start and end), ``content_error``, ``content_layers``,
      ``style_layers`` (see `StyleTransfer.run`).

    Note:
      To stylise more images without recompiling, keep a `StyleTransfer` and call ``run``.
    """
    transfer = StyleTransfer(model, content_layers=content_layers, style_layers=style_layers,
                             style_weights=style_weights, alpha=alpha, beta=beta,
                             tv_weight=tv_weight, param=param, learning_rate=learning_rate,
                             optimizer=optimizer, input_range=input_range,
                             preprocess=preprocess)
    return transfer.run(content, style, steps=steps, init=init, seed=seed, verbose=verbose)
