"""Reusable wizard widgets."""
