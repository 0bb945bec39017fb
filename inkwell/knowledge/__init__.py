"""Knowledge folders: documents read (ingest.py), cut into cited passages (chunk.py) and indexed for hybrid
BM25 + embedding search (index.py), kept under INKWELL_HOME/knowledge/NAME/. Compose grounds writing on them.

    from inkwell.knowledge import KnowledgeBase, Passage
    kb = KnowledgeBase.create("support"); kb.add([Path("faq/")])
    hits: list[Passage] = kb.search("How do I return an item?", k=5, mode="hybrid")

Uses data-level pieces only (models.embedder, home, errors, files); never compose, serve or cli.
"""

from inkwell.knowledge.index import KnowledgeBase, Passage

__all__ = ["KnowledgeBase", "Passage"]
