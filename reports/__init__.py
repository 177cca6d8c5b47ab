"""Report templates and assets, shipped as package data."""
