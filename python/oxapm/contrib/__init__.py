"""Integrations with frameworks and other APIs."""
