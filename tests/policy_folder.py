"""A deployment's own policy folder for tests: every shipped policy file, and a copy of one
under a new id — a policy added as a file, with no code or test edited."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from policy.loading import POLICY_DIR, policy_names


def shipped_policy(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((POLICY_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return doc


def folder_with_a_copy(
    out: Path, of: str, new_id: str, metadata: dict[str, Any], presentation: dict[str, Any]
) -> Path:
    """``out`` holding every shipped policy and ``of`` copied as ``new_id`` (its services
    renamed after it), with ``metadata`` and ``presentation`` fields replaced."""
    for name in policy_names():
        shutil.copy(POLICY_DIR / f"{name}.json", out / f"{name}.json")
    doc = shipped_policy(of)
    doc["metadata"] |= {"id": new_id, **metadata}
    doc["presentation"] |= presentation
    for service in doc["services"]:
        service["id"] = service["id"].replace(of, new_id)
    (out / f"{new_id}.json").write_text(json.dumps(doc), encoding="utf-8")
    return out
