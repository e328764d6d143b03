"""Every test gets its own KTRDR_HOME and a clean ktrdr environment (ktrdr_core.testing.fixtures)."""

from ktrdr_core.testing.fixtures import ktrdr_home  # noqa: F401
