"""Which property changes replace a resource: a reader of :mod:`policy.replacement`.

``mlstack diff`` and the rollback refusals ask here; the table itself (with the
upstream source of every entry) lives in :mod:`policy.replacement`, the one table the
lifecycle rules read too.
"""

from __future__ import annotations

from policy.replacement import (
    REPLACEMENT_TABLE,
    forces_replacement,
    normalized,
    replacing_changes,
)

FORCES_REPLACEMENT: dict[str, tuple[str, ...]] = {
    type_token: entry.force_new for type_token, entry in REPLACEMENT_TABLE.items()
}
"""Type token -> replacing property paths (a view of :data:`REPLACEMENT_TABLE`)."""

__all__ = ["FORCES_REPLACEMENT", "forces_replacement", "normalized", "replacing_changes"]
