"""ktrdr-mode-example: an execution mode named ``example`` for ktrdr.

The plugin module (``ktrdr_mode_example.plugin``) registers the mode; the
mode (``ktrdr_mode_example.mode``) runs the core's training engine. Copy
this distribution to start your own mode: see README.md.
"""

__version__ = "0.1.0"
