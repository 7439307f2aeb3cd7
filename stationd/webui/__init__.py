"""Installer WebUI (aiohttp over HTTPS)."""
