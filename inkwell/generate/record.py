"""One record of one generation: what `--json` prints, what a batch output row holds, what the server logs
and what the history store keeps, built in one place so the four never drift apart.

    record = GenerationRecord.of(engine, result, source="generate", prompt=request, settings=settings)
    print(json.dumps(record.to_json()))
    store.log_record(record)                 # inkwell/store: the one place a generation is logged
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inkwell.generate.engine import GenerationResult

SOURCES = ("write", "generate", "batch", "serve", "studio", "eval")  # who made it (the store's `source` column)


@dataclass
class GenerationRecord:
    text: str  # the output as the user sees it (after moderation's redactions, if any)
    model: str
    adapter: str | None
    template: str | None
    fields: dict | None  # the template fields as rendered (None for raw prompts)
    settings: dict  # GenerationSettings.to_dict()
    prompt: str  # the exact text the engine saw (chat template applied): training rows must match it
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str | None
    source: str
    data: Any = None  # parsed JSON of structured templates
    moderation: dict | None = None  # what moderation decided, where it acted
    batch_id: str | None = None
    row_id: str | None = None
    api_key_id: str | None = None  # the server's key id (never the key)
    extra: dict = field(default_factory=dict)  # e.g. a batch row's `sample` index

    @classmethod
    def of(
        cls,
        engine,
        result: GenerationResult,
        *,
        source: str,
        prompt,
        settings,
        template: str | None = None,
        fields: dict | None = None,
        text: str | None = None,
        **more: Any,
    ) -> GenerationRecord:
        """From an engine's result. `prompt` is the request (text or chat messages) as given to the engine;
        it is rendered here so the store keeps what the model saw. `text` overrides the result's text
        (moderated output)."""
        loaded = engine.loaded
        return cls(
            text=result.text if text is None else text,
            model=result.model or loaded.name,  # an ensemble's result names the member that wrote it
            adapter=result.adapter if result.model else loaded.adapter,
            template=template,
            fields=fields,
            settings=settings if isinstance(settings, dict) else settings.to_dict(),
            prompt=engine.render(prompt),
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            latency_s=result.latency_s,
            finish_reason=result.finish_reason,
            source=source,
            **more,
        )

    @classmethod
    def of_content(cls, engine, item, *, template: str, source: str, **more: Any) -> GenerationRecord:
        """From a template result (`generate.content.ContentResult`) of the named template."""
        record = cls.of(
            engine,
            item.generation,
            source=source,
            prompt=item.rendered.prompt,
            settings=item.settings,
            template=template,
            fields=item.rendered.fields,
            text=item.text,
            **more,
        )
        record.data = item.data
        record.moderation = item.moderation or None
        record.extra = {**item.extra, **record.extra}
        return record

    @property
    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}

    def to_json(self, *, adapter: bool = True) -> dict:
        """The public shape (`--json`, batch output rows): text, model, adapter, template, fields, settings,
        usage, latency_s, finish_reason, then data/moderation where present. Batch rows omit the adapter."""
        out: dict[str, Any] = {"text": self.text, "model": self.model}
        if adapter:
            out["adapter"] = self.adapter
        out.update(
            template=self.template,
            fields=self.fields,
            settings=self.settings,
            usage=self.usage,
            latency_s=self.latency_s,
            finish_reason=self.finish_reason,
        )
        if self.data is not None:
            out["data"] = self.data
        if self.moderation:
            out["moderation"] = self.moderation
        out.update(self.extra)
        return out

    def to_store(self) -> dict:
        """Keyword arguments of the store's generations table."""
        return {
            "source": self.source,
            "model": self.model,
            "adapter": self.adapter,
            "template": self.template,
            "fields": self.fields,
            "settings": self.settings,
            "prompt": self.prompt,
            "output": self.text,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": self.latency_s,
            "finish_reason": self.finish_reason,
            "batch_id": self.batch_id,
            "row_id": self.row_id,
        }
