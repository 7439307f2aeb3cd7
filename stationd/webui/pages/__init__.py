"""The WebUI's pages, one module per menu section; each has ``routes`` (an aiohttp RouteTableDef)."""

from __future__ import annotations

from . import (account, authentication, communication, dashboard, diagnostics, gui, history, network, security,
               software, station_hardware, station_settings, users)

ROUTE_TABLES = [account.routes, dashboard.routes, diagnostics.routes, history.routes, users.routes,
                authentication.routes, communication.routes, gui.routes, network.routes, security.routes,
                station_settings.routes, software.routes, station_hardware.routes]
