"""The Users page's unsaved edits: what the installer changed in the whitelist editor since the
last "Save", kept per login session.

The vendor's editor applies on "Save" (SPEC §6), and installers expect that: a wrong click can
be undone by not saving. Each edit (add a card, edit a row, accept / block / delete / restore)
sets the *target* of one UID — the entry as it should be after Save (``deleted_at`` set: it is
to be deleted). An edit that brings a row back to what is stored drops its target. Save
(:meth:`PendingEdits.save`) writes every target with the whitelist's own operations (add,
delete, restore), in the order the UIDs were first edited; a target that cannot be written (the
list is full, another process deleted the row) stays unsaved with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..auth.whitelist import ACCEPTED, BLOCKED, Entry, Whitelist, WhitelistError

ACTIONS = ("accept", "block", "delete", "restore")


def same(a: Entry | None, b: Entry | None) -> bool:
    """Whether two entries say the same (deletion times aside)."""
    if a is None or b is None:
        return a is b
    return a[:4] == b[:4] and a.deleted == b.deleted


@dataclass
class PendingEdits:
    targets: dict[str, Entry] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.targets)

    def current(self, whitelist: Whitelist, uid: str) -> Entry | None:
        """The entry as the editor shows it: the unsaved target, else the stored entry."""
        return self.targets.get(uid) or whitelist.get(uid)

    def stage(self, whitelist: Whitelist, entry: Entry) -> None:
        if same(entry, whitelist.get(entry.uid)):
            self.targets.pop(entry.uid, None)
        else:
            self.targets[entry.uid] = entry

    def act(self, whitelist: Whitelist, uid: str, action: str, now: datetime) -> str | None:
        """Stage a row action; the reason it cannot be done, else None."""
        entry = self.current(whitelist, uid)
        if entry is None:
            return f"UID {uid} is not in the whitelist"
        if action == "restore":
            if not entry.deleted:
                return f"UID {uid} is not deleted"
            target = entry._replace(deleted_at=None)
        elif entry.deleted:
            return f"UID {uid} is deleted (restore it first)"
        elif action == "delete":
            target = entry._replace(deleted_at=now)
        elif action in ("accept", "block"):
            target = entry._replace(authorization=ACCEPTED if action == "accept" else BLOCKED)
        else:
            return f"unknown action {action!r}"
        self.stage(whitelist, target)
        return None

    def new_entries(self, whitelist: Whitelist) -> list[Entry]:
        """Targets of UIDs the list does not have yet (shown after the stored rows)."""
        return [entry for uid, entry in self.targets.items() if whitelist.get(uid) is None]

    def save(self, whitelist: Whitelist) -> tuple[int, list[str]]:
        """Write every target; (how many were written, the problems of those that stay unsaved)."""
        written, problems = 0, []
        for uid, target in list(self.targets.items()):
            stored = whitelist.get(uid)
            try:
                if target.deleted:
                    if stored is not None and not stored.deleted:
                        whitelist.delete(uid)
                elif stored is not None and stored.deleted and same(stored._replace(deleted_at=None), target):
                    whitelist.restore(uid)
                elif not same(stored, target):
                    whitelist.add(uid, target.gid, target.expiry, target.authorization)
            except (WhitelistError, ValueError) as problem:
                problems.append(f"{uid}: {problem}")
                continue
            del self.targets[uid]
            written += 1
        return written, problems
