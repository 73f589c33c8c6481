"""Synthetic district generator: a realistic inbox with labelled anomalies and defective inputs."""
