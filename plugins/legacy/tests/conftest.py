"""Fixtures of the ktrdr-legacy tests (run with only ktrdr-core and ktrdr-legacy installed)."""

import torch

from ktrdr_core.testing.fixtures import ktrdr_home  # noqa: F401

torch.set_num_threads(1)
