"""Long-form writing: plan → sections → revision with memory (`inkwell write long`, docs/longform.md).

    from inkwell.compose.longform import LongRequest, write_long
    piece = write_long(engine, LongRequest("article", "how tides work", words=1500), Path("piece"))

Stages live one per module (plan, draft, revise, assemble) over shared measures (checks) and memory; run.py
joins them over a run folder that makes every run inspectable and resumable; session.py is the interactive
writer's loop over the store's tree of versions.
"""

from inkwell.compose.longform.draft import DraftOptions
from inkwell.compose.longform.plan import KINDS, Outline
from inkwell.compose.longform.run import STAGES, LongRequest, LongWriter, RunFolder, prepare_folder, write_long

__all__ = [
    "KINDS",
    "STAGES",
    "DraftOptions",
    "LongRequest",
    "LongWriter",
    "Outline",
    "RunFolder",
    "prepare_folder",
    "write_long",
]
