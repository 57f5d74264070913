"""A small shop whose code blocks its event loop in a few places (a sample project)."""
