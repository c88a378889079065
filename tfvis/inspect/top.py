"""The strongest activations of feature maps over a dataset, with their image patches
(Zeiler & Fergus fig. 2), streamed with a running top-k.

Per chunk, the compiled step takes the chunk's k strongest units per channel (`chunk_top_k`:
exact, in two stages so that the full pass is a cheap group maximum; ties: the lower
``(image, y, x)`` first), and the host merges those k with the running top-k (one small sort
per chunk), so the result equals the top-k of the whole dataset flattened as
``(image, y, x)`` (a stable sort), for any chunk size, with memory independent of the
dataset's size, at about the forward pass's speed (`benchmarks/inspect.md`). Patches are
cropped with the layer's exact receptive field (`tfvis.surgery.receptive`).

With ``project="deconvnet"`` or ``"guided"`` each top unit is also projected to pixel space
(Zeiler & Fergus fig. 2): the gradient of that one unit (one-hot at ``(image, y, x, channel)``)
w.r.t. the input, through the model's ReLUs gated by the rule (`tfvis.surgery.gates`), cropped
to the unit's receptive field. The images of the current top units are kept on the host while
streaming (at most ``channels x k`` of them, so a generator works too), and the projections are
computed afterwards, ``batch_size`` units per compiled call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfvis.engine import runner
from tfvis.engine.compiled import compile_step
from tfvis.inputs import _pad, model_inputs
from tfvis.inspect.activations import layer_source, model_call, resolve_layers
from tfvis.surgery import capture
from tfvis.surgery.layers import LayerSpec
from tfvis.surgery.receptive import ReceptiveField, receptive_field


@dataclass(frozen=True)
class TopActivations:
    """The k strongest units per channel of one layer over a dataset.

    Attributes:
      layer: the layer path.
      channels: int ``(C,)`` the channels, in the order of the rows below.
      index: int64 ``(C, k)`` image index (position in the dataset) of each activation.
      y, x: int64 ``(C, k)`` unit coordinates in the layer's output.
      value: float32 ``(C, k)`` activation values, strongest first.
      field: the layer's `ReceptiveField` (None when it has no known closed form).
      boxes: int64 ``(C, k, 4)`` ``(x0, y0, x1, y1)`` input-pixel boxes (the receptive
        field clipped to the image), or None without a field.
      projection: float32 ``(C, k, fh, fw, channels)`` or None: with ``project``, each unit's
        pixel-space projection (d unit / d input through the gated ReLUs) cropped to its box
        ``boxes[c, j]``, stored at the top-left of a frame of ``fh x fw`` = the field's size
        clipped to the image (rows / columns past the box's size are zero).
      rule: the ReLU rule of the projection (``"deconvnet"`` or ``"guided"``), or None.
    """

    layer: str
    channels: np.ndarray
    index: np.ndarray
    y: np.ndarray
    x: np.ndarray
    value: np.ndarray
    field: ReceptiveField | None
    boxes: np.ndarray | None
    projection: np.ndarray | None = None
    rule: str | None = None

    def projections(self, size: int | None = None) -> list[list[np.ndarray]]:
        """The pixel-space projections as uint8 RGB images: ``projections[c][j]``.

        Each is cropped to its box, scaled symmetrically around grey (``0.5 + p / (2 max|p|)``,
        so zero is mid-grey, as in Zeiler & Fergus's figures), and resized to ``size x size``
        (nearest) unless ``size`` is None.
        """
        if self.projection is None:
            raise ValueError("no projections: call top_activations(..., project='deconvnet' "
                             "or 'guided')")
        from tfvis.inspect.kernels import nearest
        from tfvis.plotting.images import to_uint8_rgb

        out = []
        for c in range(len(self.channels)):
            row = []
            for j in range(self.index.shape[1]):
                x0, y0, x1, y1 = (int(v) for v in self.boxes[c, j])
                p = self.projection[c, j, : y1 - y0, : x1 - x0]
                scale = float(np.abs(p).max())
                p = 0.5 + p / (2 * scale) if scale > 0 else np.full_like(p, 0.5)
                img = to_uint8_rgb(np.clip(p, 0, 1) * 255.0)
                row.append(nearest(img, size) if size is not None else img)
            out.append(row)
        return out

    def patches(self, images: Any, size: int | None = None) -> list[list[np.ndarray]]:
        """The image patch of every top activation: ``patches[c][j]`` for channel row ``c``.

        Args:
          images: the dataset's images as one array (or anything indexable by image index).
          size: resize every patch to ``size x size`` (nearest; OpenCV) so they tile; None
            keeps the clipped crops (border units give smaller patches).
        """
        if self.boxes is None:
            raise ValueError(f"layer {self.layer!r} has no closed-form receptive field, so "
                             "there are no boxes to crop")
        out = []
        for c in range(len(self.channels)):
            row = []
            for j in range(self.index.shape[1]):
                x0, y0, x1, y1 = (int(v) for v in self.boxes[c, j])
                patch = np.asarray(images[int(self.index[c, j])])[y0:y1, x0:x1]
                if size is not None:
                    from tfvis.inspect.kernels import nearest
                    from tfvis.plotting.images import to_uint8_rgb

                    patch = nearest(to_uint8_rgb(patch), size)
                row.append(patch)
            out.append(row)
        return out


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return int(k)


def top_activations(
    model: keras.Model,
    data: Any,
    layer: LayerSpec = None,
    channels: Sequence[int] | None = None,
    k: int = 9,
    *,
    batch_size: int = 64,
    input: int | str | None = None,
    verbose: int = 0,
    project: str | None = None,
) -> TopActivations:
    """For each channel of ``layer``, its ``k`` strongest activations over ``data``.

    Example:
      >>> top = tfvis.inspect.top_activations(model, x_val, "conv3b", channels=range(8))
      >>> tfvis.plotting.top_patches(top, x_val)

    Args:
      model: a functional or Sequential model (nested models by path).
      data: an array, a `tf.data.Dataset` (samples or batches, with or without labels) or a
        generator; streamed chunk by chunk.
      layer: a spatial layer (name, path, index, layer object; None: the last spatial one).
      channels: the channels to rank (default: all).
      k: activations kept per channel (fewer when the data has fewer units).
      batch_size: images per compiled chunk (the result does not depend on it).
      input: the image input of a multi-input model.
      verbose: 1 shows a progress bar.
      project: ``"deconvnet"`` or ``"guided"``: also project each top unit to pixel space
        with that ReLU rule (Zeiler & Fergus fig. 2; `TopActivations.projection`); None: no
        projection (the default, one pass at the forward pass's speed).

    Returns:
      `TopActivations`, with the receptive-field box of each unit.

    Raises:
      ValueError: a layer whose output is not ``(N, h, w, C)``, a channel out of range, a bad k
        or ``project``.
      TypeError: ``project`` on a model holding a SavedModel (its ReLUs are hidden).
    """
    k = _check_k(k)
    if project not in (None, "deconvnet", "guided"):
        raise ValueError(f"project must be None, 'deconvnet' or 'guided', got {project!r}")
    (path,) = resolve_layers(model, [layer], "top_activations")
    gates = None
    if project is not None:
        from tfvis.surgery.gates import relu_gates

        gates = relu_gates(model, project)[0]  # refuses SavedModels before any work
    source = layer_source(model, data, input)
    n_inputs = max(len(model_inputs(model)), 1)
    count = None

    def reduce(acts, sample):
        nonlocal count
        if acts.shape.rank != 4:
            raise ValueError(f"layer {path!r} has output shape {tuple(acts.shape)}; "
                             "top_activations needs a spatial (N, h, w, C) layer")
        h, w, c = acts.shape[1], acts.shape[2], acts.shape[3]
        chosen = np.arange(c) if channels is None else np.asarray(list(channels), np.int64)
        if chosen.size == 0 or chosen.min() < -c or chosen.max() >= c:
            raise ValueError(f"channels must index the {c} channels of {path!r}, got "
                             f"{list(chosen)}")
        chosen = chosen % c
        count = (chosen, h, w)
        every = len(chosen) == c and (chosen == np.arange(c)).all()
        a = acts if every else tf.gather(acts, chosen, axis=3)  # (B, h, w, C')
        return chunk_top_k(a, sample, k)

    def step(*args):
        xs, sample = args[:n_inputs], args[n_inputs]
        acts = tf.cast(capture(model, model_call(model, xs), [path])[path], tf.float32)
        values, units = reduce(acts, sample)
        # with a projection, the chunk's inputs come back too (to keep the top units' images)
        return (values, units, *xs) if project is not None else (values, units)

    kept: dict[int, list[np.ndarray]] = {}  # image index -> its model inputs (project only)
    best_v = best_i = None  # the running top-k per channel: values and global unit indices
    for start, n, (values, units, *xs) in runner.run(
            compile_step(step), source, lambda a, b: [np.arange(a, b, dtype=np.int64)],
            batch_size=batch_size, verbose=verbose):
        chosen, h, w = count
        best_v, best_i = _merge(best_v, best_i, values[0].numpy(), units[0].numpy(),
                                n * h * w, k)
        if project is not None:
            needed = set(np.unique(best_i // (h * w)).tolist())
            kept = {i: v for i, v in kept.items() if i in needed}
            host = None
            for i in sorted(needed):
                if start <= i < start + n and i not in kept:
                    host = host or [np.asarray(t) for t in xs]
                    kept[i] = [a[i - start].copy() for a in host]
    chosen, h, w = count
    index, rest = np.divmod(best_i, h * w)
    y, x = np.divmod(rest, w)
    try:
        field = receptive_field(model, path, input=input)
    except ValueError:  # a layer without a closed form on the way, or an unknown input size
        field = None
    boxes = None if field is None else field.box(y, x)
    projection = None
    if project is not None:
        if boxes is None:  # no closed form: the whole image is the unit's field
            img_h, img_w = next(iter(kept.values()))[source.index].shape[:2]
            boxes = np.broadcast_to(np.array([0, 0, img_w, img_h], np.int64),
                                    y.shape + (4,)).copy()
        projection = _projections(model, path, kept, index, y, x, chosen, boxes, gates,
                                  source.index, n_inputs, batch_size)
    return TopActivations(path, chosen, index.astype(np.int64), y.astype(np.int64),
                          x.astype(np.int64), best_v.astype(np.float32), field,
                          boxes, projection, project)


def _group(units: int, most: int = 64) -> int:
    """The largest divisor of ``units`` (an image's units) up to ``most``: groups of
    consecutive units never straddle two images."""
    return max(d for d in range(1, min(units, most) + 1) if units % d == 0)


def chunk_top_k(acts: tf.Tensor, sample: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The ``k`` strongest units per channel of a chunk, in the compiled step.

    Exact in two stages, so that the full sort-like pass runs on few units: the chunk's units
    of each channel, in (image, y, x) order, are cut into groups of ``S`` consecutive units;
    the top-k units lie in the k groups of largest maximum (ties: the lower group), since
    each group ranked before a unit's own group holds a unit ranked before it. Those k groups,
    back in index order, give ``k * S`` candidates, whose top-k is the chunk's.

    Args:
      acts: ``(B, h, w, C)`` activations of the chunk.
      sample: int64 ``(B,)`` the dataset index of each row; the runner pads a short last
        chunk by repeating its last row, so a row whose index repeats the previous one is
        padding and takes no part.
      k: units kept per channel (fewer when the chunk has fewer).

    Returns:
      ``(values (B, C, kk), units (B, C, kk))``: the chunk's top-k per channel, strongest
      first, as values and global unit indices ``image * h * w + y * w + x`` (ties: the lower
      index first), repeated on every row (the runner's outputs are per row; read row 0).
      Places beyond the chunk's real units hold index -1.
    """
    hw, c = acts.shape[1] * acts.shape[2], acts.shape[3]
    size = _group(hw)
    per = hw // size  # groups per image
    rows = tf.shape(acts)[0]
    groups = tf.reshape(acts, (-1, size, c))  # (G, S, C): G = B * per
    real = tf.concat([[True], sample[1:] != sample[:-1]], axis=0)  # (B,) not padding
    real = tf.repeat(real, per)  # (G,)
    top = tf.where(real[:, None], tf.reduce_max(groups, axis=1), float("-inf"))  # (G, C)
    kg = tf.minimum(k, rows * per)
    _, gid = tf.math.top_k(tf.transpose(top), k=kg)  # (C, kg), stable: lower group first
    gid = tf.sort(gid, axis=1)  # back in index order, for the ties of the second stage
    shape = tf.stack([c, kg, size])
    at = tf.stack([tf.broadcast_to(gid[:, :, None], shape),
                   tf.broadcast_to(tf.range(size)[None, None], shape),
                   tf.broadcast_to(tf.range(c)[:, None, None], shape)], axis=-1)
    values = tf.gather_nd(groups, at)  # (C, kg, S): values[c, j, t] = groups[gid[c, j], t, c]
    g = tf.cast(gid, tf.int64)
    unit = (tf.gather(sample, gid // per) * hw + (g % per) * size)[:, :, None] \
        + tf.range(size, dtype=tf.int64)[None, None]  # (C, kg, S) global unit index
    kept = tf.gather(real, gid)[:, :, None]
    values = tf.reshape(tf.where(kept, values, float("-inf")), (c, -1))
    unit = tf.reshape(tf.where(kept, unit, tf.constant(-1, tf.int64)), (c, -1))
    values, pick = tf.math.top_k(values, k=tf.minimum(k, kg * size))  # stable: lower first
    units = tf.gather(unit, pick, batch_dims=1)  # (C, kk)
    return (tf.broadcast_to(values[None], (rows, c, tf.shape(values)[1])),
            tf.broadcast_to(units[None], (rows, c, tf.shape(units)[1])))


def _merge(best_v: np.ndarray | None, best_i: np.ndarray | None, values: np.ndarray,
           units: np.ndarray, real: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The running top-k ``(C, k)`` merged with a chunk's top-k ``(C, kk)`` (of which the
    first ``real`` places at most are units; the rest is padding): by value, then by the
    global unit index (ties keep the lower image, then the lower position)."""
    values, units = values[:, :real], units[:, :real]
    if best_v is not None:
        values = np.concatenate([best_v, values], axis=1)
        units = np.concatenate([best_i, units], axis=1)
    order = np.lexsort((units, -values), axis=-1)[:, :k]  # value down, then index up
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(units, order, axis=1)


def unit_gradient_step(model: keras.Model, path: str, replace: dict, index: int = 0,
                       n_inputs: int = 1):
    """A compiled step ``(*inputs, y, x, channel) -> (d unit / d input,)``: row ``u`` is the
    gradient of the single unit ``acts[u, y[u], x[u], channel[u]]`` of layer ``path`` w.r.t.
    input ``index`` of row ``u`` (one unit per row; ``replace``: e.g. ReLU gates)."""

    def step(*args):
        xs, (uy, ux, uc) = list(args[:n_inputs]), args[n_inputs:]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(xs[index])
            acts = capture(model, model_call(model, xs), [path], replace=replace)[path]
            rows = tf.range(tf.shape(acts)[0], dtype=tf.int32)
            at = tf.stack([rows, tf.cast(uy, tf.int32), tf.cast(ux, tf.int32),
                           tf.cast(uc, tf.int32)], axis=1)
            score = tf.reduce_sum(tf.gather_nd(tf.cast(acts, tf.float32), at))
        grads = tape.gradient(score, xs[index])
        grads = tf.zeros_like(xs[index]) if grads is None else grads
        return (tf.cast(grads, tf.float32),)

    return compile_step(step)


def _projections(model, path, kept, index, y, x, chosen, boxes, gates, input_index,
                 n_inputs, batch_size) -> np.ndarray:
    """``(C, k, fh, fw, channels)`` crops of each top unit's gated gradient, ``batch_size``
    units per compiled call."""
    c_count, k = index.shape
    units = [(c, j) for c in range(c_count) for j in range(k)]
    sizes = boxes[..., 2:] - boxes[..., :2]  # (C, k, 2) as (width, height)
    fw, fh = int(sizes[..., 0].max()), int(sizes[..., 1].max())
    depth = next(iter(kept.values()))[input_index].shape[-1]
    out = np.zeros((c_count, k, fh, fw, depth), np.float32)
    step = unit_gradient_step(model, path, gates, input_index, n_inputs)
    size = min(batch_size, len(units))
    for start in range(0, len(units), size):
        part = units[start:start + size]
        xs = [_pad(np.stack([kept[int(index[c, j])][i] for c, j in part]), size)
              for i in range(n_inputs)]
        extra = [_pad(np.array([v[c, j] for c, j in part], np.int32), size)
                 for v in (y, x, np.broadcast_to(chosen[:, None], index.shape))]
        (grads,) = step(*[tf.convert_to_tensor(a) for a in (*xs, *extra)])
        grads = grads.numpy()
        for u, (c, j) in enumerate(part):
            x0, y0, x1, y1 = (int(v) for v in boxes[c, j])
            out[c, j, : y1 - y0, : x1 - x0] = grads[u, y0:y1, x0:x1]
    return out


def probe_patches(images: np.ndarray, acts: np.ndarray, window: int, size: int = 32,
                  field: ReceptiveField | None = None) -> np.ndarray:
    """For each filter, the input patch around its strongest activation on a few probe images.

    Args:
      images: ``(N, H, W, C)`` probe images; acts: ``(N, h, w, F)`` activations.
      window: side of the square patch centred on the unit (used without ``field``).
      size: side of the returned tiles (nearest-neighbour resize).
      field: the layer's exact receptive field: the patch is the unit's field instead.

    Returns:
      uint8 RGB ``(F, size, size, 3)`` patches.
    """
    from tfvis.inspect.kernels import nearest
    from tfvis.plotting.images import to_uint8_rgb

    n, h, w, f = acts.shape
    big_h, big_w = images.shape[1:3]
    out = []
    for c in range(f):
        k, i, j = np.unravel_index(np.argmax(acts[..., c]), (n, h, w))
        if field is not None:
            x0, y0, x1, y1 = (int(v) for v in field.box(i, j))
        else:
            cy, cx = int((i + 0.5) * big_h / h), int((j + 0.5) * big_w / w)
            y0 = int(np.clip(cy - window // 2, 0, max(big_h - window, 0)))
            x0 = int(np.clip(cx - window // 2, 0, max(big_w - window, 0)))
            y1, x1 = y0 + window, x0 + window
        out.append(nearest(to_uint8_rgb(images[k, y0:y1, x0:x1]), size))
    return np.stack(out)
