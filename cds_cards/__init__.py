"""Cards: how a decision is shown to a clinician in the EHR (CDS Hooks 2.0 card JSON)."""

from cds_cards.render import (
    EXTENSION_KEY,
    CardContext,
    detail_markdown,
    eligibility_card,
    extension,
)

__all__ = ["EXTENSION_KEY", "CardContext", "detail_markdown", "eligibility_card", "extension"]
