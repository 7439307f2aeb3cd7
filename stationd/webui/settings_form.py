"""A form of configuration keys: fields drawn from the registry, saved all-or-nothing.

:func:`fields` turns key names into :class:`FormField` rows for the ``_fields.html`` macros:
the label (a readable name and the key name), the input that fits the key's type (a boolean
or an enumeration is a select, an integer a number with its limits, text a text field with
its maximum length, a secret a password field that is never filled in, a read-only key a
disabled field), the unit, the description and when a change takes effect.

:func:`save` reads the posted form: every field whose text differs from the stored value is
checked with ``store.check`` first (``Source.LOCAL``, the installer's rules); any refusal and
nothing is stored — the page is shown again with each message beside its field. Otherwise
each changed key is written with ``store.set``: the very key a backend reads and writes with
GetConfiguration/ChangeConfiguration. An empty secret field keeps the stored secret.

A page of keys needs no more than :func:`render_keys` (GET) and :func:`post_keys` (POST) with
its sections of key names; ``settings.html`` shows them, and a page template may extend it
(blocks ``top`` inside the form, ``after`` below it).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from ..config.registry import Access, Effect, Entry
from ..config.store import ConfigStatus
from ..config.value_types import Bool, Int, Source, Text, TimeZone
from .guard import SESSION_KEY, UI_KEY
from .i18n import translator
from .templating import flash, render

# Every writable key the daemon reads live or watches applies at once; none waits for a daemon
# restart (the station config file's values do: they are not keys, and their pages say so).
EFFECT_TEXT = {Effect.IMMEDIATE: "applies at once", Effect.REBOOT: "applies after a reboot"}

# Readable names of keys whose own name reads badly (the vendor guide's labels where it has one).
LABELS = {
    "/power/station/mainsMaxCurrent": "Max. Mains Current (mA)",
    "/hw/auth/device/Dummy/id/value": "Dummy RFID",
    "/hw/auth/device/Dummy/allowStop": "Button stops free charging",
    "/Security/enableLocalVendorAccess": "Local",
    "/Security/enableRemoteVendorAccess": "Remote",
    "BoxId": "Chargebox ID",
    "AuthorizationKey": "Authorization Key",
    "Endpoint": "URL",
    "CsMode": "Charging mode",
    "GridMaxPower": "Grid max. power",
    "MaxCurrentLimit": "Max. current limit",
    "ModbusServerEnabled": "Modbus Service",
    "CpoName": "Operator name (CPO)",
    "CurrentLocale": "Display language",
    "WebSocketPingInterval": "WebSocket ping interval",
    "LoadBalancingAlgo": "Load balancing algorithm",
    "LoadBalancingPhaseBalTrigger": "Phase balancing",
    "LoadBalancingPhaseBalBound": "Phase balancing bound",
    "LoadBalancingEnergyMeterIP": "Load balancing energy meter address",
    "LocalPreAuthorize": "Local pre-authorize",
    "AuthCacheLifeTime": "Authorization cache lifetime",
    "AuthorizeRemoteTxRequests": "Authorize remote start requests",
    "MasterSerial": "Master card",
}
# How a select shows some keys' values (the vendor guide's words).
CHOICE_TEXT = {
    "TimeSource": {"NTP": "NTP", "HeartBeat": "OCPP (every Heartbeat)", "Browser": "Browser (once)"},
    "WhitelistSource": {"OCPP": "OCPP (managed)", "Local": "Local whitelist (offline only)"},
}
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def readable(name: str) -> str:
    """``HeartbeatInterval`` -> ``Heartbeat interval``; a known key gets the vendor's label."""
    if name in LABELS:
        return LABELS[name]
    words = _WORD.findall(name.rsplit("/", 1)[-1] or name)
    if not words:
        return name
    text = " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class FormField:
    name: str  # the key name, also the form field's name
    label: str
    input: str  # "select", "number", "text", "password"
    value: str  # what the field shows ("" for a secret)
    choices: tuple[tuple[str, str], ...] = ()  # (value, text) of a select
    minimum: int | None = None
    maximum: int | None = None
    maxlength: int | None = None
    unit: str | None = None
    description: str = ""
    effect: str = ""  # "" for a read-only key
    readonly: bool = False
    secret: bool = False
    is_set: bool = False  # a secret: whether one is stored
    reconnects: bool = False  # a change makes the station connect to its backend again


@dataclass
class Outcome:
    """What a POST did: ``errors`` (key -> message) means nothing was stored."""

    errors: dict[str, str] = field(default_factory=dict)
    submitted: dict[str, str] = field(default_factory=dict)  # what the form said (shown again on errors)
    reboot: bool = False  # a stored key takes effect after a reboot

    @property
    def ok(self) -> bool:
        return not self.errors


def _zones() -> tuple[tuple[str, str], ...]:
    return tuple((name, name) for name in ["UTC", *sorted(z for z in zoneinfo.available_timezones() if "/" in z)])


def _input(entry: Entry) -> dict:
    kind = entry.type
    if entry.key.secret:
        return {"input": "password", "maxlength": getattr(kind, "max_length", 128)}
    if isinstance(kind, Bool):
        return {"input": "select", "choices": (("true", "On"), ("false", "Off"))}
    if isinstance(kind, TimeZone):
        return {"input": "select", "choices": _zones()}
    if isinstance(kind, Text) and kind.choices:
        texts = CHOICE_TEXT.get(entry.key.name, {})
        return {"input": "select", "choices": tuple((c, texts.get(c, c or "(none)")) for c in kind.choices)}
    if isinstance(kind, Int):
        return {"input": "number", "minimum": kind.minimum, "maximum": kind.maximum}
    return {"input": "text", "maxlength": getattr(kind, "max_length", 500)}


def fields(store, names: Iterable[str], *, submitted: Mapping[str, str] | None = None,
           readonly: Iterable[str] = ()) -> list[FormField]:
    """The form's rows, in the order of ``names``; ``submitted`` values replace stored ones
    (a form shown again with its errors); ``readonly`` keys are shown disabled."""
    forced = {n.lower() for n in readonly}
    rows = []
    for name in names:
        entry = store.resolve(name)
        if entry is None:
            raise KeyError(name)
        key = entry.key
        is_readonly = key.access is Access.R or name.lower() in forced
        shown = store.render(name) or ""
        if submitted is not None and name in submitted and not key.secret:
            shown = submitted[name]
        label = readable(entry.name)
        rows.append(FormField(
            name=entry.name, label=label, value="" if key.secret else shown, unit=entry.unit,
            description=entry.description, effect="" if is_readonly else EFFECT_TEXT[key.effect],
            readonly=is_readonly, secret=key.secret, is_set=key.secret and store.is_set(name),
            reconnects=key.reconnects and not is_readonly, **_input(entry)))
    return rows


async def save(request: web.Request, names: Iterable[str], *, form: Mapping | None = None) -> Outcome:
    """Check every changed field of the posted form, then store them all (or none)."""
    store = request.app[UI_KEY].station.store
    if form is None:
        form = await request.post()
    outcome = Outcome()
    changed: dict[str, str] = {}
    for name in names:
        entry = store.resolve(name)
        value = form.get(name)
        if entry is None or entry.key.access is Access.R or not isinstance(value, str):
            continue
        if entry.key.secret:
            if value == "":
                continue  # an empty secret field keeps the stored secret
        else:
            outcome.submitted[name] = value
            if value == (store.render(name) or ""):
                continue
        changed[name] = value
    # One change: a new AuthorizationKey and the SecurityProfile that needs it are checked together;
    # stored in the event loop's thread, as the store's listeners act on the station.
    results = store.set_together(changed, Source.LOCAL)
    for name, result in results.items():
        if not result.ok:
            outcome.errors[name] = _message(result.reason, store.resolve(name).name)
        outcome.reboot = outcome.reboot or result.status is ConfigStatus.REBOOT_REQUIRED
    return outcome


def _message(reason: str, name: str) -> str:
    """The store says ``Key: problem``; beside the field the problem is enough."""
    prefix = f"{name}: "
    return reason[len(prefix):] if reason.lower().startswith(prefix.lower()) else reason


def flash_saved(request: web.Request, outcome: Outcome) -> None:
    t = translator(request[SESSION_KEY].language)
    flash(request, t("Saved. Some settings apply only after a reboot.") if outcome.reboot else t("Saved."))


Sections = list[tuple[str, list[str]]]  # (heading, key names)


def render_keys(request: web.Request, *, title: str, sections: Sections, outcome: Outcome | None = None,
                readonly: Iterable[str] = (), template: str = "settings.html", http_status: int = 200,
                **context) -> web.Response:
    """A page of key sections (``settings.html`` unless another template extends it)."""
    store = request.app[UI_KEY].station.store
    readonly = tuple(readonly)
    submitted = outcome.submitted if outcome is not None and outcome.errors else None
    rows = [(heading, fields(store, names, submitted=submitted, readonly=readonly)) for heading, names in sections]
    context.setdefault("notes", ())
    context.setdefault("warning", None)
    context.setdefault("infos", ())
    context.setdefault("action", request.path)
    return render(request, template, http_status=http_status, title=title, sections=rows,
                  errors=outcome.errors if outcome is not None else {}, **context)


async def post_keys(request: web.Request, *, title: str, sections: Sections, readonly: Iterable[str] = (),
                    form: Mapping | None = None, redirect: str | None = None, **context) -> web.Response:
    """Save the posted keys of ``sections`` (not the ``readonly`` ones): on success to ``redirect``
    (the page itself) with "Saved."; else the page again (400) with the messages beside the fields."""
    skip = {name.lower() for name in readonly}
    names = [name for _, group in sections for name in group if name.lower() not in skip]
    outcome = await save(request, names, form=form)
    if not outcome.ok:
        return render_keys(request, title=title, sections=sections, outcome=outcome, readonly=readonly,
                           http_status=400, **context)
    flash_saved(request, outcome)
    raise web.HTTPSeeOther(redirect or request.path)
