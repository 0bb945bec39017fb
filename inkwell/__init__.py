"""Inkwell: AI content creation on small pretrained language models."""

__version__ = "0.1.0"
