"""explain_dataset on a local 2-worker Ray cluster: the same store as one process, and a
worker killed mid-run is restarted by Ray with the store still complete."""

import os
import sys

import numpy as np
import pytest

import tfvis
from conftest import gap_dense_model

pytest.importorskip("zarr")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from tfvis.distributed import explain_dataset, explain_dataset_ray  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # factories travel by value
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def dying_once(flag):
    """A factory whose explainer kills its worker process on its second shard, once."""
    def factory(model):
        explainer = tfvis.get_explainer("gradcam", model)
        inner, calls = explainer.explain, []

        def explain(x, targets=None, batch_size=None):
            calls.append(1)
            if len(calls) == 2:
                try:
                    os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
                    os._exit(1)  # the worker dies mid-run, before writing this shard
                except FileExistsError:
                    pass
            return inner(x, targets, batch_size)

        explainer.explain = explain
        return explainer
    return factory


def test_ray_workers_write_the_single_process_store_and_survive_a_killed_worker(
        cluster, tmp_path):
    model = gap_dense_model()
    x = np.random.default_rng(2).random((22, 16, 20, 3)).astype("float32")
    local = explain_dataset(model, x, ["gradcam", "saliency"], tmp_path / "local",
                            shard_size=4, verbose=0)
    flag = str(tmp_path / "died")
    run = explain_dataset_ray(model, x, [dying_once(flag), "saliency"], tmp_path / "ray",
                              num_workers=2, shard_size=4, verbose=0)
    assert os.path.exists(flag)  # a worker did die
    assert run.manifest["complete"] and len(os.listdir(tmp_path / "ray" / "shards")) == 6
    for name in ("gradcam", "saliency"):
        np.testing.assert_array_equal(np.asarray(run.maps(name)), np.asarray(local.maps(name)))
        np.testing.assert_array_equal(run.scores(name), local.scores(name))
    np.testing.assert_array_equal(run.ids, local.ids)
    np.testing.assert_array_equal(run.targets, local.targets)
