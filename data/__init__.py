"""Data instructgen ships: the example pipeline config, samples per format, seed tasks (package data)."""
