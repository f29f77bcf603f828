"""ceremonies."""
