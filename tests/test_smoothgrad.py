"""SmoothGrad: seeded noise, chunking, statistics, and wrapping any gradient explainer."""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import seeded

import tfvis
from tfvis.explainers.sampling import chunking, stream


def linear_model():
    inp = keras.Input((6, 5, 2))
    dense = keras.layers.Dense(3, kernel_initializer=seeded(7))
    return keras.Model(inp, dense(keras.layers.Flatten()(inp))), dense


def test_same_seed_is_bitwise_identical_other_seed_differs(model, images):
    first = tfvis.SmoothGrad(model, num_samples=6, seed=3, verbose=0)
    a = first.explain(images, 1).raw
    np.testing.assert_array_equal(first.explain(images, 1).raw, a)  # calls do not drift
    again = tfvis.SmoothGrad(model, num_samples=6, seed=3, verbose=0).explain(images, 1).raw
    np.testing.assert_array_equal(again, a)
    other = tfvis.SmoothGrad(model, num_samples=6, seed=4, verbose=0).explain(images, 1).raw
    assert not np.allclose(other, a)


def test_more_samples_than_batch_size_equals_one_big_chunk(model, images):
    wide = tfvis.SmoothGrad(model, num_samples=11, batch_size=64, verbose=0)
    narrow = tfvis.SmoothGrad(model, num_samples=11, batch_size=3, verbose=0)
    np.testing.assert_allclose(narrow.explain(images, 2).raw, wide.explain(images, 2).raw,
                               rtol=1e-5, atol=1e-8)
    for stat in ("vargrad", "squaregrad"):
        w = tfvis.SmoothGrad(model, num_samples=7, batch_size=64, statistic=stat, verbose=0)
        n = tfvis.SmoothGrad(model, num_samples=7, batch_size=2, statistic=stat, verbose=0)
        np.testing.assert_allclose(n.explain(images, 0).raw, w.explain(images, 0).raw,
                                   rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("count, n, batch_size", [(50, 1, 32), (50, 5, 32), (7, 5, 3),
                                                  (3, 40, 32), (64, 8, 8), (1, 1, 1)])
def test_chunks_stay_within_batch_size_and_cover_every_sample(count, n, batch_size):
    iterations, k = (int(v) for v in chunking(count, tf.constant(n), batch_size))
    assert k * n <= max(batch_size, n) and k >= 1  # memory bounded, whatever num_samples is
    assert iterations * k >= count and iterations * k - count < iterations  # little padding


def test_stream_runs_one_chunk_at_a_time_and_masks_padding():
    # Memory is bounded by batch_size only if the loop never overlaps iterations (TF's
    # while_loop runs up to 10 at once by default, each holding a chunk's activations).
    @tf.function(autograph=False)
    def total():
        def step(index, valid):
            return (tf.reduce_sum(tf.where(valid, tf.cast(index, tf.float32), 0.0)),)
        return stream(5, tf.constant(2), 4, step, (tf.constant(0.0),))[0]

    assert total().numpy() == 0 + 1 + 2 + 3 + 4  # 3 iterations of k=2, the 6th index padding
    loops = [op for op in total.get_concrete_function().graph.get_operations()
             if op.type in ("While", "StatelessWhile")]
    assert loops and all(op.get_attr("parallel_iterations") == 1 for op in loops)


def test_noise_free_smoothgrad_is_the_wrapped_explainer(model, images):
    for cls in (tfvis.Saliency, tfvis.GuidedBackprop, tfvis.GradientInput):
        inner = cls(model, verbose=0)
        plain = inner.explain(images, 3).raw
        smooth = tfvis.SmoothGrad(inner, num_samples=3, noise=0.0).explain(images, 3)
        np.testing.assert_allclose(smooth.raw, plain, rtol=1e-5, atol=1e-8)
        squares = tfvis.SmoothGrad(inner, num_samples=3, noise=0.0, statistic="squaregrad")
        np.testing.assert_allclose(squares.explain(images, 3).raw, plain ** 2, rtol=1e-4,
                                   atol=1e-12)


def test_linear_model_closed_form():
    """The gradient of a linear model is its weights at every noisy copy: the mean is the
    weights, the variance zero; gradient x input averages to x * w (the noise has mean 0,
    and the seeded draws of this test happen to average within 5% of the range)."""
    model, dense = linear_model()
    kernel = dense.kernel.numpy()[:, 1].reshape(6, 5, 2)
    x = np.random.default_rng(3).random((2, 6, 5, 2)).astype(np.float32)
    mean = tfvis.SmoothGrad(model, num_samples=20, noise=0.3, verbose=0).explain(x, 1)
    np.testing.assert_allclose(mean.raw, np.broadcast_to(kernel, x.shape), rtol=1e-5)
    var = tfvis.SmoothGrad(model, num_samples=20, noise=0.3, statistic="vargrad", verbose=0)
    np.testing.assert_allclose(var.explain(x, 1).raw, 0.0, atol=1e-6)  # ~w^2 = 1e-2
    gi = tfvis.SmoothGrad(tfvis.GradientInput(model, verbose=0), num_samples=400, noise=0.2,
                          seed=1).explain(x, 1)
    np.testing.assert_allclose(gi.raw / kernel, x, atol=0.05)


def test_targets_are_fixed_on_the_clean_input(model, images):
    """With noise so large that noisy copies change class, the top-1 target of the clean
    input is still the one explained (and reported)."""
    smooth = tfvis.SmoothGrad(model, num_samples=5, noise=5.0, verbose=0)
    auto = smooth.explain(images)
    top = tfvis.Saliency(model, verbose=0).explain(images).targets
    np.testing.assert_array_equal(auto.targets, top)
    np.testing.assert_array_equal(smooth.explain(images, targets=top).raw, auto.raw)


def test_global_random_state_is_untouched(model, images):
    np_state = np.random.get_state()[1].copy()
    py_state = random.getstate()
    tf_state = tf.random.get_global_generator().state.numpy().copy()
    tfvis.SmoothGrad(model, num_samples=4, verbose=0).explain(images)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert random.getstate() == py_state
    np.testing.assert_array_equal(tf.random.get_global_generator().state.numpy(), tf_state)


def test_bad_options_are_clear_errors(model):
    with pytest.raises(TypeError, match="gradient explainer"):
        tfvis.SmoothGrad(tfvis.GradCAM(model))
    with pytest.raises(TypeError, match="wrapped explainer"):
        tfvis.SmoothGrad(tfvis.Saliency(model), channels="sum")
    with pytest.raises(ValueError, match="num_samples"):
        tfvis.SmoothGrad(model, num_samples=0)
    with pytest.raises(ValueError, match="noise"):
        tfvis.SmoothGrad(model, noise=-0.1)
    with pytest.raises(ValueError, match="statistic"):
        tfvis.SmoothGrad(model, statistic="median")
    with pytest.raises(TypeError, match="seed"):
        tfvis.SmoothGrad(model, seed=None)
