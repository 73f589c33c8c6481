"""claimwatch pipelines: the CLI, Prefect flows, warehouse, ingest, targeting and outputs."""

__version__ = "0.1.0"
