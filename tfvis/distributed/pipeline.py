"""Bounded background stages of the shard loop: read ahead, write behind.

The local engine overlaps three stages: the next shard is read (decoded, resized) on one
thread while this one is explained, and the previous shard's chunks are written (float16
conversion, zarr encoding, marker) on another. Each stage is bounded (a shard or two), so
memory does not grow with the dataset, and an error on either thread is raised in the caller
(never a hang). Both threads spend their time in code that releases the GIL (tf.data, cv2,
zarr's codecs, file writes).
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()
#: Seconds a blocked put/get waits before it looks again for an error or a stop.
_POLL = 0.1


def read_ahead(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yields ``items``, produced on a background thread at most ``depth`` items ahead.

    At most ``depth`` items are being produced or waiting while the caller holds the one it
    was given. An error of the producer is raised here, after the items before it; closing
    the generator (or an error in the caller) stops the producer.
    """
    slots = threading.Semaphore(depth)
    ready: queue.Queue = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        try:
            iterator = iter(items)
            while True:
                while not slots.acquire(timeout=_POLL):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                item = next(iterator, _DONE)
                ready.put((item, None))
                if item is _DONE:
                    return
        except BaseException as err:  # noqa: BLE001 -- re-raised in the consumer
            ready.put((_DONE, err))

    thread = threading.Thread(target=produce, name="tfvis-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, err = ready.get()
            if err is not None:
                raise err
            if item is _DONE:
                return
            slots.release()
            yield item
    finally:
        stop.set()
        thread.join()


class WriteBehind:
    """Runs ``write(*args)`` calls in order on a background thread, at most ``depth`` waiting.

    `submit` blocks while ``depth`` calls wait (memory stays bounded); an error of a write is
    raised by the next `submit` or by `close`, and no later write runs. As a context manager
    it waits for the submitted writes on exit (also when the body raised: what was computed
    is kept), and raises a write's error unless the body's own error is on its way.
    """

    def __init__(self, write: Callable[..., Any], depth: int = 1) -> None:
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tfvis-write-behind",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            args = self._queue.get()
            if args is _DONE:
                return
            if self._error is None:
                try:
                    self._write(*args)
                except BaseException as err:  # noqa: BLE001 -- re-raised by submit/close
                    self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, *args: Any) -> None:
        """Queues ``write(*args)``; blocks while the queue is full."""
        self._raise()
        while True:
            try:
                self._queue.put(args, timeout=_POLL)
                return
            except queue.Full:
                self._raise()

    def close(self) -> None:
        """Waits for the submitted writes; raises the first write's error."""
        if self._thread.is_alive():
            self._queue.put(_DONE)  # the writer consumes until _DONE even after an error
            self._thread.join()
        self._raise()

    def __enter__(self) -> "WriteBehind":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
            return
        try:
            self.close()
        except BaseException:  # noqa: BLE001 -- the body's error is the one to see
            pass
