"""The one compiled optimisation loop of feature visualisation.

A `Visualizer` binds a model to a parameterisation, regularisers, transforms, the model's
input convention and an optimiser. `Visualizer.run` optimises a batch of images for an
`Objective`: one compiled step per (batch shape, objective structure), called once per step
from Python (progress bar, per-step values kept on the device until the end).

One step, all inside one `tf.function`:

1. image = param(variables)                            display space, [0, 1]
   (`params.renderer`: one XLA cluster for Fourier images on a CPU)
2. x = transforms(image, draws)                        jitter / scale / rotate / roll, seeded
   (Fourier images with integer shifts only: a phase ramp inside step 1, no resampling)
3. scores = objective(capture(model, preprocess(x)))   only the layers it needs run
   (tile by tile when ``tile_size`` is set: d scores / d x is assembled from tiles)
4. loss = -sum(scores - penalties(image))
5. optimiser step on the variables (default: Keras's Adam as one fused kernel, `adam`),
   parameterisation's projection (clip), pixel edits (blur / clipping) every k steps

Objective arguments (channels, classes, directions, weights) are step inputs, so a second run
with other channels or classes reuses the trace. The user's model is only called (through
`tfvis.surgery.graph.capture`): never rebuilt or modified. Randomness (start images and the
transforms' draws) comes from one numpy generator per image seeded by that image's seed, so
an image does not depend on the batch it is optimised in.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from tfvis.featurevis import adam as adam_lib
from tfvis.featurevis import params as params_lib
from tfvis.featurevis import regularizers as reg_lib
from tfvis.featurevis import transforms as tf_lib
from tfvis.featurevis.objectives import LOGITS, Objective, evaluate
from tfvis.featurevis.result import Visualization


def image_seeds(seed: int | Sequence[int] | None, n: int, offset: int = 0) -> tuple[int, ...]:
    """Per-image seeds: ``seed + offset + i`` (``seed=None`` means 0), or the given list."""
    if seed is None:
        seed = 0
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return tuple(int(seed) + offset + i for i in range(n))
    seeds = tuple(int(s) for s in seed)
    if len(seeds) != n:
        raise ValueError(f"seed has {len(seeds)} values for {n} images: give one per image or "
                         "an int")
    return seeds


def to_model_input(x, input_range: tuple[float, float], preprocess: Callable | None):
    """Display-space images in [0, 1] -> what the model takes: the linear map to
    ``input_range``, then ``preprocess`` (inside the compiled steps of every method)."""
    lo, hi = input_range
    if (lo, hi) != (0.0, 1.0):
        x = lo + x * (hi - lo)
    return preprocess(x) if preprocess is not None else x


def _convention(input_range, preprocess) -> tuple[float, float]:
    if input_range is None:
        return (0.0, 255.0) if preprocess is not None else (0.0, 1.0)
    lo, hi = (float(v) for v in input_range)
    if not hi > lo:
        raise ValueError(f"input_range must be (low, high) with high > low, got {input_range}")
    return lo, hi


class Visualizer:
    """Optimises images for objectives on one model, reusing compiled steps across runs.

    Args:
      model: a functional or Sequential Keras model (nested models allowed). Never modified.
      image_shape: ``(H, W)`` or ``(H, W, C)``; default: the model's input shape.
      param: ``"fourier"`` (default), ``"pixel"`` or a `params.Pixel` / `params.Fourier`.
      regularizers: penalties and pixel edits from `tfvis.featurevis.regularizers`.
      transforms: ``"standard"`` (jitter, scale, rotate scaled to the image), or a sequence
        from `tfvis.featurevis.transforms` (empty: none).
      input_range: the range the model's input expects; images are optimised in [0, 1] and
        mapped linearly to it inside the graph. Default (0, 1), or (0, 255) with
        ``preprocess``.
      preprocess: a function applied after the range mapping, inside the graph
        (``keras.applications.vgg16.preprocess_input``).
      optimizer: a `keras.optimizers.Optimizer` (copied from its config for each batch
        shape, the instance itself is not used); default Adam(``learning_rate``), Keras's
        update as one fused kernel (`tfvis.featurevis.adam`).
      learning_rate: for the default Adam.
      normalize_gradients: divide each image's gradient by its mean absolute value (the
        classic DeepDream step).
      redirect_relu: number of first steps run with redirected ReLU gradients
        (`tfvis.surgery.gates`, rule ``"redirected"``), so dead units can be woken up.
      tile_size: compute the gradient in tiles of at most this side (DeepDream on large
        images); None: the whole image at once.
    """

    def __init__(
        self,
        model,
        *,
        image_shape: Sequence[int] | None = None,
        param: Any = "fourier",
        regularizers: Sequence[Any] = (),
        transforms: Any = "standard",
        input_range: tuple[float, float] | None = None,
        preprocess: Callable[[Any], Any] | None = None,
        optimizer: Any = None,
        learning_rate: float = 0.05,
        normalize_gradients: bool = False,
        redirect_relu: int = 0,
        tile_size: int | None = None,
    ) -> None:
        from tfvis.surgery.layers import require_built, require_graph

        require_graph(model, "Feature visualisation")
        require_built(model)
        self.model = model
        self.param = params_lib.get(param)
        self.penalties, self.edits = reg_lib.split(regularizers)
        self.shape = self._image_shape(image_shape)
        if isinstance(transforms, str):
            if transforms != "standard":
                raise ValueError(f"transforms must be 'standard' or a sequence, got {transforms!r}")
            transforms = tf_lib.standard(min(self.shape[:2]))
        self.transforms = tf_lib.check(transforms)
        self.range = _convention(input_range, preprocess)
        self.preprocess = preprocess
        self.optimizer = optimizer
        self.learning_rate = float(learning_rate)
        self.normalize_gradients = bool(normalize_gradients)
        self.redirect_relu = int(redirect_relu)
        self.tile_size = None if tile_size is None else int(tile_size)
        if self.edits and isinstance(self.param, params_lib.Fourier):
            self.param.to_variable(None)  # raises the explanatory error
        self._states: dict[tuple, dict[str, Any]] = {}

    # -- set-up --------------------------------------------------------------------------------

    def _image_shape(self, image_shape) -> tuple[int, int, int]:
        model_shape = tuple(self.model.inputs[0].shape[1:]) if self.model.inputs else ()
        channels = model_shape[-1] if len(model_shape) == 3 and model_shape[-1] else 3
        if image_shape is None:
            if len(model_shape) != 3 or None in model_shape:
                raise ValueError(
                    f"model {self.model.name!r} takes inputs of shape {model_shape}, so the "
                    "image size is unknown: pass image_shape=(height, width)"
                )
            return tuple(int(v) for v in model_shape)
        shape = tuple(int(v) for v in image_shape)
        if len(shape) == 2:
            shape = shape + (int(channels),)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"image_shape must be (H, W) or (H, W, C), got {image_shape}")
        return shape

    def resolve(self, objective: Objective) -> list[str | None]:
        """The layer path of each term (None for logits)."""
        from tfvis.surgery.layers import resolve_layer

        if not isinstance(objective, Objective):
            raise TypeError(
                f"objective must be a tfvis.objectives.Objective (e.g. "
                f"tfvis.objectives.channel('conv', 3)), not {type(objective).__name__}"
            )
        if not objective.terms:
            raise ValueError("the objective has no terms")
        return [None if isinstance(t.layer, str) and t.layer == LOGITS
                else resolve_layer(self.model, t.layer).path for t in objective.terms]

    def _state(self, batch: int, shape: tuple[int, int, int]) -> dict[str, Any]:
        import keras
        import tensorflow as tf

        key = (batch,) + shape
        state = self._states.get(key)
        if state is not None:
            return state
        var = tf.Variable(tf.zeros(self.param.variable_shape(batch, *shape)), trainable=True,
                          name="featurevis_image")
        if self.optimizer is None:
            opt = adam_lib.Adam(self.learning_rate)  # Keras's Adam as one fused kernel
        else:
            if not isinstance(self.optimizer, keras.optimizers.Optimizer):
                raise TypeError(f"optimizer must be a keras.optimizers.Optimizer, got "
                                f"{type(self.optimizer).__name__}")
            opt = type(self.optimizer).from_config(self.optimizer.get_config())
        opt.build([var])
        # the optimiser's initial state, kept on the variables' device: each run resets it
        # without a copy from the host
        with tf.device(var.device):
            init = [tf.constant(v.numpy()) for v in opt.variables]
        state = {"var": var, "opt": opt, "shape": shape, "init": init, "steps": {},
                 "render": params_lib.renderer(self.param, *shape, device=var.device)}
        self._states[key] = state
        return state

    @property
    def traces(self) -> int:
        """How many times compiled steps were traced (for retracing checks)."""
        return sum(int(fn.experimental_get_tracing_count())
                   for s in self._states.values() for fn in s["steps"].values())

    # -- the step ------------------------------------------------------------------------------

    def _to_model(self, x):
        return to_model_input(x, self.range, self.preprocess)

    def _scores(self, x, objective: Objective, paths, feeds, redirect: bool):
        import tensorflow as tf

        from tfvis.surgery.gates import relu_gates
        from tfvis.surgery.graph import capture
        from tfvis.surgery.heads import logits_replacements

        replace = {}
        if redirect:
            replace.update(relu_gates(self.model, "redirected")[0])
        logits = any(p is None for p in paths)
        if logits:
            replace.update(logits_replacements(self.model))
        wanted = [p for p in dict.fromkeys(paths) if p is not None]
        got = capture(self.model, self._to_model(x), wanted, replace=replace, outputs=logits)
        acts, out = got if logits else (got, None)
        if isinstance(out, (list, tuple)):
            out = out[0]
        if isinstance(out, dict):
            out = next(iter(out.values()))
        total = 0.0
        for term, path, feed in zip(objective.terms, paths, feeds):
            act = out if path is None else acts[path]
            total = total + feed[-1] * evaluate(term.kind, act, feed[:-1])
        return total * tf.ones([tf.shape(x)[0]])

    def _tiles(self, h: int, w: int) -> list[tuple[int, int, int, int]] | None:
        t = self.tile_size
        if t is None or (h <= t and w <= t):
            return None
        return [(y, min(y + t, h), x, min(x + t, w)) for y in range(0, h, t)
                for x in range(0, w, t)]

    def _build_step(self, state, objective: Objective, paths, redirect: bool):
        import tensorflow as tf

        from tfvis.engine.compiled import compile_step

        var, opt, render = state["var"], state["opt"], state["render"]
        h, w, c = state["shape"]
        param, transforms = self.param, self.transforms
        needs_img_grad = any(getattr(e, "needs_grad", False) for e in self.edits)
        tiles = self._tiles(h, w)

        # Fourier images are periodic: integer shifts are a phase ramp in the rendering
        phase = isinstance(param, params_lib.Fourier) and tf_lib.only_shifts(transforms)

        def step(t, draws, feeds):
            with tf.GradientTape(persistent=needs_img_grad) as outer:
                if phase:
                    x = render(var, tf_lib.circular_shift(draws, transforms, h, w))
                    img = render(var) if self.penalties else x
                else:
                    img = render(var)
                    x = tf_lib.apply(img, draws, transforms)
                penalty = tf.zeros([tf.shape(img)[0]])
                for p in self.penalties:
                    penalty = penalty + p.penalty(img)
            if tiles is None:
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    scores = self._scores(x, objective, paths, feeds, redirect)
                    loss = -tf.reduce_sum(scores)
                gx = inner.gradient(loss, x)
            else:
                scores, gx = 0.0, tf.zeros_like(x)
                for y0, y1, x0, x1 in tiles:
                    part = x[:, y0:y1, x0:x1]
                    with tf.GradientTape() as inner:
                        inner.watch(part)
                        # each tile weighs by its share of the image: a mean over
                        # positions (channel, layer_norm) is then the sum over tiles
                        s = self._scores(part, objective, paths, feeds, redirect)
                        s = s * ((y1 - y0) * (x1 - x0) / (h * w))
                        loss = -tf.reduce_sum(s)
                    g = inner.gradient(loss, part)
                    gx = gx + tf.pad(g, [[0, 0], [y0, h - y1], [x0, w - x1], [0, 0]])
                    scores = scores + s
            if gx is None:
                gx = tf.zeros_like(x)
            # gx is d loss / d x, loss = -scores: ReLU gates see a minimiser's gradient
            targets, grads_out = [x], [gx]
            if self.penalties:
                targets.append(penalty)
                grads_out.append(tf.ones_like(penalty))
            grad = outer.gradient(targets, var, output_gradients=grads_out)
            img_grad = outer.gradient(x, img, output_gradients=-gx) if needs_img_grad else None
            if self.normalize_gradients:
                axes = list(range(1, grad.shape.rank))
                grad = grad / (tf.reduce_mean(tf.abs(grad), axes, keepdims=True) + 1e-8)
            opt.apply_gradients([(grad, var)])
            projected = param.project(var)
            if projected is not var:  # clipped pixels; no copy when the projection is none
                var.assign(projected)
            for edit in self.edits:
                def do(edit=edit):
                    new = edit.edit(render(var), img_grad)
                    var.assign(param.project(param.to_variable(new)))
                    return tf.constant(True)

                tf.cond(tf.equal(tf.math.floormod(t + 1, edit.every), 0), do,
                        lambda: tf.constant(False))
            return scores, scores - penalty

        return compile_step(step)

    # -- running -------------------------------------------------------------------------------

    @staticmethod
    def _images(state) -> np.ndarray:
        """The current images, float32 in [0, 1]."""
        return np.clip(np.asarray(state["render"](state["var"]), np.float32), 0.0, 1.0)

    def run(
        self,
        objective: Objective,
        *,
        steps: int = 256,
        batch: int | None = None,
        start: Any = None,
        seed: int | Sequence[int] | None = None,
        seed_offset: int = 0,
        labels: Sequence[str] | None = None,
        verbose: int = 1,
        stop: Callable[[np.ndarray], bool] | None = None,
        stop_every: int = 1,
    ) -> Visualization:
        """Optimises a batch of images for ``objective``.

        Args:
          objective: what to maximise (`tfvis.objectives`).
          steps: optimisation steps.
          batch: images to optimise; default the objective's batch (its number of channels or
            classes), else the number of ``start`` images, else 1.
          start: ``(N, H, W, C)`` images in [0, 1] to start from (or one ``(H, W, C)`` image
            for every batch entry); default random (grey plus small noise / a small random
            spectrum).
          seed: an int (image i uses ``seed + seed_offset + i``; None means 0) or one seed
            per image. Same seeds give bitwise identical images.
          seed_offset: added to an int seed (chunked runs keep one seed per image).
          labels: a title per image.
          verbose: 1 shows a progress bar, 0 is quiet.
          stop: called every ``stop_every`` steps with the current images ``(N, H, W, C)``
            in [0, 1]; the run ends early when it returns True (the optimiser's state
            carries on between checks). None runs every step.
          stop_every: steps between two calls of ``stop``.

        Returns:
          A `Visualization` (its ``values`` and ``losses`` have one row per step run).
        """
        import keras
        import tensorflow as tf

        paths = self.resolve(objective)
        steps = int(steps)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if int(stop_every) < 1:
            raise ValueError(f"stop_every must be >= 1, got {stop_every}")
        shape = self.shape
        if start is not None:
            start = np.asarray(start, np.float32)
            if start.ndim == 3:
                start = start[None]
            if start.ndim != 4:
                raise ValueError(f"start must be (N, H, W, C) images, got shape {start.shape}")
            if np.nanmin(start) < 0 or np.nanmax(start) > 1 or not np.all(np.isfinite(start)):
                raise ValueError("start images must be finite and in [0, 1] (display space); "
                                 "the model's input range is applied inside the graph")
            shape = tuple(int(v) for v in start.shape[1:])
        n = objective.batch
        for what, size in (("batch", batch), ("start", None if start is None or
                                                len(start) == 1 else len(start))):
            if size is None:
                continue
            if n not in (None, size):
                raise ValueError(f"the objective asks for {n} images but {what} gives {size}")
            n = size
        n = 1 if n is None else int(n)
        seeds = image_seeds(seed, n, seed_offset)
        state = self._state(n, shape)
        h, w, c = shape
        if start is None:
            init = np.stack([self.param.random(np.random.default_rng([s, 0]), h, w, c)
                             for s in seeds])
        else:
            init = self.param.from_images(np.broadcast_to(start, (n,) + shape))
        draws = np.stack([np.random.default_rng([s, 1]).random((steps, tf_lib.NUM_DRAWS))
                          for s in seeds], 1).astype(np.float32)
        state["var"].assign(init)
        for v, value in zip(state["opt"].variables, state["init"]):
            v.assign(value)
        feeds = [[tf.constant(a) for a in f] for f in objective.feeds(n)]
        signature = objective.signature([p or LOGITS for p in paths])
        fns = {}
        for redirect in {False, True} if self.redirect_relu else {False}:
            key = (signature, redirect)
            if key not in state["steps"]:
                state["steps"][key] = self._build_step(state, objective, paths, redirect)
            fns[redirect] = state["steps"][key]
        # the traced graphs themselves: a call skips tf.function's argument matching (~0.15
        # ms a step, ~1% of a small CNN's step)
        fns = {k: fn.get_concrete_function(tf.constant(0, tf.int32), tf.constant(draws[0]),
                                           feeds) for k, fn in fns.items()}
        bar = keras.utils.Progbar(steps, verbose=1) if verbose else None
        values, totals = [], []
        for t in range(steps):
            fn = fns[t < self.redirect_relu]
            score, total = fn(tf.constant(t, tf.int32), tf.constant(draws[t]), feeds)
            values.append(score)
            totals.append(total)
            if bar is not None:
                bar.update(t + 1)
            if stop is not None and (t + 1) % stop_every == 0 and t + 1 < steps:
                if stop(self._images(state)):
                    break
        images = self._images(state)
        vals = np.stack([np.asarray(v) for v in values]).astype(np.float32)
        losses = -np.stack([np.asarray(v) for v in totals]).astype(np.float32)
        return Visualization(images, vals, losses, objective.description, seeds,
                             tuple(labels) if labels is not None else default_labels(objective, n))


class ShapeVisualizers:
    """One `Visualizer` per image shape, for methods that optimise images of any size
    (inversion, style transfer): made by ``make(shape)`` on first use and reused after, so
    each shape's compiled steps are traced once."""

    def __init__(self, make: Callable[[tuple[int, ...]], Visualizer]) -> None:
        self._make = make
        self._by_shape: dict[tuple[int, ...], Visualizer] = {}

    def get(self, shape: Sequence[int]) -> Visualizer:
        """The `Visualizer` of images of ``shape`` ``(H, W, C)``."""
        shape = tuple(int(v) for v in shape)
        if shape not in self._by_shape:
            self._by_shape[shape] = self._make(shape)
        return self._by_shape[shape]

    @property
    def traces(self) -> int:
        """How many times their compiled steps were traced (for retracing checks)."""
        return sum(v.traces for v in self._by_shape.values())


def default_labels(objective: Objective, n: int) -> tuple[str, ...]:
    """``"channel 3"`` / ``"class 1"`` per image from the objective's first batched term."""
    for t in objective.terms:
        if t.batch is not None and t.kind in ("channel", "neuron", "class_logit",
                                              "class_logprob"):
            idx = t.arrays()["index"]
            word = "class" if t.kind.startswith("class") else "channel"
            return tuple(f"{word} {int(i)}" for i in idx)
    return tuple(objective.description if n == 1 else f"{i}" for i in range(n))


def score_images(model, objective: Objective, images: Any, *, input_range=None,
                 preprocess=None, batch_size: int = 64) -> np.ndarray:
    """The objective's value ``(N,)`` on given images ``(N, H, W, C)`` in [0, 1] (no
    transforms, no penalties), e.g. to compare a visualisation with natural images."""
    import tensorflow as tf

    images = np.asarray(images, np.float32)
    vis = Visualizer(model, image_shape=images.shape[1:], transforms=(),
                     input_range=input_range, preprocess=preprocess)
    paths = vis.resolve(objective)
    out = []
    every = objective.feeds(len(images))
    for i in range(0, len(images), batch_size):
        chunk = tf.constant(images[i:i + batch_size])
        feeds = [[tf.constant(a[i:i + batch_size]) for a in f[:-1]] + [tf.constant(f[-1])]
                 for f in every]
        out.append(np.asarray(vis._scores(chunk, objective, paths, feeds, False)))
    return np.concatenate(out).astype(np.float32)
