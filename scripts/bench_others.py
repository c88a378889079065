"""Adapters that time other TensorFlow explainability libraries on the benchmark's workloads.

Used by ``scripts/benchmark.py --others``; install the libraries with
``scripts/setup_bench.sh`` (``--no-deps``, so the project's TensorFlow is never replaced).
Each library is skipped with a printed reason when it is absent or fails to import; each
method is skipped with a reason when the library lacks it or it fails to build. Explainers
are built once, outside the timed call, as a user would; the timed call explains the whole
batch for the model's top-1 classes with the same parameters as tfvis (stated in the table).
"""

from __future__ import annotations

import importlib
from typing import Callable

import numpy as np

import tfvis


def _labels(work) -> np.ndarray:
    return np.asarray(work.model(work.images, training=False)).argmax(axis=-1)


def _xplique(work, layer: str) -> dict[str, tuple[Callable[[], Callable], str, float]]:
    import xplique.attributions as xa

    x, n, size = work.images, len(work.images), work.images.shape[1]
    labels = _labels(work)
    onehot = np.eye(work.model.outputs[0].shape[-1], dtype="float32")[labels]
    occ, rise = work.options["occlusion"], work.options["rise"]
    sg, ig = work.options["smoothgrad"], work.options["integrated_gradients"]
    positions = ((size - occ["patch_size"]) // occ["stride"] + 1) ** 2

    def run(make):
        def build():
            explainer = make()
            return lambda: explainer.explain(x, onehot)
        return build

    return {
        "occlusion": (run(lambda: xa.Occlusion(
            work.model, patch_size=occ["patch_size"], patch_stride=occ["stride"],
            batch_size=work.batch, occlusion_value=occ["fill"])),
            "forward_per_input", n * positions),
        "rise": (run(lambda: xa.Rise(
            work.model, nb_samples=rise["num_masks"], grid_size=rise["grid_size"],
            preservation_probability=rise["keep_prob"], batch_size=work.batch)),
            "forward_per_input", n * rise["num_masks"]),
        "gradcam": (run(lambda: xa.GradCAM(work.model, conv_layer=layer, batch_size=n)),
                    f"layer:{layer}", 1),
        "gradcampp": (run(lambda: xa.GradCAMPP(work.model, conv_layer=layer, batch_size=n)),
                      f"layer:{layer}", 1),
        "saliency": (run(lambda: xa.Saliency(work.model, batch_size=n)), "input", 1),
        "smoothgrad": (run(lambda: xa.SmoothGrad(work.model, nb_samples=sg["num_samples"],
                                                 noise=sg["noise"], batch_size=n)),
                       "input", sg["num_samples"]),
        "integrated_gradients": (run(lambda: xa.IntegratedGradients(
            work.model, steps=ig["steps"], batch_size=n)), "input", ig["steps"]),
    }


def _tf_keras_vis(work, layer: str) -> dict[str, tuple[Callable[[], Callable], str, float]]:
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    x = work.images
    score = CategoricalScore(_labels(work).tolist())
    sg = work.options["smoothgrad"]
    last = layer.split("/")[-1]

    def visualizer(cls, **call):
        def build():
            made = cls(work.model, model_modifier=ReplaceToLinear(), clone=True)
            return lambda: made(score, x, **call)
        return build

    # tf-keras-vis's noise is a fraction of each image's value range, like tfvis's.
    return {
        "gradcam": (visualizer(Gradcam, penultimate_layer=last), f"layer:{layer}", 1),
        "gradcampp": (visualizer(GradcamPlusPlus, penultimate_layer=last), f"layer:{layer}", 1),
        "saliency": (visualizer(Saliency), "input", 1),
        "smoothgrad": (visualizer(Saliency, smooth_samples=sg["num_samples"],
                                  smooth_noise=sg["noise"]), "input", sg["num_samples"]),
    }


def _tf_explain(work, layer: str) -> dict[str, tuple[Callable[[], Callable], str, float]]:
    from tf_explain.core.grad_cam import GradCAM
    from tf_explain.core.integrated_gradients import IntegratedGradients
    from tf_explain.core.occlusion_sensitivity import OcclusionSensitivity
    from tf_explain.core.smoothgrad import SmoothGrad
    from tf_explain.core.vanilla_gradients import VanillaGradients

    x, n, size = work.images, len(work.images), work.images.shape[1]
    # tf-explain explains one class per call: the most frequent top-1 class of the batch.
    label = int(np.bincount(_labels(work)).argmax())
    patch = work.options["occlusion"]["patch_size"]
    sg, ig = work.options["smoothgrad"], work.options["integrated_gradients"]
    data = (x, None)

    def call(fn):
        return lambda: fn  # nothing to build: tf-explain explainers are stateless

    last = layer.split("/")[-1]
    return {
        # tf-explain has no stride: its patches tile the image (stride = patch size).
        "occlusion": (call(lambda: OcclusionSensitivity().explain(data, work.model, label,
                                                                   patch)),
                      "forward_per_input", n * (-(-size // patch)) ** 2),
        "gradcam": (call(lambda: GradCAM().explain(data, work.model, label, last)),
                    f"layer:{layer}", 1),
        "saliency": (call(lambda: VanillaGradients().explain(data, work.model, label)),
                     "input", 1),
        "smoothgrad": (call(lambda: SmoothGrad().explain(data, work.model, label,
                                                         sg["num_samples"], sg["noise"])),
                       "input", sg["num_samples"]),
        "integrated_gradients": (call(lambda: IntegratedGradients().explain(
            data, work.model, label, ig["steps"])), "input", ig["steps"]),
    }


LIBRARIES = {"xplique": _xplique, "tf-keras-vis": _tf_keras_vis, "tf-explain": _tf_explain}
MODULES = {"xplique": "xplique", "tf-keras-vis": "tf_keras_vis", "tf-explain": "tf_explain"}


def other_contenders(work, floors, contender_cls, force, methods, libraries=None) -> list:
    """Contenders of every importable library for ``work``; prints why others are skipped.

    An adapter maps a tfvis method name to ``(build, floor kind, floor multiplier)`` where
    ``build()`` makes the library's explainer (untimed) and returns the timed call. Only
    ``methods`` are built, of ``libraries`` (names; None: all).
    """
    layer = tfvis.GradCAM(work.model).layer
    made = []
    for library, adapter in LIBRARIES.items():
        if libraries is not None and library not in libraries:
            continue
        try:
            importlib.import_module(MODULES[library])
            adapted = adapter(work, layer)
        except Exception as error:  # noqa: BLE001 - any failure skips the library
            print(f"  skip {library}: {type(error).__name__}: {str(error)[:200]}")
            continue
        for name, (build, kind, multiplier) in adapted.items():
            if name not in methods:
                continue
            try:
                run = build()
            except Exception as error:  # noqa: BLE001 - any failure skips the method
                print(f"  skip {library} {name}: {type(error).__name__}: {str(error)[:200]}")
                continue
            made.append(contender_cls(library, name, lambda r=run: force(r()),
                                      (kind, multiplier)))
    return made
