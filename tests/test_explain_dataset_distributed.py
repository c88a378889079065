"""explain_dataset with a tf.distribute strategy (2 logical CPUs) and on a local Ray cluster:
the same store as one device."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("zarr")

MIRRORED = """
import sys
sys.path.insert(0, {tests!r})
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from conftest import gap_dense_model
from tfvis.distributed import explain_dataset
model = gap_dense_model()
x = np.random.default_rng(1).random((13, 16, 20, 3)).astype("float32")
import tfvis
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
gradcam = tfvis.GradCAM(model)
# 13 images in shards of 8 (8 + 5), chunks of 3 padded to 4 for 2 replicas: uneven everywhere
two = explain_dataset(model, x, [lambda m: gradcam, "saliency"], {out!r} + "/two",
                      batch_size=3, shard_size=8, strategy=strategy, verbose=0)
assert gradcam.traces() == 1, gradcam.traces()  # one compiled distributed step: 4 chunks
explain_dataset(model, x[:12], [lambda m: gradcam, "saliency"], {out!r} + "/again",
                batch_size=3, shard_size=4, strategy=strategy, verbose=0)
assert gradcam.traces() == 1, gradcam.traces()  # reused over 3 more shards and runs
one = explain_dataset(model, x, ["gradcam", "saliency"], {out!r} + "/one", batch_size=3,
                      shard_size=8, verbose=0)
for name in ("gradcam", "saliency"):
    np.testing.assert_allclose(np.asarray(two.maps(name), np.float32),
                               np.asarray(one.maps(name), np.float32), atol=2e-3)
    np.testing.assert_allclose(two.scores(name), one.scores(name), rtol=1e-5)
np.testing.assert_array_equal(two.targets, one.targets)
assert len(two) == 13
print("OK", strategy.num_replicas_in_sync)
"""


def test_mirrored_strategy_on_two_logical_cpus_equals_one_device(tmp_path):
    script = MIRRORED.format(tests=str(Path(__file__).parent), out=str(tmp_path))
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "OK 2" in done.stdout
