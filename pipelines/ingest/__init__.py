"""Ingest: read any upload into a canonical frame, check it, and load it into the warehouse."""
