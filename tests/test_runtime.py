"""KTRDR_TORCH_THREADS: validated, defaulting to one thread."""

from __future__ import annotations

import pytest

from ktrdr_core import ConfigurationError
from ktrdr_core.runtime import configure_torch_threads, torch_threads_from_env


@pytest.mark.parametrize(("raw", "threads"), [("", 1), ("  ", 1), ("1", 1), ("4", 4), (" 2 ", 2)])
def test_thread_count_from_env(raw: str, threads: int) -> None:
    assert torch_threads_from_env({"KTRDR_TORCH_THREADS": raw}) == threads


def test_default_is_one_thread() -> None:
    assert torch_threads_from_env({}) == 1


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_malformed_thread_count_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="KTRDR_TORCH_THREADS"):
        torch_threads_from_env({"KTRDR_TORCH_THREADS": raw})


def test_configure_sets_torch_threads() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert configure_torch_threads({"KTRDR_TORCH_THREADS": "3"}) == 3
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
