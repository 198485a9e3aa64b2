"""The factory: SPEC.md rendered into deploy/, deterministically, refusing drift."""
