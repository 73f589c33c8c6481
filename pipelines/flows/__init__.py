"""Prefect flows: thin wiring of the plain steps in `pipelines/nightly.py`."""
