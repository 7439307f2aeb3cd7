"""The Tally record: what one category of the reliability run tried, and how the station fared.

``tried`` counts the attempts in the category's own unit (frames, kill -9, sessions, faults,
cases); ``survived`` those after which the station was alive, answering and correct;
``lost`` the transaction messages (or, for security, the secrets and refused-but-accepted
inputs) that the category found missing. A category passes when every try survived and
nothing was lost; ``failures`` says what went wrong, one line per failed try (the first
``MAX_FAILURES`` are kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_FAILURES", "Tally"]

MAX_FAILURES = 50


@dataclass
class Tally:
    category: str  # stable key in results.json, e.g. "ocpp_fuzz"
    unit: str  # what one try is: "frames", "kill -9", "sessions", ...
    tried: int = 0
    survived: int = 0
    lost: int = 0
    duplicated: int = 0  # messages delivered twice (allowed where the category says so)
    notes: list[str] = field(default_factory=list)  # how it was tried, figures worth keeping
    failures: list[str] = field(default_factory=list)

    def ok(self, what: str | None = None) -> None:
        """One try survived (``what`` is kept as a note when given)."""
        self.tried += 1
        self.survived += 1
        if what:
            self.notes.append(what)

    def failed(self, why: str) -> None:
        """One try did not survive: ``why`` names the try and what went wrong."""
        self.tried += 1
        if len(self.failures) < MAX_FAILURES:
            self.failures.append(why)

    def revoke(self, why: str) -> None:
        """A try already counted as survived turned out not to (e.g. the final clean stop failed)."""
        self.survived = max(0, self.survived - 1)
        if len(self.failures) < MAX_FAILURES:
            self.failures.append(why)

    @property
    def passed(self) -> bool:
        return self.tried > 0 and self.survived == self.tried and self.lost == 0

    def as_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "tried": self.tried, "survived": self.survived, "lost": self.lost,
                "duplicated": self.duplicated, "passed": self.passed, "notes": self.notes,
                "failures": self.failures}
