"""The station file: the installation-time YAML the daemon starts with.

``stationd run --config /etc/stationd/stationd.yaml`` reads it once at start. It says what the
station *is*: its identity, the OCPP backend it first talks to, its connectors and the links to
their controllers and meters, the WebUI and Modbus server addresses, where state lives.

Sections: identity, ocpp, hardware (connectors, rfid, modem), webui, modbus_server, and the top-level
fields data_dir, system_backend, log_level. Every model forbids unknown fields. Relative paths
(ca_file, tls_cert, tls_key, data_dir; serial ports excepted) resolve against the file's
directory. Every mistake is reported as ``FILE:LINE: FIELD.PATH: message``, one line per
problem; the OCPP authorization key is never echoed (not in messages, not in ``repr``).
See examples/dry-run.yaml and examples/device.yaml.
"""

from __future__ import annotations

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
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

from .station_types import (
    AuthorizationKey,
    Baudrate,
    Bind,
    CiString20,
    DevicePort,
    Directory,
    ExistingFile,
    Name,
    SerialNumber,
    Template,
    WsUrl,
    between,
    check_endpoint,
    check_host_value,
    none_as,
    one_of,
    only_for,
    parse_bind,
    render_chargebox_id,
)
from .yaml_lines import (
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
    endpoint: Annotated[StrictStr, BeforeValidator(none_as("")), AfterValidator(check_endpoint)] = ""
    security_profile: one_of(0, 1, 2) = 2
    authorization_key: AuthorizationKey | None = None
    ca_file: ExistingFile | None = None
    operator_profile: Name = CUSTOM_PROFILE
    operator_profiles: Annotated[list[OperatorProfile], BeforeValidator(none_as([]))] = Field(
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
    node_id: between(1, 63) | None = None

    @model_validator(mode="after")
    def _check_transport(self) -> ControllerConfig:
        fields = {"serial": ("port", "baudrate"), "can": ("can_interface", "can_channel", "node_id")}
        only_for(self, self.transport, fields)
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
    stopbits: one_of(1, 2) = 1


class TcpConfig(_Model):
    host: Annotated[StrictStr, AfterValidator(check_host_value)]
    port: between(1, 65535) = 502


class MeterModel(StrEnum):
    SDM630 = "SDM630"
    EM24 = "EM24"
    EM340 = "EM340"
    ABB_B23 = "ABB_B23"
    JANITZA_UMG96RM = "JANITZA_UMG96RM"
    JANITZA_UMG604 = "JANITZA_UMG604"
    ISKRA_WM3M4 = "ISKRA_WM3M4"
    SIM = "sim"


class MeterConfig(_Model):
    model: MeterModel
    unit_id: between(1, 247) = 1
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
    id: between(1, 4)
    connector_type: ConnectorType = ConnectorType.TYPE2_SOCKET
    max_current_a: between(6, 80) = 32
    phases: one_of(1, 3) = 3
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
        only_for(self, self.transport, {"serial": ("port", "baudrate")})
        if self.transport == "serial":
            if self.port is None:
                raise FieldError("required with transport serial", at=("port",))
            self.baudrate = self.baudrate or 9600
        return self


class HardwareConfig(_Model):
    connectors: Annotated[list[ConnectorConfig], AfterValidator(_count_connectors)]
    rfid: RfidConfig = Field(default_factory=RfidConfig)
    # "sim": a simulated mobile modem with a SIM in the dry run (the demo's Mobile page, iccid/imsi
    # in BootNotification). On the device ModemManager finds the real modem; nothing to configure.
    modem: Literal["sim", "none"] = "none"

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
    unit_id: between(1, 247) = 1

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
