"""Generation: decoding settings, the engine, template-driven writing, structured output and batch jobs."""
