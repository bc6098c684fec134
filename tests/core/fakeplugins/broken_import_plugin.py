"""A plugin that fails on import."""

raise RuntimeError("boom at import")
