"""Prompting: content templates, few-shot examples and prompt rendering within a model's context."""
