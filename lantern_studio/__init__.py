"""Lantern Studio: reference documents that steer a live local language model."""

__version__ = "0.1.0"
