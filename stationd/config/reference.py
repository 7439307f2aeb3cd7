"""The configuration key reference (docs/config-keys.md), written from the registry itself.

Regenerate with ``stationd config reference > docs/config-keys.md``; a test fails when the
checked-in file differs from what the registry says.
"""

from __future__ import annotations

from .keys import REGISTRY
from .keys.eaton import DATA_TRANSFER_IDS
from .keys.ocpp_standard import MEASURANDS
from .registry import Access, Alias, KeyDef, Registry

INTRO = """\
# Configuration key reference

Every key the station knows, from the OCPP 1.6 standard, the OCPP security whitepaper, the
Technagon and Eaton Green Motion stations stationd replaces, and the CTEK Charge Portal backend.
A backend reads them with GetConfiguration and writes them with ChangeConfiguration; an
installer uses the WebUI; a technician uses `stationd config get|set|list|reset`.

How to read the tables:

- **Names** are case-insensitive (`endpoint` is `Endpoint`). An **alias** is another name of the
  same stored value, sometimes in another unit: `GridMaxCurrentPerPhase` (A) is
  `/power/station/mainsMaxCurrent` (mA) rounded down. Writing either changes both.
- **Values** are text, as OCPP carries them: booleans `true`/`false` (`1`/`0` are accepted on
  write), lists comma-separated without spaces, JSON as JSON text. At most 500 characters.
- **Access**: R = read-only (a write is Rejected), RW = read-write, W = write-only (never read
  back: GetConfiguration returns the key without a value).
- **Effect**: *at once*, or *after reboot* (ChangeConfiguration answers `RebootRequired`; the
  value is stored and used from the next start).
- **Default**: *(computed)* = the station supplies the value; *(installation)* = the station
  config file sets it (serial number, chargebox id, backend URL, connectors).
- **Notes**: *hidden* keys are left out of a GetConfiguration without key names but answer when
  asked by name; *reconnects* = a change may make the station reconnect to its backend.
- A **write** answers Accepted, RebootRequired, Rejected (a bad value, with the reason in the
  log and the CLI; nothing changes) or NotSupported (an unknown key).
- **Where a value comes from**, first match wins: a station component (live values), the
  settings file (changes over OCPP, WebUI, CLI), the station config file, the default. When an
  installer edits the config file, its new value replaces an older change of that key.
"""

INSTALLATION_KEYS = {
    "SerialNumber", "ModelId", "VendorId", "BoxId", "NumberOfConnectors", "EVSES", "EnergyMeterType",
    "MaxCurrentLimit", "Endpoint", "ServerMode", "SecurityProfile", "WebServicePort", "LogLevelAppService",
    "ModbusServerEnabled",
}


def render_markdown(registry: Registry = REGISTRY) -> str:
    lines = [INTRO]
    items: list[KeyDef | Alias] = [*registry.keys, *registry.aliases]
    for family in registry.families():
        lines += ["", f"## {family}", "", "| Key | Type | Unit | Access | Default | Effect | Notes | Meaning |",
                  "|---|---|---|---|---|---|---|---|"]
        for item in items:
            if item.family == family:
                lines.append(_row(registry, item))
    lines += ["", "## Lists", "",
              "**measurands** (MeterValuesSampledData, MeterValuesAlignedData, StopTxnSampledData, "
              "StopTxnAlignedData): " + ", ".join(f"`{m}`" for m in MEASURANDS) + ". One measurand the "
              "station cannot supply rejects the whole value.", "",
              "**DataTransfer ids** (EnabledDataTransfer): " + ", ".join(f"`{i}`" for i in DATA_TRANSFER_IDS)
              + ". An AC station sends ChargeStopError, MachineMismatch, PlugType, RemoteShutOff and StopSource; "
              "the DC-only ids are accepted and never sent."]
    return "\n".join(lines) + "\n"


def _row(registry: Registry, item: KeyDef | Alias) -> str:
    name = item.name.replace("{connector}", "&lt;id&gt;")
    entry = registry.resolve(item.name.replace("{connector}", "1"))
    assert entry is not None
    key = entry.key
    notes = []
    if isinstance(item, Alias):
        notes.append(f"alias of `{item.of}`")
    if key.hidden:
        notes.append("hidden")
    if key.reconnects:
        notes.append("reconnects")
    if key.per_connector:
        notes.append("one per connector")
    if key.secret:
        notes.append("secret")
    cells = [
        f"`{name}`",
        entry.type.describe().replace("|", "\\|"),
        entry.unit or "",
        key.access.value,
        _default(entry, key),
        "–" if key.access is Access.R else key.effect.value,
        ", ".join(notes),
        entry.description.replace("|", "\\|"),
    ]
    return "| " + " | ".join(cells) + " |"


def _default(entry, key: KeyDef) -> str:
    if key.derive is not None or key.computed:
        return "(computed)"
    if key.name in INSTALLATION_KEYS:
        shown = "" if key.default is None else entry.type.render(entry.to_shown(key.default))
        return f"(installation){' ' + _code(shown) if shown else ''}"
    if key.default is None:
        return ""
    return _code(entry.type.render(entry.default))


def _code(text: str) -> str:
    if text == "":
        return '`""`'
    text = text if len(text) <= 60 else text[:57] + "…"
    return "`" + text.replace("|", "\\|") + "`"
