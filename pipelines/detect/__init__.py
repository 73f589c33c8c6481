"""Detection step: pull the look-back window from the warehouse, run detectors and rules, store findings."""
