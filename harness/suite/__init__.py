"""The suite: its schema, loading it from YAML (with each field's line), the case matrix and the prompts."""
