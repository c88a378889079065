"""The one chunk loop: streamed sources equal arrays, any chunk size gives the same result,
padding never retraces, and a tf.distribute strategy splits chunks over replicas."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tfvis
from tfvis.engine import runner
from tfvis.inputs import InputSpec, as_source

SPEC = [InputSpec("x", (None, 4, 5, 2))]


def counting_step():
    seen = []

    def step(x, w):
        seen.append(int(x.shape[0]))
        return tf.reduce_sum(x, axis=(1, 2, 3)) * w[:, 0], x[:, 0, 0, 0]

    return step, seen


@pytest.mark.parametrize("size", [1, 3, 4, 7, 50])
def test_any_chunk_size_gives_the_same_rows_in_order(size):
    x = np.random.default_rng(0).random((7, 4, 5, 2)).astype(np.float32)
    weights = np.arange(7, dtype=np.float32)[:, None]
    step, seen = counting_step()
    out = runner.collect(runner.run(step, as_source(x, SPEC, 0),
                                    lambda a, b: (weights[a:b],), batch_size=size))
    np.testing.assert_allclose(out[0], x.sum((1, 2, 3)) * weights[:, 0], rtol=1e-6)
    np.testing.assert_array_equal(out[1], x[:, 0, 0, 0])
    assert set(seen) == {min(size, 7)}  # every chunk padded to one shape: no retrace


def test_datasets_and_generators_stream_without_concatenating():
    x = np.random.default_rng(1).random((10, 4, 5, 2)).astype(np.float32)
    reference = x.sum((1, 2, 3))
    read = []

    def generator():
        for i in range(0, 10, 3):
            read.append(i)
            yield x[i:i + 3]

    forms = {
        "dataset": tf.data.Dataset.from_tensor_slices(x).batch(4),
        "pairs": tf.data.Dataset.from_tensor_slices((x, np.arange(10))),
        "generator": generator(),
    }
    for name, data in forms.items():
        source = as_source(data, SPEC, 0)
        assert source.n is None and source.streamed
        step, _ = counting_step()
        chunks = runner.run(step, source, lambda a, b: (np.ones((b - a, 1), np.float32),),
                            batch_size=4)
        first = next(chunks)
        if name == "generator":
            assert read == [0, 3]  # only what the first chunk needs was read
        rest = list(chunks)
        got = np.concatenate([first[2][0].numpy()] + [c[2][0].numpy() for c in rest])
        np.testing.assert_allclose(got, reference, rtol=1e-6, err_msg=name)
        assert source.n == 10


def test_explainer_stream_equals_explain_for_a_dataset(model, images):
    explainer = tfvis.GradCAM(model, verbose=0)
    whole = explainer.explain(images, targets=[0, 1, 2, 3, 0])
    dataset = tf.data.Dataset.from_tensor_slices(images)
    parts = list(explainer.stream(dataset, targets=[0, 1, 2, 3, 0], batch_size=2))
    assert [len(p) for p in parts] == [2, 2, 1]
    np.testing.assert_allclose(np.concatenate([p.raw for p in parts]), whole.raw, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([p.targets for p in parts]), whole.targets)
    with pytest.raises(ValueError, match="got 4 targets"):
        explainer.explain(dataset, targets=[0, 1, 2, 3])
    rise = tfvis.RISE(model, num_masks=16, seed=0, verbose=0)
    parts = list(rise.stream(images, targets=[0, 1, 2, 3, 0], batch_size=2))
    np.testing.assert_allclose(np.concatenate([p.raw for p in parts]),
                               rise.explain(images, targets=[0, 1, 2, 3, 0]).raw, rtol=1e-5)


def test_a_distribute_strategy_splits_chunks_over_replicas():
    """Each chunk is split over 2 logical CPUs in one compiled call: the rows come back in
    order, each replica computes its half, and one `Distributed` step
    reused over calls and chunks traces once (padding keeps one shape)."""
    script = textwrap.dedent("""
        import os
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tfvis.engine import runner
        from tfvis.inputs import InputSpec, as_source
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        spec = [InputSpec("x", (None, 3, 3, 1))]
        x = np.random.default_rng(0).random((7, 3, 3, 1)).astype(np.float32)
        w = np.arange(7, dtype=np.float32)
        def step(t, w):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            where = tf.fill(tf.shape(t)[:1], tf.cast(replica, tf.int32))
            return tf.reduce_sum(t, axis=(1, 2, 3)) * w, where
        out = runner.collect(runner.run(tf.function(step), as_source(x, spec, 0),
                                        lambda a, b: (w[a:b],), batch_size=3, strategy=strategy))
        np.testing.assert_allclose(out[0], x.sum((1, 2, 3)) * w, rtol=1e-6)
        # chunks of 4 (3 rounded up to the 2 replicas): rows 0-1 on cpu:0, 2-3 on cpu:1, ...
        assert out[1].tolist() == [0, 0, 1, 1, 0, 0, 1], out[1]
        shared = runner.distribute(tf.function(step), strategy)
        for n in (7, 5, 4):  # 2, 2 and 1 chunks of 4 rows: one shape, one trace
            got = runner.collect(runner.run(shared, as_source(x[:n], spec, 0),
                                            lambda a, b: (w[a:b],), batch_size=4))
            np.testing.assert_allclose(got[0], x[:n].sum((1, 2, 3)) * w[:n], rtol=1e-6)
        assert shared.experimental_get_tracing_count() == 1
        print("OK", strategy.num_replicas_in_sync)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OK 2" in result.stdout


def test_probing_a_subclassed_model_loses_no_sample_of_a_generator():
    """A subclassed model's output shape is probed on the first sample; with a one-shot
    generator that sample must still be explained."""
    import keras

    class Linear(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(0))

        def call(self, x):
            return self.fc(keras.ops.reshape(x, (-1, 40)))

    model = Linear()
    x = np.random.default_rng(9).random((5, 4, 5, 2)).astype(np.float32)
    reference = tfvis.Saliency(model, verbose=0).explain(x, targets=1)
    streamed = tfvis.Saliency(model, verbose=0).explain((x[i:i + 2] for i in range(0, 5, 2)),
                                                        targets=1)
    assert len(streamed) == 5
    np.testing.assert_allclose(streamed.raw, reference.raw, rtol=1e-6)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(2)
    assert len(tfvis.Saliency(model, verbose=0).explain(dataset, targets=[0, 1, 2, 0, 1])) == 5
