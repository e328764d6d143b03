"""ktrdr-cloud: the 'cloud' execution mode (runs the unified executor on a Ray cluster)."""
