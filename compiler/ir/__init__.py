"""IR modules: one per language of the pipeline (see docs/architecture.md)."""
