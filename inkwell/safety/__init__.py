"""Safety: PII detection and redaction, and policy-driven moderation of model inputs and outputs.

A low-level folder: `generate`, `serve` and `data` import it; it imports nothing from them.

* `pii.detect_pii(text)` - e-mails, phones, Chinese ID numbers (checksum), bank cards (Luhn), IPs, secrets.
* `redact.redact(text, spans, mode)` - placeholders, masks or salted hashes.
* `load_policy(name_or_path)` / `Policy.moderate(text, direction)` - the YAML policy engine.
* `Guard` - moderation around generation with an audit trail (write, batch, serve).
"""

from inkwell.safety.guard import Guard, ModerationBlocked
from inkwell.safety.moderate import Finding, ModerationResult, Policy, load_policy, moderate
from inkwell.safety.pii import PII_TYPES, PiiMatch, detect_pii

__all__ = [
    "PII_TYPES",
    "Finding",
    "Guard",
    "ModerationBlocked",
    "ModerationResult",
    "PiiMatch",
    "Policy",
    "detect_pii",
    "load_policy",
    "moderate",
]
