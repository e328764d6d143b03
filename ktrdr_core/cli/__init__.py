"""The ``ktrdr`` command line. Commands live in their own modules, imported on demand."""
