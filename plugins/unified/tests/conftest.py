"""Fixtures of the ktrdr-unified tests (run with only ktrdr-core and ktrdr-unified installed)."""

import torch

from ktrdr_core.testing.fixtures import ktrdr_home  # noqa: F401

torch.set_num_threads(1)
