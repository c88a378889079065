"""The overlapped stages of explain_dataset: read-ahead and write-behind are bounded, keep
the order, and raise their errors in the caller (never hang); a failed store write leaves
the earlier shards complete and the failed one pending."""

import threading
import time

import numpy as np
import pytest

from tfvis.distributed.pipeline import WriteBehind, read_ahead

pytest.importorskip("zarr")


def test_read_ahead_keeps_order_bounds_the_lead_and_raises_the_producers_error():
    produced = []

    def items():
        for i in range(5):
            produced.append(i)
            yield i
        raise OSError("disk gone")

    got = []
    stream = read_ahead(items(), depth=1)
    with pytest.raises(OSError, match="disk gone"):
        for item in stream:
            time.sleep(0.05)  # time for the producer to run ahead as far as it may
            assert len(produced) <= item + 2  # the item held plus one read ahead
            got.append(item)
    assert got == [0, 1, 2, 3, 4]  # every item before the error, in order


def test_closing_read_ahead_stops_the_producer():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    stream = read_ahead(items(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert len(produced) <= 3
    time.sleep(0.1)
    assert len(produced) <= 3  # stopped, not still reading


def test_write_behind_is_bounded_ordered_and_raises_a_writes_error():
    release, written = threading.Event(), []

    def write(i):
        release.wait()
        written.append(i)

    writer = WriteBehind(write, depth=1)
    writer.submit(0)  # taken by the writer, which waits
    time.sleep(0.05)
    writer.submit(1)  # waits in the queue
    third = threading.Thread(target=writer.submit, args=(2,))
    third.start()
    third.join(0.3)
    assert third.is_alive()  # blocked: one write running and one waiting is the bound
    release.set()
    third.join(5)
    writer.close()
    assert written == [0, 1, 2]

    def failing(i):
        if i == 1:
            raise ValueError("no space left")
        written.append(i)

    written.clear()
    writer = WriteBehind(failing)
    with pytest.raises(ValueError, match="no space left"):
        for i in range(50):  # the error surfaces in a later submit (or close), not a hang
            writer.submit(i)
            time.sleep(0.01)
        writer.close()
    assert written == [0]  # nothing after the failed write
    with pytest.raises(ValueError, match="no space left"):
        writer.close()


def test_a_failed_store_write_raises_and_leaves_that_shard_pending(tmp_path, monkeypatch):
    from conftest import gap_dense_model

    from tfvis.distributed import explain_dataset, store

    x = np.random.default_rng(0).random((12, 16, 20, 3)).astype("float32")
    real = store.write_shard

    def write_shard(out, start, ids, results):
        if start == 4:
            raise OSError("quota exceeded")
        real(out, start, ids, results)

    monkeypatch.setattr(store, "write_shard", write_shard)
    with pytest.raises(OSError, match="quota exceeded"):
        explain_dataset(gap_dense_model(), x, "gradcam", tmp_path / "out", shard_size=4,
                        verbose=0)
    assert sorted(store.done_shards(tmp_path / "out")) == [0]  # 2 is not run or not marked
    monkeypatch.setattr(store, "write_shard", real)
    run = explain_dataset(gap_dense_model(), x, "gradcam", tmp_path / "out", shard_size=4,
                          verbose=0)
    assert run.manifest["complete"] and len(store.done_shards(tmp_path / "out")) == 3
