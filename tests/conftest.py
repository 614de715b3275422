"""Shared test settings: which tests need the native stack."""
