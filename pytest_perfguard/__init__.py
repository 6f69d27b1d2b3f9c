"""pytest-perfguard."""
