"""paperlab-profuser: not yet implemented (see the package README)."""

__all__: list[str] = []
