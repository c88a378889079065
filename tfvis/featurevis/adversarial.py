"""Adversarial examples: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018).

An `Attack` binds a classifier and its input convention; `Attack.run` perturbs a batch of
display-space images (``(N, H, W, C)`` in [0, 1]) inside an ``eps``-ball so that the model
changes its decision:

* untargeted: each step *ascends* the cross-entropy of the image's label (``labels=``, else the
  model's prediction on the clean image);
* targeted: each step *descends* the cross-entropy of the target class.

One step, inside one `tf.function` (shared by FGSM, PGD, targeted and untargeted runs)::

    g = s * d CE(logits(to_model(x)), y) / d x   s: +1 untargeted, -1 targeted
    x = x + alpha * sign(g)                      L-inf  (L2: alpha * g / ||g||)
    x = clip(x, x0 - eps, x0 + eps)              L-inf  (L2: d = x - x0; x0 + d * min(1, eps/||d||))
    x = clip(x, 0, 1)                            the valid display range

The loss is the cross-entropy on logits: a final softmax is bypassed
(`tfvis.surgery.heads.logits_replacements`) without touching the model. FGSM is one step of
size ``eps`` from the clean image; PGD starts at a seeded random point of the ball (uniform per
pixel for L-inf, uniform in the ball for L2; ``random_start=False`` gives Kurakin et al.'s BIM)
and takes ``steps`` steps of ``step_size``. Labels, targets, ``eps`` and ``step_size`` are step
inputs: another call with other images, targets or budgets reuses the trace (`Attack.traces`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tfvis.checks import positive_int
from tfvis.featurevis.loop import _convention, image_seeds, to_model_input

METHODS = ("pgd", "fgsm")
NORMS = ("inf", "2")
_TINY = 1e-12


@dataclass(frozen=True)
class AdversarialResult:
    """What `adversarial` / `Attack.run` returns (numpy arrays, one row per image).

    Attributes:
      images: float32 ``(N, H, W, C)`` adversarial images in [0, 1] (display space).
      perturbations: float32 ``(N, H, W, C)``, ``images - originals``.
      original_classes: int ``(N,)``, the model's prediction on the clean images.
      original_probabilities: float32 ``(N, K)``, softmax of the logits on the clean images.
      adversarial_classes: int ``(N,)``, the prediction on the adversarial images.
      adversarial_probabilities: float32 ``(N, K)`` on the adversarial images.
      labels: int ``(N,)``, the class each image is moved away from: the given ``labels``,
        else ``original_classes``.
      targets: int ``(N,)``, the target class of a targeted attack, -1 where untargeted.
      success: bool ``(N,)``: the prediction is the target (targeted) or differs from the
        label (untargeted).
      losses: float32 ``(steps, N)``, the cross-entropy of the label (untargeted) or of the
        target (targeted) on the image each step started from.
      settings: method, norm, eps, steps, step_size, random_start, seeds, input_range,
        preprocess.
    """

    images: np.ndarray
    perturbations: np.ndarray
    original_classes: np.ndarray
    original_probabilities: np.ndarray
    adversarial_classes: np.ndarray
    adversarial_probabilities: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    success: np.ndarray
    losses: np.ndarray
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", dict(self.settings))  # a private copy

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Any) -> AdversarialResult:
        """The attack of some of the images (``result[:4]``, ``result[result.success]``,
        ``result[[0, 2]]``): every per-image array, the losses' columns and the seeds."""
        rows = np.atleast_1d(np.arange(len(self))[index])
        settings = dict(self.settings)
        if "seeds" in settings:
            settings["seeds"] = tuple(np.asarray(settings["seeds"])[rows].tolist())
        per_image = ("images", "perturbations", "original_classes", "original_probabilities",
                     "adversarial_classes", "adversarial_probabilities", "labels", "targets",
                     "success")
        return replace(self, **{k: getattr(self, k)[rows] for k in per_image},
                       losses=self.losses[:, rows], settings=settings)

    @property
    def success_rate(self) -> float:
        """The fraction of images whose attack succeeded."""
        return float(np.mean(self.success)) if len(self.success) else 0.0

    @property
    def originals(self) -> np.ndarray:
        """The clean images, ``images - perturbations`` (up to float32 rounding)."""
        return self.images - self.perturbations

    def confidence(self, adversarial: bool = True, classes: Any = None) -> np.ndarray:
        """Probability ``(N,)`` of ``classes`` (default: the predicted class) on the
        adversarial (or, with ``adversarial=False``, the clean) images."""
        probs = self.adversarial_probabilities if adversarial else self.original_probabilities
        if classes is None:
            classes = self.adversarial_classes if adversarial else self.original_classes
        return probs[np.arange(len(probs)), np.asarray(classes)]

    def perturbation_norms(self, norm: str | None = None) -> np.ndarray:
        """The ``(N,)`` L-inf or L2 norm of each perturbation (default: the attack's norm)."""
        norm = _norm(self.settings.get("norm", "inf") if norm is None else norm)
        flat = self.perturbations.reshape(len(self), -1).astype(np.float64)
        return np.abs(flat).max(1) if norm == "inf" else np.sqrt((flat * flat).sum(1))


def _norm(norm: Any) -> str:
    if isinstance(norm, str) and norm.lower() in ("inf", "linf", "l_inf"):
        return "inf"
    if isinstance(norm, (int, float, np.integer, np.floating)) and not isinstance(norm, bool):
        if norm == np.inf:
            return "inf"
        if norm == 2:
            return "2"
    if norm in ("2", "l2", "L2"):
        return "2"
    raise ValueError(f"norm must be 'inf' (or np.inf) or '2' (or 2), got {norm!r}")


def _positive(name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(out) or out <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return out


def _classes(name: str, value: Any, n: int, classes: int) -> np.ndarray:
    """An int or one int per image -> int32 ``(n,)`` in ``[0, classes)``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a class id or one per image, not {value!r}")
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise ValueError(f"{name} must be an int class id or a sequence of {n} ints, got "
                         f"{value!r}")
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} entries for {n} images: give one per image "
                         "or a single class id")
    bad = arr[(arr < 0) | (arr >= classes)]
    if bad.size:
        raise ValueError(f"{name} must be class ids in 0..{classes - 1} (the model has "
                         f"{classes} classes), got {sorted(set(bad.tolist()))}")
    return arr.astype(np.int32)


def _images(images: Any) -> np.ndarray:
    arr = np.asarray(images)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"images must be a numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or 0 in arr.shape:
        raise ValueError(f"images must be (N, H, W, C) or one (H, W, C) image, got shape "
                         f"{np.shape(images)}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise ValueError("images must be finite and in [0, 1] (display space); give the "
                         "model's convention as input_range=(lo, hi) / preprocess=fn, applied "
                         "inside the graph")
    return arr


class Attack:
    """FGSM / PGD on one classifier, reusing one compiled step across calls.

    Args:
      model: a functional or Sequential Keras classifier whose (selected) output is
        ``(N, K)`` class scores, softmax or logits; never modified.
      input_range: the range the model's input expects; images are attacked in [0, 1] and
        mapped linearly to it inside the graph. Default (0, 1), or (0, 255) with
        ``preprocess`` (as in `tfvis.visualize`).
      preprocess: applied inside the graph after the range mapping, e.g.
        ``keras.applications.vgg16.preprocess_input``.
      output: for a multi-output model, the output (name or index) holding the class scores.
      batch_size: images per compiled step (the last chunk is padded, so it does not retrace).

    Raises:
      TypeError / ValueError: a subclassed or unbuilt model, a bad ``input_range``, or an
        output that is not ``(N, K)`` class scores with K >= 2.
    """

    def __init__(self, model, *, input_range: tuple[float, float] | None = None,
                 preprocess: Callable[[Any], Any] | None = None,
                 output: int | str | None = None, batch_size: int = 32) -> None:
        from tfvis.surgery import graph_of
        from tfvis.surgery.heads import logits_replacements, resolve_output
        from tfvis.surgery.layers import require_built, require_graph

        require_graph(model, "An adversarial attack")
        require_built(model)
        self.model = model
        self.range = _convention(input_range, preprocess)
        self.preprocess = preprocess
        self.output = resolve_output(model, output)
        if self.output is None:
            raise ValueError(f"model {model.name!r} has several outputs: pass output= (a name "
                             "or index) for the one holding the class scores")
        shape = tuple(graph_of(model).outputs[self.output].shape)
        if len(shape) != 2 or shape[-1] is None or shape[-1] < 2:
            raise ValueError(f"an attack needs class scores of shape (N, K) with K >= 2; the "
                             f"model's output has shape {shape}")
        self.classes = int(shape[-1])
        self.batch_size = positive_int("batch_size", batch_size)
        self.replace = logits_replacements(model)
        self._steps: dict[str, Any] = {}
        self._predict = None

    # -- compiled pieces -----------------------------------------------------------------------

    def _logits(self, x):
        import keras
        import tensorflow as tf

        from tfvis.surgery.graph import run_graph

        out = run_graph(self.model, to_model_input(x, self.range, self.preprocess),
                        replace=self.replace)
        return tf.cast(keras.tree.flatten(out)[self.output], tf.float32)

    def _probabilities(self):
        import tensorflow as tf

        from tfvis.engine.compiled import compile_step

        if self._predict is None:
            self._predict = compile_step(lambda x: tf.nn.softmax(self._logits(x), -1))
        return self._predict

    def _step(self, norm: str):
        import tensorflow as tf

        from tfvis.engine.compiled import compile_step

        if norm in self._steps:
            return self._steps[norm]

        def per_image(v):
            return tf.sqrt(tf.reduce_sum(tf.square(v), [1, 2, 3], keepdims=True))

        def step(x, x0, y, direction, eps, alpha):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                loss = tf.nn.sparse_softmax_cross_entropy_with_logits(y, self._logits(x))
            grad = tape.gradient(loss, x) * direction[:, None, None, None]
            if norm == "inf":
                x = x + alpha * tf.sign(grad)
                x = tf.clip_by_value(x, x0 - eps, x0 + eps)
            else:
                x = x + alpha * grad / tf.maximum(per_image(grad), _TINY)
                delta = x - x0
                x = x0 + delta * tf.minimum(1.0, eps / tf.maximum(per_image(delta), _TINY))
            return tf.clip_by_value(x, 0.0, 1.0), loss

        self._steps[norm] = compile_step(step)
        return self._steps[norm]

    @property
    def traces(self) -> int:
        """How many times the compiled steps were traced (for retracing checks)."""
        fns = list(self._steps.values()) + ([self._predict] if self._predict else [])
        return sum(int(f.experimental_get_tracing_count()) for f in fns)

    def predict(self, images: Any, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities ``(N, K)`` (softmax of the logits) of display-space images."""
        images = _images(images)
        size = min(positive_int("batch_size", self.batch_size if batch_size is None
                                else batch_size), len(images))
        fn = self._probabilities()
        out = [np.asarray(fn(_padded(images, i, size)))[: len(images) - i]
               for i in range(0, len(images), size)]
        return np.concatenate(out)[: len(images)].astype(np.float32)

    # -- running -------------------------------------------------------------------------------

    def _start(self, x0: np.ndarray, seeds: Sequence[int], eps: np.float32,
               norm: str) -> np.ndarray:
        """The seeded random start in the eps-ball (and [0, 1]), one generator per image."""
        noise = np.empty_like(x0)
        for i, s in enumerate(seeds):
            rng = np.random.default_rng([s, 3])
            if norm == "inf":
                noise[i] = rng.uniform(-eps, eps, x0.shape[1:])
            else:
                d = rng.normal(size=x0.shape[1:])
                radius = eps * rng.random() ** (1.0 / d.size)
                noise[i] = d * (radius / max(np.linalg.norm(d), _TINY))
        x = x0 + noise
        if norm == "inf":
            x = np.clip(x, x0 - eps, x0 + eps)
        return np.clip(x, 0.0, 1.0).astype(np.float32)

    def run(
        self,
        images: Any,
        *,
        target: int | Sequence[int] | None = None,
        labels: int | Sequence[int] | None = None,
        eps: float = 8 / 255,
        norm: str | float = "inf",
        method: str = "pgd",
        steps: int | None = None,
        step_size: float | None = None,
        random_start: bool = True,
        seed: int | Sequence[int] | None = None,
        batch_size: int | None = None,
        verbose: int = 1,
    ) -> AdversarialResult:
        """Attacks ``images`` (arguments as in `adversarial`).

        Args:
          images: ``(N, H, W, C)`` (or one image) in [0, 1].
          target, labels, eps, norm, method, steps, step_size, random_start, seed, verbose:
            see `adversarial`.
          batch_size: images per compiled step (default: the attack's).

        Returns:
          An `AdversarialResult`.

        Retracing: the compiled step traces once for its first chunk shape
        ``(min(batch_size, N), H, W, C)`` (the last chunk is padded to it); other images,
        labels, targets (or none), ``eps``, ``step_size``, ``steps`` and FGSM/PGD reuse it.
        A call with another chunk shape traces once more, shape-relaxed, for every later
        size. `traces` counts them.
        """
        import keras
        import tensorflow as tf

        x_all = _images(images)
        n = len(x_all)
        norm = _norm(norm)
        if method not in METHODS:
            raise ValueError(f"method must be 'pgd' or 'fgsm', got {method!r}")
        eps = _positive("eps", eps)
        if norm == "inf" and eps > 1:
            raise ValueError(f"eps={eps} exceeds the [0, 1] display range: an L-inf budget is "
                             "in display units (8/255 is the usual one)")
        if method == "fgsm":
            if steps not in (None, 1):
                raise ValueError("FGSM takes one step; for several steps use method='pgd' "
                                 "(random_start=False gives the iterative FGSM, BIM)")
            if step_size is not None and float(step_size) != eps:
                raise ValueError("FGSM steps by eps; step_size applies to method='pgd'")
            steps, alpha, random_start = 1, eps, False
        else:
            steps = positive_int("steps", 10 if steps is None else steps)
            alpha = 2.5 * eps / steps if step_size is None else _positive("step_size",
                                                                            step_size)
        size = min(positive_int("batch_size", self.batch_size if batch_size is None
                                else batch_size), n)
        targeted = target is not None
        targets = _classes("target", target, n, self.classes) if targeted else \
            np.full(n, -1, np.int32)
        given = None if labels is None else _classes("labels", labels, n, self.classes)
        seeds = image_seeds(seed, n)
        eps32 = np.float32(eps)

        step = self._step(norm)
        predict = self._probabilities()
        consts = (tf.constant(eps32), tf.constant(np.float32(alpha)))
        bar = keras.utils.Progbar(steps * -(-n // size), verbose=1) if verbose else None
        adv, before, after, losses = [], [], [], []
        for i in range(0, n, size):
            x0 = _padded(x_all, i, size)
            count = min(size, n - i)
            p0 = predict(tf.constant(x0))
            base = np.asarray(p0).argmax(-1).astype(np.int32)
            if given is not None:
                base[:count] = given[i:i + count]
            y = np.where(_padded(targets, i, size) >= 0, _padded(targets, i, size), base)
            direction = np.where(_padded(targets, i, size) >= 0, -1.0, 1.0).astype(np.float32)
            start = self._start(x0, _padded(np.asarray(seeds), i, size), eps32, norm) \
                if random_start else x0
            x, x0_t = tf.constant(start), tf.constant(x0)
            y_t, dir_t = tf.constant(y.astype(np.int32)), tf.constant(direction)
            chunk_losses = []
            for _ in range(steps):
                x, loss = step(x, x0_t, y_t, dir_t, *consts)
                chunk_losses.append(loss)
                if bar is not None:
                    bar.add(1)
            p1 = predict(x)
            adv.append(np.asarray(x)[:count])
            before.append(np.asarray(p0)[:count])
            after.append(np.asarray(p1)[:count])
            losses.append(np.stack([np.asarray(v)[:count] for v in chunk_losses]))
        images_adv = np.concatenate(adv).astype(np.float32)
        p_before = np.concatenate(before).astype(np.float32)
        p_after = np.concatenate(after).astype(np.float32)
        orig = p_before.argmax(-1)
        new = p_after.argmax(-1)
        attacked = orig.copy() if given is None else given.astype(orig.dtype)
        success = np.where(targets >= 0, new == targets, new != attacked)
        settings = dict(method=method, norm=norm, eps=eps, steps=steps, step_size=alpha,
                        random_start=bool(random_start), seeds=seeds, targeted=targeted,
                        input_range=self.range, preprocess=self.preprocess)
        return AdversarialResult(
            images_adv, images_adv - x_all, orig, p_before, new, p_after, attacked,
            targets.astype(orig.dtype), success, np.concatenate(losses, 1).astype(np.float32),
            settings)

    __call__ = run


def _padded(arr: np.ndarray, start: int, size: int) -> np.ndarray:
    """``arr[start:start + size]``, its last row repeated up to ``size`` rows."""
    chunk = arr[start:start + size]
    if len(chunk) < size:
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - len(chunk), 0)])
    return chunk


def adversarial(
    model,
    images: Any,
    *,
    target: int | Sequence[int] | None = None,
    labels: int | Sequence[int] | None = None,
    eps: float = 8 / 255,
    norm: str | float = "inf",
    steps: int | None = None,
    step_size: float | None = None,
    method: str = "pgd",
    random_start: bool = True,
    seed: int | Sequence[int] | None = None,
    input_range: tuple[float, float] | None = None,
    preprocess: Callable[[Any], Any] | None = None,
    output: int | str | None = None,
    batch_size: int = 32,
    verbose: int = 1,
) -> AdversarialResult:
    """Adversarial images by FGSM or PGD inside an L-inf (or L2) ball of radius ``eps``.

    Args:
      model: a Keras classifier (functional or Sequential; a final softmax is bypassed to
        get logits); never modified.
      images: ``(N, H, W, C)`` (or one ``(H, W, C)``) in [0, 1], display space.
      target: None (untargeted), a class id for every image, or one per image: the attack
        then descends the target's cross-entropy.
      labels: the true class per image (or one for all); untargeted attacks ascend its
        cross-entropy. Default: the model's prediction on the clean image.
      eps: the perturbation budget, in display units (L-inf: per pixel; L2: per image).
      norm: ``"inf"`` or ``"2"`` (also ``np.inf`` / ``2``).
      steps: PGD steps (default 10); FGSM takes one.
      step_size: PGD's step (default ``2.5 * eps / steps``, Madry et al.); FGSM's is ``eps``.
      method: ``"pgd"`` (Madry et al.) or ``"fgsm"`` (Goodfellow et al.).
      random_start: PGD starts at a uniformly random point of the ball (False: at the clean
        image, i.e. BIM).
      seed: the random start of image i uses ``seed + i`` (None means 0) or the i-th of a
        list. Same seeds give bitwise identical results.
      input_range: the model's input range (images are mapped to it inside the graph);
        default (0, 1), or (0, 255) with ``preprocess``.
      preprocess: applied inside the graph after the range mapping.
      output: the output holding the class scores, for a multi-output model.
      batch_size: images per compiled step.
      verbose: 1 shows a progress bar over the steps, 0 is quiet.

    Returns:
      An `AdversarialResult`.

    Raises:
      ValueError / TypeError: images outside [0, 1], a bad ``eps``, ``norm``, ``method``,
        ``steps``, ``step_size``, or class ids outside the model's classes.

    Note:
      Each call compiles its step once. To attack several batches without retracing, use one
      `Attack` (``Attack(model).run(images, target=...)``).
    """
    return Attack(model, input_range=input_range, preprocess=preprocess, output=output,
                  batch_size=batch_size).run(
        images, target=target, labels=labels, eps=eps, norm=norm, method=method, steps=steps,
        step_size=step_size, random_start=random_start, seed=seed, verbose=verbose)


# -- explaining the attack ---------------------------------------------------------------------


@dataclass(frozen=True)
class AdversarialExplanation:
    """Three explanations of an attack (Selvaraju et al. 2017, sec. 6).

    Attributes:
      original: the original class (`AdversarialResult.labels`) on the clean images.
      attacked: the original class on the adversarial images.
      adversarial: the adversarial class (the new prediction) on the adversarial images.
      rank_correlation: float ``(N,)``, Spearman's rank correlation of ``original.maps`` and
        ``attacked.maps`` per image (1: the evidence for the original class did not move).
      images: the clean images; adversarial_images: the attacked ones (display space).
      labels: the original class per image; adversarial_classes: the new prediction.
      original_confidence: probability of the original class on the clean image;
        adversarial_confidence: probability of the new prediction on the adversarial image.
    """

    original: Any
    attacked: Any
    adversarial: Any
    rank_correlation: np.ndarray
    images: np.ndarray
    adversarial_images: np.ndarray
    labels: np.ndarray
    adversarial_classes: np.ndarray
    original_confidence: np.ndarray
    adversarial_confidence: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def figure(self, class_names: Sequence[str] | None = None, **kwargs: Any):
        """The side-by-side Figure (`tfvis.plotting.adversarial.explanation_figure`)."""
        from tfvis.plotting.adversarial import explanation_figure

        return explanation_figure(self, class_names=class_names, **kwargs)


def explain_adversarial(explainer, images: Any, result: AdversarialResult, *,
                        batch_size: int | None = None) -> AdversarialExplanation:
    """Explains an attack: where the evidence for the original and the new class lies.

    Computes, with ``explainer`` (e.g. ``tfvis.GradCAM(model)``), the map of the original
    class on the clean image, of the original class on the adversarial image, and of the
    adversarial class on the adversarial image, and the rank correlation of the first two.

    Args:
      explainer: a tfvis explainer on the attacked model.
      images: the clean images the attack was run on (display space, [0, 1]).
      result: the `AdversarialResult` of that attack; its input convention (``input_range``,
        ``preprocess``) maps both image sets to the model's input.
      batch_size: passed to ``explainer.explain``.

    Returns:
      An `AdversarialExplanation`.

    Raises:
      TypeError: ``explainer`` is not a tfvis explainer or ``result`` not an
        `AdversarialResult`.
      ValueError: ``images`` are not those the result was computed from.
    """
    import tensorflow as tf

    from tfvis.explainers.base import Explainer
    from tfvis.metrics.sanity import spearman

    if not isinstance(explainer, Explainer):
        raise TypeError(f"explainer must be a tfvis explainer (e.g. tfvis.GradCAM(model)), got "
                        f"{type(explainer).__name__}")
    if not isinstance(result, AdversarialResult):
        raise TypeError(f"result must be the AdversarialResult of tfvis.adversarial, got "
                        f"{type(result).__name__}")
    clean = _images(images)
    if clean.shape != result.images.shape or not np.allclose(
            clean + result.perturbations, result.images, rtol=0, atol=1e-5):
        raise ValueError(f"images (shape {clean.shape}) are not the images the attack was run "
                         f"on (shape {result.images.shape}): pass the same clean images")
    rng, pre = result.settings["input_range"], result.settings["preprocess"]

    def model_input(x):
        return np.asarray(to_model_input(tf.constant(x), rng, pre), np.float32)

    x_clean, x_adv = model_input(clean), model_input(result.images)
    labels = result.labels.astype(np.int64)
    new = result.adversarial_classes.astype(np.int64)
    original = explainer.explain(x_clean, labels, batch_size)
    attacked = explainer.explain(x_adv, labels, batch_size)
    adversarial_ = explainer.explain(x_adv, new, batch_size)
    rho = np.asarray([spearman(a, b) for a, b in zip(original.maps, attacked.maps)],
                     np.float64)
    idx = np.arange(len(clean))
    return AdversarialExplanation(
        original, attacked, adversarial_, rho, clean, result.images, labels, new,
        result.original_probabilities[idx, labels], result.adversarial_probabilities[idx, new])


__all__ = ["AdversarialExplanation", "AdversarialResult", "Attack", "adversarial",
           "explain_adversarial"]
