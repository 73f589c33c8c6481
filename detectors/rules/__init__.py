"""The audit rule library: rules declared in `rules.yaml`, run by `engine.py` with the checks in `checks.py`."""
