"""Passes: one module per pipeline step, each with a pure run(prog) -> prog."""
