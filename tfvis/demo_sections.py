"""The demo gallery's sections below the methods table.

Each section function takes the trained demo model and held-out images and returns
``(numbers, figures, notes)``: numbers for ``summary.json``, ``(file name, PNG bytes,
caption)`` figures (written under the gallery's section folder) and notes. Importing this
module is cheap; TensorFlow, matplotlib and OpenCV load when a section runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: `tfvis.gallery.Gallery.SECTION_FOLDER`: where section figures are written.
SECTION = "inside"


def _png(fig: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return buffer.getvalue()


def inside_the_network(model: Any, test: Any, n_show: int = 4, channels: int = 6,
                       feature_layer: str = "conv2b", top_layer: str = "conv3b"
                       ) -> tuple[dict[str, Any], list[tuple[str, bytes, str]], list[str]]:
    """The demo's "Inside the network" section on the held-out images ``test``.

    First-layer kernels, the feature maps of ``feature_layer`` for held-out image 0, the top
    patches of the first ``channels`` channels of ``top_layer`` over the held-out images (with
    deconvnet projections), and CAM boxes (``relu=True``: CAM is signed by default; 20% of the
    max, largest component) of the predicted class with their ILSVRC localisation error.

    Returns:
      ``(numbers, figures, notes)``: the numbers for ``summary.json``, ``(file name, PNG,
      caption)`` figures and the section's notes.
    """
    import cv2
    from matplotlib.figure import Figure

    from tfvis import inspect
    from tfvis.explainers import CAM
    from tfvis.metrics.localization import iou
    from tfvis.plotting import inspect as figs
    from tfvis.plotting.images import to_uint8_rgb

    figures = []
    tiles = inspect.kernels(model)
    figures.append(("kernels.png", _png(figs.kernel_figure(tiles)),
                    f"First-layer kernels ({len(tiles)} filters of conv1a, normalised jointly: "
                    "a dominating filter would stand out)"))
    acts = inspect.activations(model, test.images[:1], feature_layer)[feature_layer]
    figures.append((f"maps_{feature_layer}.png",
                    _png(figs.feature_maps(acts, 0, max_channels=16)),
                    f"Feature maps of {feature_layer} for held-out image #0 (channels by mean "
                    "activation)"))
    top = inspect.top_activations(model, test.images, top_layer, channels=range(channels),
                                  k=min(6, len(test.images)), project="deconvnet")
    figures.append((f"top_{top_layer}.png", _png(figs.top_patches(top, test.images)),
                    f"Strongest units of {top_layer} channels 0-{channels - 1} over the "
                    f"{len(test.images)} held-out images: deconvnet projections (left) and "
                    f"image patches (right), each cropped to the unit's exact receptive field "
                    f"{top.field.size[0]}x{top.field.size[1]}"))
    cam = CAM(model, relu=True, verbose=0)(test.images)  # the predicted class
    predicted = np.asarray(cam.targets)
    found = inspect.boxes(cam.maps, threshold=0.2)
    truth = test.boxes[:, [1, 0, 3, 2]]  # the shapes' (y0, x0, y1, x1) -> (x0, y0, x1, y1)
    correct = predicted == test.labels
    error = inspect.localization_error(found, truth, iou=0.5, top_k_correct=correct)
    box_error = inspect.localization_error(found, truth, iou=0.5)
    overlaps = iou(found, truth)  # (N,)
    sweep = {}  # the paper's 20% and stricter thresholds, for context
    for threshold in (0.2, 0.4, 0.6, 0.8):
        b = inspect.boxes(cam.maps, threshold=threshold)
        sweep[f"{threshold:.1f}"] = {
            "localization_error": inspect.localization_error(b, truth, iou=0.5,
                                                             top_k_correct=correct),
            "mean_box_area": float(np.mean((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))}
    shown = min(n_show, len(test.images))
    fig = Figure(figsize=(2.0 * shown, 2.3))
    axes = fig.subplots(1, shown, squeeze=False)[0]
    for i, ax in enumerate(axes):
        rgb = to_uint8_rgb(test.images[i])
        x0, y0, x1, y1 = (int(v) for v in truth[i])
        cv2.rectangle(rgb, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), 1)
        x0, y0, x1, y1 = (int(v) for v in found[i])
        cv2.rectangle(rgb, (x0, y0), (x1 - 1, y1 - 1), (255, 0, 0), 1)
        ax.imshow(rgb)
        ax.set_axis_off()
        ax.set_title(f"IoU {overlaps[i]:.2f}", fontsize=8)
    figures.append(("cam_boxes.png", _png(fig),
                    "CAM boxes (red: largest component >= 20% of the max of CAM with "
                    "relu=True, predicted class) and the objects' boxes (green)"))
    numbers = {
        "localization_error": error,
        "box_error": box_error,
        "mean_iou": float(overlaps.mean()),
        "by_threshold": sweep,
        "images": int(len(test.images)),
        "settings": {"map": "CAM relu=True, predicted class", "threshold": 0.2, "iou": 0.5,
                     "class_must_be_right": True},
        "top_layer": top_layer, "top_channels": int(channels), "projection": "deconvnet",
        "receptive_field": list(top.field.size),
        "feature_layer": feature_layer,
        "files": [f"{SECTION}/{name}" for name, _, _ in figures],
    }
    notes = [f"CAM localisation error (ILSVRC: top-1 class right and IoU >= 0.5 between the "
             f"box of the largest component >= 20% of the max of CAM with relu=True and the "
             f"object's box) over {len(test.images)} held-out images: {error:.3f} (boxes "
             f"alone: {box_error:.3f}; mean IoU {overlaps.mean():.2f}). Stricter thresholds: "
             + ", ".join(f"{k}: {v['localization_error']:.3f}" for k, v in sweep.items())
             + "."]
    return numbers, figures, notes


def what_units_want(model: Any, test: Any, layer: str = "conv3b", channels: int = 8,
                    dream_layer: str = "conv2b", steps: int = 64,
                    seed: int = 0) -> tuple[dict[str, Any], list[tuple[str, bytes, str]],
                                            list[str]]:
    """The demo's "What a unit wants to see" section (`tfvis.featurevis`).

    Simonyan class models (log-probability, one image per class) with the model's
    probability for them, the first ``channels`` filters of ``layer`` optimised in one run,
    with how far each goes past the strongest held-out image (the "ceiling"), and a DeepDream
    of held-out image #0 on ``dream_layer`` (3 octaves).
    """
    from tfvis import featurevis as fv
    from tfvis.featurevis import objectives
    from tfvis.plotting.featurevis import grid
    from tfvis.surgery.graph import capture

    names = list(test.names)
    # Simonyan et al. start from the zero image of a mean-subtracted input: here the
    # held-out images' mean colour, with a little seeded noise so the classes can differ.
    rng = np.random.default_rng(seed)
    mean = np.full((len(names), *test.images.shape[1:]), test.images.mean(), np.float32)
    start = np.clip(mean + rng.normal(0.0, 0.1, mean.shape), 0, 1).astype(np.float32)
    classes = fv.class_model(model, range(len(names)), score="logprob", param="pixel",
                             start=start, steps=steps, learning_rate=0.1, seed=seed, verbose=0)
    probs = model.predict(classes.images, verbose=0)
    own = [float(probs[i, i]) for i in range(len(names))]
    # the channels that respond most to the held-out images (dead ones have nothing to show)
    acts = capture(model, test.images, [layer])[layer].numpy().mean(axis=(1, 2))  # (N, C)
    ceiling_all = acts.max(axis=0)
    chosen = sorted(int(c) for c in np.argsort(-ceiling_all, kind="stable")[:channels])
    filters = fv.filters(model, layer, channels=chosen, steps=steps,
                         learning_rate=0.2, redirect_relu=steps // 2, seed=seed, verbose=0)
    reached = fv.score_images(model, objectives.channel(layer, chosen), filters.images)
    ceiling = ceiling_all[chosen]
    dream = fv.deepdream(model, test.images[0], dream_layer, octaves=3, steps_per_octave=15,
                         learning_rate=0.02, verbose=0)
    octave_values = np.asarray(dream.octave_values)[:, :, 0].tolist()  # (octaves, 2)

    figures = [
        ("class_models.png",
         _png(grid(classes.images, [f"{n}\np={p:.2f}" for n, p in zip(names, own)],
                   columns=len(names))),
         f"Class models (Simonyan et al.: the log-probability of each class maximised from "
         f"the mean colour with a little noise, {steps} steps, pixels with L2, jitter, scale "
         "and rotation) "
         "and the model's probability for its class"),
        (f"filters_{layer}.png",
         _png(grid(filters.images, [f"channel {c}\n{r / max(m, 1e-12):.1f}x"
                                    for c, r, m in zip(chosen, reached, ceiling)],
                   columns=channels)),
         f"What the {channels} {layer} channels most active on held-out images want to see "
         f"(one compiled run of {channels} images, ReLU gradients redirected for the first "
         f"{steps // 2} steps so that channels dead on grey wake up); under each, its mean activation as a "
         f"multiple of the strongest of the {len(test.images)} held-out images"),
        (f"deepdream_{dream_layer}.png",
         _png(grid(np.stack([test.images[0], dream.images[0]]),
                   ["held-out image #0", f"DeepDream on {dream_layer}"], columns=2, size=2.4)),
         f"DeepDream of held-out image #0 on {dream_layer} (3 octaves, 15 steps each)"),
    ]
    numbers = {
        "class_model_probability": dict(zip(names, own)),
        "class_model_predicted": [names[int(k)] for k in probs.argmax(1)],
        "filter_layer": layer,
        "filter_channels": chosen,
        "filter_activation": [float(v) for v in reached],
        "best_held_out_activation": [float(v) for v in ceiling],
        "deepdream_layer": dream_layer,
        "deepdream_octave_values": octave_values,
        "steps": int(steps),
        "files": [f"{SECTION}/{name}" for name, _, _ in figures],
    }
    above = int(np.sum(reached > ceiling))
    notes = [
        "Class models classified as their class with probability "
        + ", ".join(f"{n} {p:.2f}" for n, p in zip(names, own)) + ".",
        f"{above} of {channels} {layer} filters activate their channel more than any of the "
        f"{len(test.images)} held-out images.",
    ]
    return numbers, figures, notes


def how_it_breaks(model: Any, train: Any, test: Any, n_show: int = 2,
                  layers: tuple[str, ...] = ("conv1b", "conv2b", "conv3b"),
                  network_layer: str = "conv2b", eps: float = 8 / 255,
                  seed: int = 0) -> tuple[dict[str, Any], list[tuple[str, bytes, str]],
                                          list[str]]:
    """The demo's "What a representation keeps and how it breaks" section.

    Held-out images reconstructed from ``layers`` by optimisation (Mahendran & Vedaldi) and
    from ``network_layer`` by an up-convolutional decoder trained on the training images
    (Dosovitskiy & Brox), and an untargeted PGD attack at ``eps`` on every held-out image
    with Grad-CAM of the original class before and after and of the new class (Selvaraju et
    al. sec. 6).
    """
    from tfvis.explainers import GradCAM
    from tfvis.featurevis.adversarial import adversarial, explain_adversarial
    from tfvis.featurevis.inversion import invert
    from tfvis.featurevis.inversion_net import InversionNetwork
    from tfvis.plotting.featurevis import grid

    shown = test.images[:n_show]
    inverted = invert(model, list(layers), shown, steps=150, seed=seed, verbose=0)
    psnr = inverted.psnr()  # (L, N)
    net = InversionNetwork(model, network_layer, seed=seed, verbose=0)
    net.fit(train.images[:600], epochs=4)
    decoded = net.invert(test.images)
    net_mse = np.mean((decoded - test.images) ** 2, axis=(1, 2, 3))
    net_psnr = 10 * np.log10(1 / np.maximum(net_mse, 1e-12))
    panels, titles = [], []
    for i in range(n_show):
        panels.append(shown[i])
        titles.append(f"held-out #{i}")
        for k, layer in enumerate(inverted.layers):
            panels.append(inverted.images[k, i])
            titles.append(f"{layer}\n{psnr[k, i]:.1f} dB")
        panels.append(decoded[i])
        titles.append(f"decoder, {network_layer}\n{net_psnr[i]:.1f} dB")
    attack = adversarial(model, test.images, labels=test.labels, eps=eps, steps=10, seed=seed,
                         verbose=0)
    explained = explain_adversarial(GradCAM(model, verbose=0), test.images[:n_show],
                                    attack[:n_show])
    names = list(test.names)
    figures = [
        ("inversion.png", _png(grid(np.stack(panels), titles, columns=len(layers) + 2)),
         f"Held-out images reconstructed from {', '.join(layers)} by optimisation "
         f"(Mahendran & Vedaldi: feature loss, alpha-norm and TV priors, 150 steps from "
         f"noise) and from {network_layer} by an up-convolutional decoder trained 4 epochs "
         f"on {min(600, len(train.images))} training images (Dosovitskiy & Brox); PSNR under each"),
        ("adversarial.png", _png(explained.figure(class_names=names)),
         f"PGD (L-inf eps {eps * 255:.0f}/255, 10 steps) on held-out images, with Grad-CAM of "
         "the original class on the clean and the attacked image and of the new class"),
    ]
    numbers = {
        "inversion_layers": list(inverted.layers),
        "inversion_psnr_db": psnr.mean(axis=1).tolist(),
        "inversion_feature_error": inverted.feature_error.mean(axis=1).tolist(),
        "network_layer": network_layer,
        "network_psnr_db": float(net_psnr.mean()),
        "attack": {"method": "pgd", "eps": eps, "steps": 10,
                   "success_rate": float(attack.success_rate),
                   "images": int(len(attack))},
        "gradcam_rank_correlation": [float(v) for v in explained.rank_correlation],
        "files": [f"{SECTION}/{name}" for name, _, _ in figures],
    }
    notes = [
        "Reconstruction PSNR (mean over the shown images): "
        + ", ".join(f"{layer} {v:.1f} dB" for layer, v in zip(inverted.layers,
                                                           psnr.mean(axis=1)))
        + f"; decoder from {network_layer} {net_psnr.mean():.1f} dB over the "
        f"{len(test.images)} held-out images: deeper layers keep less of the image.",
        f"PGD at eps {eps * 255:.0f}/255 changes the prediction of "
        f"{attack.success.sum()} of {len(attack)} held-out images; Grad-CAM of the original "
        "class before and after the attack has rank correlation "
        + ", ".join(f"{v:.2f}" for v in explained.rank_correlation) + ".",
    ]
    return numbers, figures, notes
