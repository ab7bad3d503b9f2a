"""The common shape of a checker's answer, so the runner can tabulate them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "unknown", "skipped"]


@dataclass
class CheckResult:
    """``status``: pass, fail, unknown (the checker could not decide, e.g. a time
    limit) or skipped (the run had nothing for it).  ``summary`` is one line for
    the table; ``lines`` the detail printed on failure; ``details`` goes to
    results.json."""

    name: str
    status: Status
    summary: str
    lines: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary,
                "lines": list(self.lines), "details": self.details}
