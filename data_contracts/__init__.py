"""Declared data contracts of the uploads and reference files, and the suites built from them."""
