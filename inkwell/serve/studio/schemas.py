"""The studio API's request bodies (docs/studio.md). Pydantic checks them; a bad field is a 400 naming it
(`Serving.parse`), and the limits are published in the OpenAPI document for clients and fuzzers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from inkwell.compose.bestof import MAX_BEST_OF
from inkwell.generate.settings import MAX_SEED

MAX_VARIANTS = 4  # side by side on one screen; "another" adds more one at a time
MAX_TABLE_TEXT = 1_000_000  # characters of an uploaded facts table: far above 1000 rows x 20 columns
MAX_TEXT = 100_000  # characters of an edit: a long article, far below what would strain the store
MAX_TAGS = 16


class StudioSettings(BaseModel):
    """Decoding settings a creator may set (the template's defaults fill the rest)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=5)  # 0 is greedy
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0, le=1000)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    repetition_penalty: float | None = Field(default=None, ge=0.5, le=10)

    def overrides(self) -> dict[str, Any]:
        values = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "max_new_tokens": self.max_tokens,
            "seed": self.seed,
            "repetition_penalty": self.repetition_penalty,
        }
        return {k: v for k, v in values.items() if v is not None}


class FactsTable(BaseModel):
    """A facts table as uploaded or pasted: the file's text; its name's ending says how to read it."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TABLE_TEXT)
    # .csv, .tsv, .jsonl or .json; None (pasted): JSON lines when it starts with "{", tabs: TSV, else CSV
    name: str | None = Field(default=None, min_length=1, max_length=200)


class PieceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict)
    system: str | None = Field(default=None, max_length=200)  # None: the creator's default system
    settings: StudioSettings = Field(default_factory=StudioSettings)
    n: int = Field(default=1, ge=1, le=MAX_VARIANTS)
    stream: bool = True
    # a knowledge folder (GET /studio/api/knowledge): its passages in the prompt, citations under each variant
    kb: str | None = Field(default=None, pattern="^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
    # a style profile (GET /studio/api/styles): its exemplars as shots (its LoRA with the base model), a score each
    style: str | None = Field(default=None, pattern="^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
    # a facts table for report and data-brief: its facts fill `facts`, each variant's numbers are checked
    table: FactsTable | None = None
    best_of: int = Field(default=1, ge=1, le=MAX_BEST_OF)  # candidates per variant; the one passing most checks kept


class VariantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: str | None = Field(default=None, max_length=200)  # None: the piece's system
    settings: StudioSettings | None = None  # None: the piece's settings (a new seed)
    stream: bool = True


class ChooseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant_id: int = Field(ge=1)


class VersionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_TEXT)
    parent_id: int | None = Field(default=None, ge=1)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["draft", "accepted", "rejected"] | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    tags: list[str] | None = Field(default=None, max_length=MAX_TAGS)


class BranchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version_id: int | None = Field(default=None, ge=1)  # None: the piece's current text


class ComparisonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict)
    systems: list[str] = Field(min_length=2, max_length=2)
    settings: StudioSettings = Field(default_factory=StudioSettings)


class JudgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    winner: Literal["left", "right", "tie"]


class TrainingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: Literal["dpo", "sft"] = "sft"
    base: str | None = Field(default=None, max_length=200)  # the system to beat (default: the creator's default)
    max_steps: int | None = Field(default=None, ge=1, le=10_000)
    template: str | None = Field(default=None, max_length=100)


class RoundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int | None = Field(default=None, ge=1, le=100)  # held-back prompts to compare (None: all)


class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["promote", "discard"]


# ---------------------------------------------------------------- long-form writing (longform.py)


class LongformSettings(BaseModel):
    """Sampling of the section candidates (lengths come from the plan's word budgets)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    repetition_penalty: float | None = Field(default=None, ge=0.5, le=10)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    candidates: int = Field(default=3, ge=1, le=MAX_VARIANTS)


class LongformRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["article", "report", "story", "study-guide"]
    topic: str = Field(min_length=1, max_length=500)
    words: int = Field(default=1500, ge=150, le=20000)  # Chinese: characters
    lang: Literal["en", "zh"] = "en"
    title: str | None = Field(default=None, max_length=200)
    sections: int | None = Field(default=None, ge=1, le=30)
    system: str | None = Field(default=None, max_length=200)  # None: the creator's default system
    settings: LongformSettings = Field(default_factory=LongformSettings)


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: dict[str, Any]  # an outline as plan.json holds it (docs/longform.md); validated field by field


class CandidatesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidates: int | None = Field(default=None, ge=1, le=MAX_VARIANTS)  # None: the run's setting


class NodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: int = Field(ge=1, le=2**62)


class NodeEditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: int = Field(ge=1, le=2**62)
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class BackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: int | None = Field(default=None, ge=1, le=2**62)  # None: back to the start (before section 1)


# every body above, published in the OpenAPI document (inkwell/serve/schemas.py: openapi_schemas)
BODIES = (
    PieceRequest,
    VariantRequest,
    ChooseRequest,
    VersionRequest,
    FeedbackRequest,
    BranchRequest,
    ComparisonRequest,
    JudgeRequest,
    TrainingRequest,
    RoundRequest,
    DecideRequest,
    LongformRequest,
    PlanRequest,
    CandidatesRequest,
    NodeRequest,
    NodeEditRequest,
    BackRequest,
)
