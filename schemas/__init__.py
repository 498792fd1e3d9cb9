"""JSON Schemas, one per format (draft 2020-12): `schemas/<format>.schema.json`."""
