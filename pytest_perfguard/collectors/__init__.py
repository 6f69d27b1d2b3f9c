"""Collectors: each one measures one thing and fills the typed records in ``record.py``."""
