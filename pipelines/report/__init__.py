"""The managers' anomaly report (`report.html`) and its charts."""
