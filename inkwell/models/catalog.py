"""What `inkwell models list/info` shows: embedded models with their cache state, and local conversions."""

from __future__ import annotations

from pathlib import Path

from inkwell.errors import InkwellError
from inkwell.home import models_dir
from inkwell.models.load import embedded_cache_dir, is_prepared, read_card
from inkwell.models.registry import DEFAULT_MODEL, EMBEDDED_ENCODERS, EMBEDDED_MODELS, get_embedded


def _size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.glob("*") if p.is_file()) / 1e6, 1)


def list_models() -> list[dict]:
    items = []
    for name, entry in EMBEDDED_MODELS.items():
        folder = embedded_cache_dir(name)
        item = entry.to_dict()
        item.update(source="embedded", default=name == DEFAULT_MODEL, prepared=is_prepared(folder), path=str(folder))
        items.append(item)
    for encoder in EMBEDDED_ENCODERS.values():  # plain folders inside their packages: nothing to prepare
        items.append(dict(encoder.to_dict(), source="embedded", default=False, prepared=True, use="stage: classify"))
    for folder in sorted(models_dir().glob("gguf-*")):
        if is_prepared(folder):
            card = read_card(folder)
            items.append(
                {
                    "name": card.get("source_path", folder.name),
                    "source": "gguf",
                    "kind": "chat" if card.get("chat") else "base",
                    "prepared": True,
                    "path": str(folder),
                    "languages": card.get("languages", []),
                    "parameters": "",
                }
            )
    items.extend(_runs())
    return items


def _runs() -> list[dict]:
    """Models and adapters trained here (recorded by `inkwell train`), whose folders still exist."""
    from inkwell.store import Store

    store = Store()
    try:
        recorded = store.runs()
    finally:
        store.close()
    items = []
    for run in recorded:
        folder = Path(run["path"])
        if not (folder / "inkwell-run.json").exists():
            continue
        adapter = (folder / "adapter_config.json").exists()
        items.append(
            {
                "name": str(folder),
                "source": "run",
                "kind": "adapter" if adapter else "model",
                "prepared": True,
                "path": str(folder),
                "stage": run["stage"],
                "method": run["method"],
                "base_model": run["base_model"],
                "metrics": run["metrics"],
                "languages": [],
                "parameters": "",
                "use": f"--adapter {folder}" if adapter else f"--model {folder}",
            }
        )
    return items


def model_info(name: str) -> dict:
    if name in EMBEDDED_MODELS:
        entry = get_embedded(name)
        folder = embedded_cache_dir(name)
        info = entry.to_dict()
        info.update(source="embedded", default=name == DEFAULT_MODEL, prepared=is_prepared(folder), path=str(folder))
        if is_prepared(folder):
            info.update(card=read_card(folder), size_mb=_size_mb(folder))
        return info
    if name in EMBEDDED_ENCODERS:
        folder = EMBEDDED_ENCODERS[name].folder()
        return dict(
            EMBEDDED_ENCODERS[name].to_dict(), source="embedded", default=False, prepared=True, path=str(folder)
        )
    path = Path(name).expanduser()
    if path.is_dir():
        from inkwell.models.load import check_hf_folder

        check_hf_folder(path)
        import json

        config = json.loads((path / "config.json").read_text())
        return {
            "name": name,
            "source": "folder",
            "path": str(path.resolve()),
            "architecture": config.get("architectures"),
            "model_type": config.get("model_type"),
            "card": read_card(path),
            "size_mb": _size_mb(path),
        }
    if path.suffix == ".gguf":
        if not path.exists():
            raise InkwellError(f"GGUF file not found: {path}", field="model")
        return {
            "name": name,
            "source": "gguf",
            "path": str(path.resolve()),
            "size_mb": round(path.stat().st_size / 1e6, 1),
        }
    get_embedded(name)  # raises: unknown model, with the list of known names
    return {}
