"""The driver's data store: each content put once, reused, bounded; jobs read their data from it."""

from __future__ import annotations

from typing import Any

import pytest

from ktrdr_cloud.datastore import DataStore, attach_data
from ktrdr_cloud.payload import build_payload
from ktrdr_core import TrainingManager, TrainingRequest

pytestmark = pytest.mark.usefixtures("on_cluster")

RANGE = {"start_date": "2023-01-01", "end_date": "2023-03-15"}


def _request(**overrides: Any) -> TrainingRequest:
    return TrainingRequest(
        strategy="neuro_mean_reversion", overrides={"seed": 7, "epochs": 2, **overrides}, **RANGE
    )


def test_the_same_content_is_put_once_and_a_changed_one_gets_a_new_object(ray_client: Any) -> None:
    ray = ray_client
    store = DataStore(limit_bytes=10 * 1024 * 1024)
    a = b"timestamp,open\n" + b"1,2\n" * 50_000  # large enough for the shared object store
    first = store.ref_for(a)
    again = store.ref_for(bytes(a))  # equal bytes, another object: found by content
    assert again == first and store.puts == 1 and store.hits == 1
    changed = store.ref_for(a + b"3,4\n")
    assert changed != first and store.puts == 2
    assert ray.get(first) == a and ray.get(changed) == a + b"3,4\n"


def test_least_recently_used_contents_are_dropped_beyond_the_bound() -> None:
    store = DataStore(limit_bytes=250)
    blobs = [bytes([i]) * 100 for i in range(3)]
    store.ref_for(blobs[0])
    store.ref_for(blobs[1])
    store.ref_for(blobs[0])  # used again: blobs[1] is now the least recent
    store.ref_for(blobs[2])
    assert blobs[0] in store and blobs[2] in store and blobs[1] not in store
    assert store.size_bytes <= 250
    store.ref_for(blobs[1])
    assert store.puts == 4  # the dropped one is put again
    big = DataStore(limit_bytes=50)
    big.ref_for(blobs[0])  # larger than the whole bound: put for its job, not kept
    assert len(big) == 0 and big.puts == 1


def test_attach_moves_the_bytes_out_of_the_payload_in_name_order(ray_client: Any) -> None:
    ray = ray_client
    payload = build_payload(_request())
    store = DataStore(limit_bytes=10 * 1024 * 1024)
    light, refs, new = attach_data(payload, store)
    assert light.data_files == {} and light.data_names == tuple(payload.data_files)
    assert new == len(payload.data_files) == 3
    assert [ray.get(r) for r in refs] == list(payload.data_files.values())
    _, again, new_again = attach_data(payload, store)
    assert again == refs and new_again == 0


def test_a_second_job_reuses_the_objects_and_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    manager = TrainingManager()
    first = manager.train(_request(), mode="cloud")
    second = manager.train(_request(), mode="cloud")
    assert first.status == second.status == "success", (first.error, second.error)
    assert second.metadata["cloud"]["data_objects_put"] == 0  # same bytes: the stored refs
    # nothing kept: every job puts its data again, and the result is the same
    monkeypatch.setenv("KTRDR_CLOUD_DATA_CACHE_MB", "0")
    uncached = manager.train(_request(), mode="cloud")
    assert uncached.status == "success", uncached.error
    assert uncached.metadata["cloud"]["data_objects_put"] == 3
    assert uncached.training_metrics["val_loss"] == first.training_metrics["val_loss"]
    assert second.training_metrics["val_loss"] == first.training_metrics["val_loss"]
    cloud = first.metadata["cloud"]
    assert cloud["data_bytes"] < cloud["data_bytes_whole"]
