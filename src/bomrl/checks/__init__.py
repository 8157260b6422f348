"""Checks of the library's own math on real data (`bomrl check ...`), one JSON line each; their
configurations are in bomrl.checks.config (import-light)."""
