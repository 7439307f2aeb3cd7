"""The station file: the installation-time YAML the daemon starts with.

``stationd run --config /etc/stationd/stationd.yaml`` reads it once at start. It says what the
station *is*: its identity, the OCPP backend it first talks to, its connectors and the links to
their controllers and meters, the WebUI and Modbus server addresses, where state lives.

Sections: identity, ocpp, hardware (connectors, rfid), webui, modbus_server, and the top-level
fields data_dir, system_backend, log_level. Every model forbids unknown fields. Relative paths
(ca_file, tls_cert, tls_key, data_dir; serial ports excepted) resolve against the file's
directory. Every mistake is reported as ``FILE:LINE: FIELD.PATH: message``, one line per
problem; the OCPP authorization key is never echoed (not in messages, not in ``repr``).
See examples/dry-run.yaml and examples/device.yaml.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from stationd.config.yaml_lines import (
    FieldError,
    FieldPath,
    YamlSyntaxError,
    compose_located,
    describe_errors,
    format_path,
    show_value,
)

__all__ = [
    "ConfigProblem", "ConnectorConfig", "ConnectorType", "ControllerConfig", "HardwareConfig",
    "IdentityConfig", "MeterConfig", "MeterModel", "ModbusServerConfig", "OcppConfig",
    "OperatorProfile", "RfidConfig", "RtuConfig", "StationConfig", "StationConfigError",
    "TcpConfig", "WebUIConfig", "load_station_config", "parse_bind", "parse_station_config",
    "render_chargebox_id",
]

CUSTOM_PROFILE = "(custom)"
_SECRET_FIELDS = frozenset({"authorization_key"})
_CHARGEBOX_CHARS = re.compile(r"[A-Za-z0-9*_=:+|@.\-]+")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


# ----------------------------------------------------------------------------- errors
@dataclass(frozen=True)
class ConfigProblem:
    source: str
    line: int | None
    path: str  # "hardware.connectors[0].max_current_a"; "" for a problem with the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class StationConfigError(Exception):
    """The station file cannot be used; ``str()`` is one ``FILE:LINE: PATH: message`` per line."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


# ----------------------------------------------------------------------------- value types
def _between(low: int, high: int) -> Any:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise FieldError(f"must be between {low} and {high} (got {value})")
        return value

    return Annotated[StrictInt, AfterValidator(check)]


def _one_of(*choices: int) -> Any:
    def check(value: int) -> int:
        if value not in choices:
            listed = ", ".join(map(str, choices[:-1])) + f" or {choices[-1]}"
            raise FieldError(f"must be {listed} (got {value})")
        return value

    return Annotated[StrictInt, AfterValidator(check)]


def _text(low: int, high: int, chars: str = "", described: str = "") -> Any:
    allowed = re.compile(f"[{chars}]*") if chars else None

    def check(value: str) -> str:
        if not value:
            raise FieldError("must not be empty")
        if not low <= len(value) <= high:
            raise FieldError(f"must be {low} to {high} characters long (got {len(value)})")
        if allowed is not None and not allowed.fullmatch(value):
            bad = next(char for char in value if not allowed.fullmatch(char))
            raise FieldError(f"may only contain {described} (found {bad!r})")
        return value

    return Annotated[StrictStr, AfterValidator(check)]


def _path_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise FieldError(f"must be a path (got {show_value(value)})")
    if not value:
        raise FieldError("must not be empty")
    return value


def _resolve(path: Path, info: ValidationInfo) -> Path:
    base = Path((info.context or {}).get("base_dir") or Path.cwd())
    return Path(os.path.normpath(base / path))


def _existing_file(path: Path, info: ValidationInfo) -> Path:
    if (info.context or {}).get("check_files", True) and not path.is_file():
        raise FieldError(f"no such file: {path}" if not path.exists() else f"not a file: {path}")
    return path


def _secret_text(value: Any) -> Any:
    if not isinstance(value, str):  # says nothing about the value itself
        raise FieldError("must be a string; put it in quotes")
    if not value:
        raise FieldError("must not be empty")
    return value


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} is not a valid host name or address")


def parse_bind(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8443"`` -> ``("127.0.0.1", 8443)``; ``"[::1]:8443"`` -> ``("::1", 8443)``.

    Port 0 means "any free port". Raises ValueError with an installer-readable reason.
    """
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError("must be [IPv6]:PORT, e.g. [::1]:8443")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8443")
        if ":" in host:
            raise ValueError("an IPv6 address goes in brackets, e.g. [::1]:8443")
        _check_host(host)
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"port must be a number from 0 to 65535 (got {port!r})")
    return host, int(port)


def _check_bind(value: str) -> str:
    try:
        parse_bind(value)
    except ValueError as exc:
        raise FieldError(f"{exc} (got {show_value(value)})") from None
    return value


def _check_host_value(value: str) -> str:
    try:
        _check_host(value)
    except ValueError as exc:
        raise FieldError(str(exc)) from None
    return value


def _check_ws_url(value: str) -> str:
    # The URL itself is never echoed: an installer may have pasted a password into it.
    if not value:
        raise FieldError("must not be empty")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise FieldError("is not a valid URL (bad host or port)") from None
    if parts.scheme not in ("ws", "wss"):
        raise FieldError("must start with ws:// or wss://")
    if not parts.hostname:
        raise FieldError("must name a host, e.g. ws://backend.example.com/ocpp")
    if parts.username is not None or parts.password is not None:
        raise FieldError("must not contain a user name or password (use ocpp.authorization_key)")
    if parts.query or parts.fragment or any(char.isspace() for char in value):
        raise FieldError(
            "must not contain spaces, '?' or '#' (the chargebox id is appended as the last path segment)"
        )
    return value


def _check_endpoint(value: str) -> str:
    return value and _check_ws_url(value)  # "" = no backend configured


def _none_as(default: Any) -> Any:
    return lambda value: default if value is None else value


def render_chargebox_id(template: str, serial: str) -> str:
    """The chargebox id ``template`` gives for ``serial``; ValueError if it is not a valid id."""
    if "{" in template.replace("{serial}", "") or "}" in template.replace("{serial}", ""):
        raise ValueError("may use only the placeholder {serial}")
    chargebox_id = template.replace("{serial}", serial)
    if not 1 <= len(chargebox_id) <= 48:
        raise ValueError(f"gives a chargebox id of {len(chargebox_id)} characters; at most 48 are allowed")
    if not _CHARGEBOX_CHARS.fullmatch(chargebox_id):
        bad = next(char for char in chargebox_id if not _CHARGEBOX_CHARS.fullmatch(char))
        raise ValueError(
            f"gives {chargebox_id!r}, but a chargebox id may only contain letters, digits and *_=:+|@.- "
            f"(found {bad!r})"
        )
    return chargebox_id


SerialNumber = _text(1, 25, r"A-Za-z0-9._\-", "letters, digits, '.', '_' and '-'")
CiString20 = _text(1, 20)
Name = _text(1, 64)
Template = _text(1, 100)
DevicePort = _text(1, 255)  # serial device or pyserial URL, used as written
Baudrate = _between(300, 4_000_000)
Bind = Annotated[StrictStr, AfterValidator(_check_bind)]
WsUrl = Annotated[StrictStr, AfterValidator(_check_ws_url)]
ExistingFile = Annotated[
    Path, BeforeValidator(_path_text), AfterValidator(_resolve), AfterValidator(_existing_file)
]
Directory = Annotated[Path, BeforeValidator(_path_text), AfterValidator(_resolve)]
AuthorizationKey = Annotated[SecretStr, BeforeValidator(_secret_text)]


def _only_for(model: BaseModel, transport: str, fields_by_transport: dict[str, tuple[str, ...]]) -> None:
    for owner, names in fields_by_transport.items():
        for name in names:
            if owner != transport and getattr(model, name) is not None:
                raise FieldError(f"only used with transport {owner} (this one is {transport})", at=(name,))


# ----------------------------------------------------------------------------- models
class _Model(BaseModel):
    """Base of every section: a misspelt field is an error, inputs stay out of str(errors)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class IdentityConfig(_Model):
    serial_number: SerialNumber
    model: CiString20 = "stationd AC22"  # BootNotification chargePointModel
    vendor: CiString20 = "stationd"  # BootNotification chargePointVendor
    chargebox_id_template: Template = "{serial}"

    @model_validator(mode="after")
    def _check_template(self) -> IdentityConfig:
        try:
            render_chargebox_id(self.chargebox_id_template, self.serial_number)
        except ValueError as exc:
            raise FieldError(str(exc), at=("chargebox_id_template",)) from None
        return self

    @property
    def chargebox_id(self) -> str:
        return render_chargebox_id(self.chargebox_id_template, self.serial_number)


class OperatorProfile(_Model):
    name: Name
    server_vendor: Name
    server_profile: Name = "Production"
    url: WsUrl


class OcppConfig(_Model):
    endpoint: Annotated[StrictStr, BeforeValidator(_none_as("")), AfterValidator(_check_endpoint)] = ""
    security_profile: _one_of(0, 1, 2) = 2
    authorization_key: AuthorizationKey | None = None
    ca_file: ExistingFile | None = None
    operator_profile: Name = CUSTOM_PROFILE
    operator_profiles: Annotated[list[OperatorProfile], BeforeValidator(_none_as([]))] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _check_profiles(self) -> OcppConfig:
        names: dict[str, int] = {}
        for index, profile in enumerate(self.operator_profiles):
            if profile.name == CUSTOM_PROFILE or profile.name in names:
                message = f"duplicate or reserved profile name {profile.name!r}"
                raise FieldError(message, at=("operator_profiles", index, "name"))
            names[profile.name] = index
        url_at: FieldPath = ("endpoint",)
        if self.operator_profile != CUSTOM_PROFILE:
            if self.operator_profile not in names:
                choices = ", ".join(repr(name) for name in [CUSTOM_PROFILE, *names])
                message = f"unknown operator profile {self.operator_profile!r}; choose one of {choices}"
                raise FieldError(message, at=("operator_profile",))
            if self.endpoint:
                message = (f"the URL comes from operator profile {self.operator_profile!r}; "
                           'leave endpoint empty or select "(custom)"')
                raise FieldError(message, at=("endpoint",))
            url_at = ("operator_profiles", names[self.operator_profile], "url")
        wanted = "wss" if self.security_profile == 2 else "ws"
        url = self.effective_endpoint
        if url and urlsplit(url).scheme != wanted:
            raise FieldError(f"security_profile {self.security_profile} needs a {wanted}:// URL", at=url_at)
        return self

    @property
    def selected_profile(self) -> OperatorProfile | None:
        return next((p for p in self.operator_profiles if p.name == self.operator_profile), None)

    @property
    def effective_endpoint(self) -> str:
        """The central system URL in use ("" = not configured); the chargebox id is appended."""
        profile = self.selected_profile
        return profile.url if profile is not None else self.endpoint


class ControllerConfig(_Model):
    transport: Literal["serial", "can", "sim"]
    port: DevicePort | None = None
    baudrate: Baudrate | None = None
    can_interface: Literal["socketcan", "virtual", "udp_multicast"] | None = None
    can_channel: Name | None = None
    node_id: _between(1, 63) | None = None

    @model_validator(mode="after")
    def _check_transport(self) -> ControllerConfig:
        fields = {"serial": ("port", "baudrate"), "can": ("can_interface", "can_channel", "node_id")}
        _only_for(self, self.transport, fields)
        if self.transport == "serial":
            if self.port is None:
                raise FieldError("required with transport serial", at=("port",))
            self.baudrate = self.baudrate or 115200
        elif self.transport == "can":
            if self.node_id is None:
                raise FieldError("required with transport can", at=("node_id",))
            self.can_interface = self.can_interface or "socketcan"
            self.can_channel = self.can_channel or "can0"
        return self


class RtuConfig(_Model):
    port: DevicePort
    baudrate: Baudrate = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: _one_of(1, 2) = 1


class TcpConfig(_Model):
    host: Annotated[StrictStr, AfterValidator(_check_host_value)]
    port: _between(1, 65535) = 502


class MeterModel(StrEnum):
    SDM630 = "SDM630"
    EM24 = "EM24"
    EM340 = "EM340"
    ABB_B23 = "ABB_B23"
    JANITZA_UMG96RM = "JANITZA_UMG96RM"
    ISKRA_WM3M4 = "ISKRA_WM3M4"
    SIM = "sim"


class MeterConfig(_Model):
    model: MeterModel
    unit_id: _between(1, 247) = 1
    rtu: RtuConfig | None = None
    tcp: TcpConfig | None = None

    @model_validator(mode="after")
    def _check_link(self) -> MeterConfig:
        if self.model is MeterModel.SIM:
            for name in ("rtu", "tcp"):
                if getattr(self, name) is not None:
                    raise FieldError("not used by a sim meter", at=(name,))
        elif self.rtu is None and self.tcp is None:
            link = "give rtu (Modbus RTU) or tcp (Modbus TCP)"
            raise FieldError(f"a {self.model.value} meter needs a link: {link}")
        elif self.rtu is not None and self.tcp is not None:
            raise FieldError("give either rtu or tcp, not both", at=("tcp",))
        return self


class ConnectorType(StrEnum):
    TYPE2_SOCKET = "Type2Socket"
    TYPE2_CABLE = "Type2Cable"
    TYPE3_SOCKET = "Type3Socket"


class ConnectorConfig(_Model):
    id: _between(1, 4)
    connector_type: ConnectorType = ConnectorType.TYPE2_SOCKET
    max_current_a: _between(6, 80) = 32
    phases: _one_of(1, 3) = 3
    controller: ControllerConfig
    meter: MeterConfig | None = None


def _count_connectors(connectors: list[ConnectorConfig]) -> list[ConnectorConfig]:
    if not 1 <= len(connectors) <= 4:
        raise FieldError(f"a station has 1 to 4 connectors (got {len(connectors)})")
    return connectors


class RfidConfig(_Model):
    transport: Literal["serial", "sim", "none"] = "none"
    port: DevicePort | None = None
    baudrate: Baudrate | None = None

    @model_validator(mode="after")
    def _check_transport(self) -> RfidConfig:
        _only_for(self, self.transport, {"serial": ("port", "baudrate")})
        if self.transport == "serial":
            if self.port is None:
                raise FieldError("required with transport serial", at=("port",))
            self.baudrate = self.baudrate or 9600
        return self


class HardwareConfig(_Model):
    connectors: Annotated[list[ConnectorConfig], AfterValidator(_count_connectors)]
    rfid: RfidConfig = Field(default_factory=RfidConfig)

    @model_validator(mode="after")
    def _check_connectors(self) -> HardwareConfig:
        count = len(self.connectors)
        seen: dict[int, int] = {}
        buses: dict[tuple[Any, ...], tuple[int, Any]] = {}  # meter bus -> (first index, settings)
        units: dict[tuple[Any, ...], int] = {}  # (bus, unit id) -> index
        for index, connector in enumerate(self.connectors):
            id_at = ("connectors", index, "id")
            if connector.id in seen:
                message = f"duplicate connector id {connector.id} (also connectors[{seen[connector.id]}])"
                raise FieldError(message, at=id_at)
            if connector.id > count:
                message = f"connector ids must be 1 to {count} for {count} connector(s) (got {connector.id})"
                raise FieldError(message, at=id_at)
            seen[connector.id] = index
            meter = connector.meter
            if meter is None or meter.model is MeterModel.SIM:
                continue
            at: FieldPath = ("connectors", index, "meter")
            if meter.rtu is not None:
                bus, name = ("rtu", meter.rtu.port), meter.rtu.port
                settings = (meter.rtu.baudrate, meter.rtu.parity, meter.rtu.stopbits)
                first, first_settings = buses.setdefault(bus, (index, settings))
                if first_settings != settings:
                    message = (f"{name} is shared with connectors[{first}].meter, "
                               "so baudrate, parity and stopbits must match it")
                    raise FieldError(message, at=at + ("rtu",))
            else:
                assert meter.tcp is not None
                bus, name = ("tcp", meter.tcp.host, meter.tcp.port), f"{meter.tcp.host}:{meter.tcp.port}"
            if (bus, meter.unit_id) in units:
                other = units[bus, meter.unit_id]
                message = f"unit id {meter.unit_id} on {name} is already used by connectors[{other}].meter"
                raise FieldError(message, at=at + ("unit_id",))
            units[bus, meter.unit_id] = index
        self.connectors.sort(key=lambda connector: connector.id)
        return self

    def connector(self, connector_id: int) -> ConnectorConfig:
        return next(c for c in self.connectors if c.id == connector_id)


class WebUIConfig(_Model):
    bind: Bind = "127.0.0.1:8443"
    tls_cert: ExistingFile | None = None  # neither: a self-signed certificate in data_dir
    tls_key: ExistingFile | None = None

    @model_validator(mode="after")
    def _check_tls(self) -> WebUIConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            message = "give tls_cert and tls_key together (or neither, for a self-signed certificate)"
            raise FieldError(message, at=(missing,))
        return self

    @property
    def address(self) -> tuple[str, int]:
        return parse_bind(self.bind)


class ModbusServerConfig(_Model):
    enabled: StrictBool = False
    bind: Bind = "127.0.0.1:1502"
    unit_id: _between(1, 247) = 1

    @property
    def address(self) -> tuple[str, int]:
        return parse_bind(self.bind)


def _log_level(value: str) -> str:
    if value.lower() not in ("debug", "info", "warning", "error"):
        raise FieldError(f"must be one of 'debug', 'info', 'warning' or 'error' (got {show_value(value)})")
    return value.lower()


_SECTIONS = ("identity", "ocpp", "hardware", "webui", "modbus_server")


class StationConfig(_Model):
    identity: IdentityConfig
    ocpp: OcppConfig = Field(default_factory=OcppConfig)
    hardware: HardwareConfig
    webui: WebUIConfig = Field(default_factory=WebUIConfig)
    modbus_server: ModbusServerConfig = Field(default_factory=ModbusServerConfig)
    data_dir: Directory = Path("/var/lib/stationd")
    system_backend: Literal["device", "dry-run"] = "dry-run"
    log_level: Annotated[StrictStr, AfterValidator(_log_level)] = "info"  # debug|info|warning|error

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        # "ocpp:" with every line below commented out is an empty section, not an error.
        if isinstance(data, dict):
            return {k: ({} if v is None and k in _SECTIONS else v) for k, v in data.items()}
        return data


# ----------------------------------------------------------------------------- loading
def load_station_config(path: str | Path, *, check_files: bool = True) -> StationConfig:
    """Read and validate the station file at ``path``; relative paths in it resolve against
    its directory. ``check_files=False`` skips the "file exists" checks (ca_file, TLS files)."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        reason = {FileNotFoundError: "no such file", IsADirectoryError: "is a directory, not a file",
                  PermissionError: "permission denied"}.get(type(exc), exc.strerror or type(exc).__name__)
        raise StationConfigError([ConfigProblem(source, None, "", f"cannot read: {reason}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x})"
        raise StationConfigError([ConfigProblem(source, line, "", message)]) from None
    base_dir = Path(path).absolute().parent
    return parse_station_config(text, source, base_dir, check_files=check_files)


def parse_station_config(
    text: str, source: str = "<string>", base_dir: Path | None = None, *, check_files: bool = True
) -> StationConfig:
    """Validate station-file ``text``; ``source`` names it in errors, relative paths resolve
    against ``base_dir`` (default: the current directory)."""

    def fail(line: int | None, message: str) -> StationConfigError:
        return StationConfigError([ConfigProblem(source, line, "", message)])

    try:
        document = compose_located(text)
    except YamlSyntaxError as exc:
        raise fail(exc.line, f"invalid YAML: {exc.message}") from None
    if document is None or document.data is None:
        raise fail(None, "the file is empty; expected sections such as identity: and hardware:")
    problems = document.problems
    if not problems and not isinstance(document.data, dict):
        sections = "a mapping of sections (identity:, hardware:, ...)"
        raise fail(document.line_of(()), f"the top level must be {sections}, not {show_value(document.data)}")
    if not problems:
        context = {"base_dir": Path(base_dir or Path.cwd()), "check_files": check_files}
        try:
            return StationConfig.model_validate(document.data, context=context)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        problems = describe_errors(errors, document, StationConfig, _SECRET_FIELDS)
    raise StationConfigError(
        [ConfigProblem(source, p.line, format_path(p.path), p.message) for p in problems]
    )
