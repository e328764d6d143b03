"""The driver's data files in Ray's object store: put once, keyed by content, reused by later jobs.

Every cloud job needs its data files on the worker. Shipping them inside the
task's arguments copies them into the object store again for every job; the
:class:`DataStore` instead ``ray.put``\\ s each distinct content once per
driver process, keyed by the sha256 of the bytes, and hands later jobs the
same ``ObjectRef``. A changed file (or another date range's slice) has other
bytes, hence another key and a new object.

The refs go to the task as top-level arguments, which Ray resolves before the
task starts (no ``ray.get`` on the task's thread, so the task never lends its
CPU away while it waits for data), and the worker writes the resolved bytes
into its private folder.

Bounded: beyond ``KTRDR_CLOUD_DATA_CACHE_MB`` the least recently used
entries are dropped (Ray frees an object once no job holds its ref any
more); one file larger than the whole bound is put for its job and not kept.
A new Ray session (``ray.shutdown`` then ``ray.init``) starts an empty store:
old refs mean nothing there.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["DataStore", "attach_data", "datastore_for_session"]


@attrs.define
class _Entry:
    ref: Any
    size: int


class DataStore:
    """Content-hash → ``ObjectRef``, least recently used evicted beyond ``limit_bytes``."""

    def __init__(self, limit_bytes: int, put: Callable[[bytes], Any] | None = None) -> None:
        self.limit_bytes = max(0, int(limit_bytes))
        self._put = put
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self._lock = threading.Lock()
        #: how many objects this store has put (a reused one is not counted again)
        self.puts = 0
        #: how many lookups found their content already in the store
        self.hits = 0

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return sum(entry.size for entry in self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, content: bytes) -> bool:
        with self._lock:
            return self.key(content) in self._entries

    @staticmethod
    def key(content: bytes) -> str:
        return hashlib.sha256(content).hexdigest()

    def ref_for(self, content: bytes) -> Any:
        """The ref of an object holding ``content``: the stored one, else a new ``put``."""
        return self.lookup(content)[0]

    def lookup(self, content: bytes) -> tuple[Any, bool]:
        """``(ref, whether it was put just now)`` for ``content``."""
        key = self.key(content)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.ref, False
        ref = self._do_put(content)
        with self._lock:
            self.puts += 1
            if len(content) <= self.limit_bytes:
                self._entries[key] = _Entry(ref, len(content))
                self._entries.move_to_end(key)
                self._evict()
        return ref, True

    def _do_put(self, content: bytes) -> Any:
        if self._put is not None:
            return self._put(content)
        import ray

        return ray.put(content)

    def resize(self, limit_bytes: int) -> None:
        """A new bound (the setting changed); entries beyond it are dropped now."""
        with self._lock:
            self.limit_bytes = max(0, int(limit_bytes))
            self._evict()

    def _evict(self) -> None:
        total = sum(entry.size for entry in self._entries.values())
        while total > self.limit_bytes and self._entries:
            _, entry = self._entries.popitem(last=False)
            total -= entry.size


_stores: dict[str, DataStore] = {}
_stores_lock = threading.Lock()


def datastore_for_session(limit_bytes: int) -> DataStore:
    """This driver process's store for the current Ray session (a new session: a new store)."""
    import ray

    session = str(ray.get_runtime_context().get_job_id())
    with _stores_lock:
        store = _stores.get(session)
        if store is None:
            _stores.clear()  # refs of an ended session are dead
            store = _stores[session] = DataStore(limit_bytes)
        store.resize(limit_bytes)
        return store


def attach_data(payload: Any, store: DataStore) -> tuple[Any, list[Any], int]:
    """``(payload without the file bytes, their refs in payload.data_names order, new puts)``."""
    names = tuple(payload.data_files)
    found = [store.lookup(payload.data_files[name]) for name in names]
    refs = [ref for ref, _ in found]
    return attrs.evolve(payload, data_files={}, data_names=names), refs, sum(new for _, new in found)
