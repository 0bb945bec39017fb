"""Small documents for the knowledge-folder tests (importable: tests/ is on sys.path via tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

RETURNS = """# Returns and refunds

## Returning an item

You can return any item within 30 days of delivery. Print the return label from your account page and drop the
parcel at any post office. Refunds reach your card within 5 business days after the parcel arrives.

## Broken items

If an item arrives broken, send us a photo of it. We ship a replacement at no cost, and you do not need to send
the broken item back.
"""

SHIPPING = """# Shipping

## Delivery times

Orders ship from our warehouse in Lyon. Delivery takes 2 to 4 business days in France and 5 to 8 business days
to the rest of Europe.

## Changing the address

You can change the delivery address until the order ships. Reply to your order confirmation e-mail with the new
address.
"""

CHINESE = """# 退货政策

## 如何退货

收到商品后三十天内可以退货。请在账户页面打印退货标签，然后把包裹送到任何邮局。包裹到达仓库后，退款会在五个工作日内退回您的银行卡。

## 商品损坏

如果商品在运输中损坏，请给我们发一张照片！我们会免费寄出替换品，您不需要寄回损坏的商品。
"""


def shop_folder(root: Path) -> Path:
    """A folder of two Markdown files (returns, shipping) and one Chinese one."""
    folder = root / "shop"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "returns.md").write_text(RETURNS, encoding="utf-8")
    (folder / "shipping.md").write_text(SHIPPING, encoding="utf-8")
    (folder / "zh.md").write_text(CHINESE, encoding="utf-8")
    return folder


def text_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica (a real, readable PDF; built by hand, no PDF library)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def tiny_chat_model(folder: Path, context_length: int) -> Path:
    """tests/conftest.py's tiny random chat model, with a longer context (passages need room). Loaded by path:
    `import conftest` would find whichever conftest.py pytest imported last."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "inkwell_tests_root_conftest", Path(__file__).parents[1] / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_tiny_model(folder, chat=True, context_length=context_length)
