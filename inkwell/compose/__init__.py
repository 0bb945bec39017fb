"""Writing on top of generation: long-form plans, grounding with citations, facts tables."""
