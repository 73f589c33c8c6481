"""The DuckDB warehouse: its schema, the single-writer session and helpers to query it."""
