"""Keras callbacks: TensorBoard events (tags, steps, image counts), PNG/NPZ files, reuse across
fits, no effect on training, clear errors."""

import glob

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

import tfvis
from tfvis.callbacks import ExplanationLogger, FeatureEvolution
from tfvis.datasets import shapes
from tfvis.demo import build_model


def events(log_dir):
    """(tag, step, number of images) for every image summary under ``log_dir``."""
    found = []
    for path in sorted(glob.glob(f"{log_dir}/**/events.out.tfevents.*", recursive=True)):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                found.append((value.tag, event.step, len(value.tensor.string_val) - 2))
    return found


@pytest.fixture(scope="module")
def data():
    return shapes(64, 32, seed=0)


def compiled(seed=0):
    model = build_model((32, 32, 3), 4, seed)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    return model


def test_explanation_logger_writes_tensorboard_png_and_npz(tmp_path, data):
    model = compiled()
    cb = ExplanationLogger("gradcam", data.images[:5], "labels", data.labels[:5],
                           log_dir=tmp_path / "tb", png_dir=tmp_path / "png",
                           npz_dir=tmp_path / "npz")
    model.fit(data.images, data.labels, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    assert events(tmp_path / "tb") == [("gradcam/epoch", 1, 5), ("gradcam/epoch", 2, 5)]
    assert len(glob.glob(str(tmp_path / "png" / "step_000002" / "*.png"))) == 5
    saved = np.load(tmp_path / "npz" / "gradcam_epoch_step_000002.npz")
    assert saved["maps"].shape == (5, 32, 32)
    assert saved["targets"].tolist() == data.labels[:5].tolist()
    # the logged maps are those of the final weights
    direct = tfvis.GradCAM(model, verbose=0)(data.images[:5], targets=data.labels[:5])
    np.testing.assert_allclose(saved["maps"], direct.maps, atol=1e-5)


def test_reuse_across_fits_keeps_steps_increasing_without_retrace(tmp_path, data):
    model = compiled()
    cb = ExplanationLogger("gradcam", data.images[:3], log_dir=tmp_path, every_n_epochs=1,
                           every_n_batches=2)
    model.fit(data.images, data.labels, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
    model.fit(data.images, data.labels, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
    found = events(tmp_path)
    assert [s for t, s, _ in found if t.endswith("/epoch")] == [1, 2]
    assert [s for t, s, _ in found if t.endswith("/batch")] == [2, 4, 6, 8]
    assert cb.explainer.traces() == 1


def test_callbacks_that_log_do_not_change_training(tmp_path, data):
    """Both callbacks log after every epoch (TensorBoard and NPZ) and the weights stay those
    of a fit without them."""
    plain, watched = compiled(), compiled()
    logger = ExplanationLogger("gradcampp", data.images[:4], log_dir=tmp_path / "tb",
                               npz_dir=tmp_path / "maps", every_n_epochs=1)
    evolution = FeatureEvolution(data.images[:4], max_filters=4, log_dir=tmp_path / "features",
                                 npz_dir=tmp_path / "acts", every_n_epochs=1)
    for model, callbacks in ((plain, []), (watched, [logger, evolution])):
        model.fit(data.images, data.labels, epochs=2, batch_size=16, verbose=0,
                  shuffle=False, callbacks=callbacks)
    for a, b in zip(plain.get_weights(), watched.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert events(tmp_path / "tb") == [("gradcampp/epoch", 1, 4), ("gradcampp/epoch", 2, 4)]
    saved = np.load(tmp_path / "maps" / "gradcampp_epoch_step_000002.npz")["maps"]
    direct = tfvis.GradCAMPlusPlus(watched, verbose=0)(data.images[:4])
    np.testing.assert_allclose(saved, direct.maps, atol=1e-5)  # the final weights' maps
    tags = {(t, s) for t, s, _ in events(tmp_path / "features")}
    for step in (1, 2):
        assert ("kernels/first_conv", step) in tags
        for path in evolution.paths:
            assert (f"{path}/top_patches", step) in tags
            assert (f"{path}/activations", step) in tags
    last = evolution.paths[-1]
    acts = np.load(tmp_path / "acts" / f"{last}_max_activation_step_000002.npz")["max"]
    captured = {}
    tfvis.surgery.run_graph(watched, tf.constant(data.images[:4]),
                            hooks={last: lambda a: captured.setdefault("a", a)})
    np.testing.assert_allclose(acts, captured["a"].numpy()[..., :4].max(axis=(1, 2)), rtol=1e-5)


def test_explainer_forms_and_dataset_probe(tmp_path, data):
    model = compiled()
    ds = tf.data.Dataset.from_tensor_slices((data.images[:6], data.labels[:6])).batch(4)
    for spec in (tfvis.GradCAM(model, verbose=0), lambda m: tfvis.CAM(m, verbose=0), "cam"):
        cb = ExplanationLogger(spec, ds, "labels", npz_dir=tmp_path / str(id(spec)))
        model.fit(data.images, data.labels, epochs=1, verbose=0, callbacks=[cb])
        (saved,) = glob.glob(str(tmp_path / str(id(spec)) / "*.npz"))
        assert np.load(saved)["targets"].tolist() == data.labels[:6].tolist()


def test_errors_are_clear(tmp_path, data):
    model = compiled()
    with pytest.raises(ValueError, match="every_n_epochs"):
        ExplanationLogger("gradcam", data.images, every_n_epochs=0, log_dir=tmp_path)
    with pytest.raises(ValueError, match="at least one"):
        ExplanationLogger("gradcam", data.images)
    with pytest.raises(ValueError, match="another model"):
        ExplanationLogger(tfvis.GradCAM(compiled(), verbose=0), data.images,
                          log_dir=tmp_path).set_model(model)
    cb = ExplanationLogger("gradcam", data.images[:2], targets=99, log_dir=tmp_path)
    with pytest.raises(RuntimeError, match="ExplanationLogger \\(gradcam\\) failed at epoch 1.*out of range"):
        model.fit(data.images, data.labels, epochs=1, verbose=0, callbacks=[cb])


def test_feature_evolution_logs_patches_activations_and_kernels(tmp_path, data):
    model = compiled()
    cb = FeatureEvolution(data.images[:8], max_filters=9, log_dir=tmp_path / "tb",
                          png_dir=tmp_path / "png", npz_dir=tmp_path / "npz", every_n_epochs=2)
    model.fit(data.images, data.labels, epochs=4, verbose=0, callbacks=[cb])
    assert cb.paths == ["conv1a", "conv2b", "conv3b"]
    tags = {(t, s) for t, s, _ in events(tmp_path / "tb")}
    for step in (2, 4):
        for path in cb.paths:
            assert (f"{path}/top_patches", step) in tags and (f"{path}/activations", step) in tags
        assert ("kernels/first_conv", step) in tags
    saved = np.load(tmp_path / "npz" / "conv3b_max_activation_step_000004.npz")["max"]
    assert saved.shape == (8, 9)
    acts = {}
    tfvis.surgery.run_graph(model, tf.constant(data.images[:8]),
                            hooks={"conv3b": lambda a: acts.setdefault("a", a)})
    np.testing.assert_allclose(saved, acts["a"].numpy()[..., :9].max(axis=(1, 2)), rtol=1e-5)


def test_top_patches_pick_the_strongest_location():
    from tfvis.callbacks.evolution import top_patches

    images = np.zeros((2, 16, 16, 3), np.float32)
    images[1, 12:16, 0:4] = 1.0  # bottom-left bright corner of the second image
    acts = np.zeros((2, 4, 4, 1), np.float32)
    acts[1, 3, 0, 0] = 5.0
    (patch,) = top_patches(images, acts, window=4)
    assert patch.min() == 255  # the whole patch is the bright corner
