"""taskexec: a small task runner whose executor calls one script per LLM (before the refactor)."""
