"""The secret scan: known secrets are set the way an operator sets them, the station is
exercised, and every place a secret could show up is searched for every form of it.

Secrets: the AuthorizationKey (given at start as plain text, then changed over OCPP as hex),
the WebUI password (the password change), the SIM PIN and SIM password (WebUI Mobile page, the
dry-run system edge's simulated modem), the Wi-Fi passphrase (WebUI Network > Interfaces with
the WAN on wlan0) and the PSK derived from it (PBKDF2, what wpa_passphrase prints; the one form
the station keeps, in the device's 0600 wpa_supplicant file — the dry run keeps it in memory).

Where: the daemon's log (its stderr), every file of the data directory except the two stores
that must keep what the station uses (station.db, settings.json — searched for the WebUI
password and the Wi-Fi passphrase only: the one must be stored as a hash, the other not at
all), every member of the diagnostics archive that
GetDiagnostics uploads to an HTTP server on 127.0.0.1, the answer of GetConfiguration (all keys,
and each key by name), and every WebUI page (GET of every route). Forms: plain (any letter
case), hex (any case), base64, URL-encoded, and the HTTP Basic token ``base64(box:key)``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import tarfile
import time
from urllib.parse import quote

from aiohttp import web

from .security_rig import BOX, SERIAL, Rig, WebClient
from .tally import Tally

AUTHORIZATION_KEY_2 = "Rotated-AuthKey-Zq81"  # 20 bytes, the most OCPP allows
WEBUI_PASSWORD = "Web-Secret-Pw-93kX"
SIM_PIN = "90817263"
SIM_PASSWORD = "Sim-Secret-Pw-41zR"
WIFI_SSID = "Depot-Scan"
WIFI_PASSPHRASE = "Wifi-Secret-Pp-58qT"
WIFI_PSK = hashlib.pbkdf2_hmac("sha1", WIFI_PASSPHRASE.encode(), WIFI_SSID.encode(), 4096, 32).hex()
STORES = ("station.db", "settings.json")  # where the station keeps what it must use (not logs)


def forms(secret: str, *, basic: bool = False) -> list[bytes]:
    """Every spelling searched for, lower case (the search lower-cases what it searches)."""
    raw = secret.encode()
    found = {raw, raw.hex().encode(), base64.b64encode(raw), quote(secret, safe="").encode()}
    if basic:
        found.add(base64.b64encode(f"{BOX}:{secret}".encode()))
    return sorted({f.lower() for f in found})


def secrets_of(rig: Rig) -> dict[str, list[bytes]]:
    return {
        "AuthorizationKey (start)": forms(rig.authorization_key, basic=True),
        "AuthorizationKey (ChangeConfiguration)": forms(AUTHORIZATION_KEY_2, basic=True),
        "WebUI password": forms(WEBUI_PASSWORD),
        "SIM PIN": forms(SIM_PIN),
        "SIM password": forms(SIM_PASSWORD),
        "Wi-Fi passphrase": forms(WIFI_PASSPHRASE),
        "Wi-Fi PSK": psk_forms(WIFI_PSK),
    }


def psk_forms(psk: str) -> list[bytes]:
    """The PSK as its hex text (every form of that) and as its 32 raw bytes (raw, base64)."""
    raw = bytes.fromhex(psk)
    return sorted(set(forms(psk)) | {raw.lower(), base64.b64encode(raw).lower()})


def find(data: bytes, secrets: dict[str, list[bytes]]) -> list[str]:
    lowered = data.lower()
    return [f"{name} ({form.decode(errors='replace')})" for name, spellings in secrets.items()
            for form in spellings if form in lowered]


class Uploads:
    """An HTTP server on 127.0.0.1 that takes the diagnostics upload (PUT, or a multipart POST)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_put("/diag/{name}", self._put)
        self.app.router.add_post("/diag", self._post)
        self.runner = web.AppRunner(self.app, access_log=None)
        self.port = 0

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def _put(self, request: web.Request) -> web.Response:
        self.files[request.match_info["name"]] = await request.read()
        return web.Response(status=201)

    async def _post(self, request: web.Request) -> web.Response:
        form = await request.post()
        field = form.get("file")
        if field is not None and hasattr(field, "file"):
            self.files[field.filename] = field.file.read()
        return web.Response(status=201)


async def set_secrets(rig: Rig, client: WebClient, tally: Tally) -> bool:
    """Set the secrets; False (and a failed case) when one cannot be set."""
    rig.secure.passwords[BOX] = AUTHORIZATION_KEY_2.encode()
    before = len(rig.secure.handshakes(BOX))
    answer = await rig.secure.call(BOX, "ChangeConfiguration",
                                   {"key": "AuthorizationKey", "value": AUTHORIZATION_KEY_2.encode().hex()})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (len(rig.secure.handshakes(BOX)) > before and rig.secure.connected(BOX)):
        await asyncio.sleep(0.1)
    if answer.get("status") != "Accepted" or not rig.secure.connected(BOX):
        tally.failed(f"secrets: ChangeConfiguration AuthorizationKey answered {answer}; connected again: "
                     f"{rig.secure.connected(BOX)}")
        return False
    status, text = await client.login(SERIAL)
    if status != 200:
        tally.failed(f"secrets: the first WebUI login failed (HTTP {status})")
        return False
    status, text = await client.post("/password", {"old": SERIAL, "new": WEBUI_PASSWORD, "repeat": WEBUI_PASSWORD})
    if status != 200 or "Dashboard" not in text:
        tally.failed(f"secrets: the WebUI password change failed (HTTP {status})")
        return False
    await client.get("/network/mobile")
    status, text = await client.post("/network/mobile", {
        "provider": "(custom)", "service_mode": "4g", "apn": "internet.example", "pin": SIM_PIN, "auth": "chap",
        "username": "sim-user", "password": SIM_PASSWORD})
    if status != 200:
        tally.failed(f"secrets: the Mobile page refused the SIM settings (HTTP {status})")
        return False
    await client.get("/network/interfaces")
    status, text = await client.post("/network/interfaces", {
        "interface": "wlan0", "ipv4_method": "dhcp", "ipv6_method": "dhcp", "wifi_ssid": WIFI_SSID,
        "wifi_security": "WPA2-Personal", "wifi_passphrase": WIFI_PASSPHRASE})
    if status != 200 or "Saved." not in text:
        tally.failed(f"secrets: the Interfaces page refused the Wi-Fi settings (HTTP {status})")
        return False
    return True


async def exercise_and_collect(rig: Rig, client: WebClient, tally: Tally) -> dict[str, bytes]:
    """Everything to scan, by where it comes from."""
    from stationd.webui.pages import ROUTE_TABLES

    places: dict[str, bytes] = {}
    everything = await rig.secure.call(BOX, "GetConfiguration", {})
    places["GetConfiguration (all keys)"] = repr(everything).encode()
    names = [k["key"] for k in everything.get("configurationKey", [])] + ["AuthorizationKey", "NetworkConfig"]
    for name in names:
        answer = await rig.secure.call(BOX, "GetConfiguration", {"key": [name]})
        places[f"GetConfiguration {name}"] = repr(answer).encode()
    for name, value in (("HeartbeatInterval", "301"), ("MeterValueSampleInterval", "30")):
        await rig.secure.call(BOX, "ChangeConfiguration", {"key": name, "value": value})

    uploads = Uploads()
    await uploads.start()
    try:
        answer = await rig.secure.call(BOX, "GetDiagnostics", {"location": f"http://127.0.0.1:{uploads.port}/diag"})
        await rig.secure.wait_for("DiagnosticsStatusNotification", chargebox_id=BOX, timeout=30,
                                  predicate=lambda r: r.payload.get("status") in ("Uploaded", "UploadFailed"))
        if not uploads.files:
            tally.failed(f"secrets: GetDiagnostics ({answer}) uploaded nothing: the archive was not scanned")
        for name, data in uploads.files.items():
            places[f"diagnostics upload {name}"] = data
            for member, content in archive_members(data):
                places[f"diagnostics {name}: {member}"] = content
    finally:
        await uploads.stop()

    paths = sorted({route.path for table in ROUTE_TABLES for route in table
                    if getattr(route, "method", "") == "GET" and "{" not in route.path})
    for path in paths:
        status, text = await client.get(path)
        places[f"WebUI GET {path} ({status})"] = text.encode()
    await asyncio.sleep(1.0)  # the last log lines and journal frames reach their files
    places["daemon log (stderr)"] = rig.log_file.read_bytes()
    for path in sorted(rig.data_dir.rglob("*")):
        if path.is_file() and not path.name.startswith(STORES):
            places[f"data dir {path.relative_to(rig.data_dir)}"] = path.read_bytes()
    return places


def archive_members(data: bytes) -> list[tuple[str, bytes]]:
    """The regular files of a (gzip-compressed) tar archive, nested archives unpacked too."""
    members = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for member in archive.getmembers():
                if member.isfile():
                    content = archive.extractfile(member).read()
                    members.append((member.name, content))
                    if member.name.endswith((".tar", ".tar.gz", ".tgz")):
                        members += [(f"{member.name}/{n}", c) for n, c in archive_members(content)]
    except tarfile.TarError:
        pass
    return members


def check_stores(rig: Rig) -> list[str]:
    """The WebUI password must not be stored as itself (only its hash), the Wi-Fi passphrase
    not at all (only the PSK derived from it, and that outside the data directory)."""
    never = {"WebUI password": forms(WEBUI_PASSWORD), "Wi-Fi passphrase": forms(WIFI_PASSPHRASE)}
    return [f"{path.name}: {hit}" for path in sorted(rig.data_dir.rglob("*"))
            if path.is_file() and path.name.startswith(STORES) for hit in find(path.read_bytes(), never)]


async def run_scan(rig: Rig, tally: Tally) -> None:
    client = rig.web_client()
    try:
        if not await set_secrets(rig, client, tally):
            return
        places = await exercise_and_collect(rig, client, tally)
    finally:
        await client.close()
    secrets = secrets_of(rig)
    found_any = False
    for place, data in places.items():
        hits = find(data, secrets)
        if hits:
            found_any = True
            tally.lost += len(hits)
            tally.failed(f"secret in {place}: {', '.join(hits)}")
        else:
            tally.ok()
    control = [hit for path in rig.data_dir.glob("settings.json") for hit in
               find(path.read_bytes(), {"AuthorizationKey": forms(AUTHORIZATION_KEY_2)})]
    if not control:  # the key must be stored (hex) to be used: the scanner must see it there
        tally.failed("secrets: control failed: the scanner does not find the stored AuthorizationKey in settings.json")
    if WIFI_SSID.encode() not in places.get("GetConfiguration NetworkConfig", b""):  # the Wi-Fi WAN was set
        tally.failed("secrets: control failed: NetworkConfig does not show the Wi-Fi network the scan set")
    for hit in check_stores(rig):
        found_any = True
        tally.lost += 1
        tally.failed(f"a secret the station must not keep is stored as itself: {hit}")
    members = sum(1 for p in places if p.startswith("diagnostics ") and ": " in p)
    tally.notes.append(f"secret scan: {len(secrets)} secrets in {sum(map(len, secrets.values()))} spellings in {len(places)} places ({members} diagnostics archive members): "
                       f"{'FOUND' if found_any else 'none found'}")
