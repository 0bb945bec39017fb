"""Store: SQLite history of generations (and later feedback, ratings, runs), with numbered migrations."""

from inkwell.store.db import Store

__all__ = ["Store"]
