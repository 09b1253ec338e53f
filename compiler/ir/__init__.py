"""IR modules: one per language of the pipeline (see docs/architecture.md),
with their printer and checks, and queries over any of them (walk.py,
callgraph.py)."""
