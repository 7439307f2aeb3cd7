"""The WebUI's menu, as data: the vendor guide's sections and pages (SPEC §9), one URL each.

``expert`` pages are listed only for the Expert user level (they still need a session at any
level when opened by URL; a page that must not be used at Default level checks it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    url: str
    label: str
    expert: bool = False


@dataclass(frozen=True)
class Section:
    label: str
    pages: tuple[Page, ...]


MENU = (
    Section("Dashboard", (Page("/dashboard", "Dashboard"),)),
    Section("Network", (Page("/network/interfaces", "Interfaces"), Page("/network/mobile", "Mobile"))),
    Section("Communication", (Page("/communication/ocpp", "OCPP"), Page("/communication/modbus", "Modbus"))),
    Section("Station", (Page("/station/datetime", "Date/Time"), Page("/station/components", "Components"),
                        Page("/station/connectors", "Connectors"), Page("/station/power", "Power"))),
    Section("GUI", (Page("/gui", "GUI"),)),
    Section("User Management", (Page("/users/authentication", "Authentication"), Page("/users/list", "Users"),
                                Page("/users/security", "Security"))),
    Section("Software", (Page("/software", "Software"),)),
    Section("History", (Page("/sessions", "Sessions"), Page("/charts", "Charts"))),
    Section("Diagnostics", (Page("/ocpp/log", "OCPP Log", expert=True),
                            Page("/ocpp/dead-letters", "Dead Letters", expert=True))),
)

ADMIN_MENU = (Page("/profile", "User Profile"), Page("/admin/restart", "Restart Daemon"),
              Page("/admin/reboot", "Reboot System"), Page("/logout", "Logout"))


def section_of(path: str) -> Section | None:
    for section in MENU:
        if any(page.url == path for page in section.pages):
            return section
    return None
