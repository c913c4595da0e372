"""Rental-building access & video gateway."""

__version__ = "0.1.0"
