"""The station file (stationd.yaml): examples load, every mistake is named FILE:LINE: PATH."""

from __future__ import annotations

import os
import textwrap
import traceback
from pathlib import Path

import pytest

from stationd.config.station_file import (
    ConnectorType,
    MeterModel,
    StationConfig,
    StationConfigError,
    load_station_config,
    parse_bind,
    parse_station_config,
    render_chargebox_id,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SECRET = "Sup3r-S3cret-Key-0042"

MINIMAL = """\
identity:
  serial_number: "SN1"
hardware:
  connectors:
    - id: 1
      controller: {transport: sim}
"""


def write(tmp_path: Path, text: str, name: str = "stationd.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_lines(path: Path, **kwargs) -> list[str]:
    with pytest.raises(StationConfigError) as caught:
        load_station_config(path, **kwargs)
    return str(caught.value).splitlines()


def single_error(path: Path) -> str:
    lines = error_lines(path)
    assert len(lines) == 1, lines
    return lines[0]


# ----------------------------------------------------------------------------- examples
def test_dry_run_example_loads():
    config = load_station_config(EXAMPLES / "dry-run.yaml")
    assert isinstance(config, StationConfig)
    assert config.identity.chargebox_id == "TE-DEV000001"
    assert [c.id for c in config.hardware.connectors] == [1, 2]
    for connector in config.hardware.connectors:
        assert connector.controller.transport == "sim"
        assert connector.meter is not None and connector.meter.model is MeterModel.SIM
        assert connector.meter.rtu is None and connector.meter.tcp is None
    assert config.hardware.rfid.transport == "sim"
    assert config.webui.address == ("127.0.0.1", 8443)
    assert config.modbus_server.enabled is True
    assert config.modbus_server.address == ("127.0.0.1", 1502)
    assert config.data_dir == EXAMPLES.parent / "data" / "dry-run"
    assert config.system_backend == "dry-run"
    assert config.ocpp.effective_endpoint == "ws://127.0.0.1:9000/ocpp"
    assert config.ocpp.security_profile == 0


def test_device_example_loads_without_file_checks():
    config = load_station_config(EXAMPLES / "device.yaml", check_files=False)
    assert config.system_backend == "device"
    assert config.ocpp.security_profile == 2
    assert config.ocpp.effective_endpoint.startswith("wss://")
    assert config.ocpp.ca_file == Path("/etc/stationd/ca.pem")
    assert config.webui.address == ("192.168.32.1", 443)
    assert config.data_dir == Path("/var/lib/stationd")
    ports = [c.controller.port for c in config.hardware.connectors]
    assert ports == ["/dev/ttymxc1", "/dev/ttymxc2"]
    meters = [c.meter for c in config.hardware.connectors]
    assert [m.model for m in meters] == [MeterModel.SDM630, MeterModel.SDM630]
    assert [m.unit_id for m in meters] == [1, 2]
    assert {m.rtu.port for m in meters} == {"/dev/ttyUSB0"}
    assert config.hardware.rfid.transport == "serial" and config.hardware.rfid.port


def test_device_example_checks_ca_file_by_default():
    if Path("/etc/stationd/ca.pem").exists():
        pytest.skip("this machine has a real /etc/stationd/ca.pem")
    path = EXAMPLES / "device.yaml"
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.strip().startswith("ca_file:"))
    assert error_lines(path) == [f"{path}:{line}: ocpp.ca_file: no such file: /etc/stationd/ca.pem"]


def test_minimal_file_gets_safe_defaults(tmp_path):
    config = load_station_config(write(tmp_path, MINIMAL))
    assert config.identity.chargebox_id == "SN1"
    assert config.identity.model == "stationd AC22"
    assert config.ocpp.endpoint == "" and config.ocpp.security_profile == 2
    assert config.ocpp.authorization_key is None
    assert config.ocpp.operator_profile == "(custom)"
    connector = config.hardware.connectors[0]
    assert connector.connector_type is ConnectorType.TYPE2_SOCKET
    assert (connector.max_current_a, connector.phases, connector.meter) == (32, 3, None)
    assert config.hardware.rfid.transport == "none"
    assert config.webui.bind == "127.0.0.1:8443"
    assert config.modbus_server.enabled is False
    assert config.data_dir == Path("/var/lib/stationd")
    assert (config.system_backend, config.log_level) == ("dry-run", "info")


def test_transport_defaults_are_filled_in(tmp_path):
    path = write(tmp_path, """\
        identity: {serial_number: SN1}
        hardware:
          connectors:
            - {id: 1, controller: {transport: serial, port: /dev/ttyS1}}
            - {id: 2, controller: {transport: can, node_id: 7}}
          rfid: {transport: serial, port: /dev/ttyS3}
        """)
    config = load_station_config(path)
    serial, can = (c.controller for c in config.hardware.connectors)
    assert (serial.port, serial.baudrate) == ("/dev/ttyS1", 115200)
    assert (can.can_interface, can.can_channel, can.node_id) == ("socketcan", "can0", 7)
    assert config.hardware.rfid.baudrate == 9600


def test_empty_sections_mean_defaults(tmp_path):
    path = write(tmp_path, MINIMAL + "ocpp:\n  # endpoint: ws://127.0.0.1:9000\nwebui:\n")
    config = load_station_config(path)
    assert config.ocpp.security_profile == 2 and config.webui.bind == "127.0.0.1:8443"


# ----------------------------------------------------------------------------- chargebox id
def test_chargebox_id_renders_serial_into_template(tmp_path):
    path = write(tmp_path, MINIMAL.replace('"SN1"', '"100002440"\n  chargebox_id_template: "TE-{serial}"'))
    assert load_station_config(path).identity.chargebox_id == "TE-100002440"


@pytest.mark.parametrize(
    ("template", "expected"),
    [("{serial}", "TE1"), ("TE-{serial}", "TE-TE1"), ("{serial}-{serial}", "TE1-TE1"), ("14452", "14452"),
     ("a*_=:+|@.-{serial}", "a*_=:+|@.-TE1")],
)
def test_render_chargebox_id(template, expected):
    assert render_chargebox_id(template, "TE1") == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("TE-{sn}", "may use only the placeholder {serial}"),
        ("TE-{serial", "may use only the placeholder {serial}"),
        ("TE {serial}", "gives 'TE TE1', but a chargebox id may only be 1 to 48 characters: letters, digits and * _ = : + | @ . - (found ' ')"),
        ("X" * 46 + "{serial}", "gives a chargebox id of 49 characters; at most 48 are allowed"),
    ],
)
def test_bad_chargebox_id_template_is_reported_on_its_line(tmp_path, template, message):
    path = write(tmp_path, f"""\
        identity:
          serial_number: TE1
          chargebox_id_template: "{template}"
        hardware:
          connectors: [{{id: 1, controller: {{transport: sim}}}}]
        """)
    assert single_error(path) == f"{path}:3: identity.chargebox_id_template: {message}"


def test_serial_number_characters_are_checked(tmp_path):
    path = write(tmp_path, MINIMAL.replace('"SN1"', '"SN 1"'))
    assert single_error(path) == f"{path}:2: identity.serial_number: may only contain letters, digits, '.', '_' and '-' (found ' ')"


# ----------------------------------------------------------------------------- error lines
def test_out_of_range_value_names_file_line_and_path(tmp_path):
    path = write(tmp_path, """\
        identity:
          serial_number: "SN1"
        hardware:
          connectors:
            - id: 1
              controller: {transport: sim}
              max_current_a: 100
        """)
    assert error_lines(path) == [f"{path}:7: hardware.connectors[0].max_current_a: must be between 6 and 80 (got 100)"]


def test_unknown_field_is_reported_at_its_key(tmp_path):
    path = write(tmp_path, """\
        identity:
          serial_number: "SN1"
        hardware:
          connectors:
            - id: 1
              controller: {transport: sim}
              max_curent_a: 16
        webui:
          bind: 127.0.0.1:8443
          colour: blue
        """)
    assert error_lines(path) == [
        f"{path}:7: hardware.connectors[0].max_curent_a: unknown field (did you mean 'max_current_a'?)",
        f"{path}:10: webui.colour: unknown field (known: bind, tls_cert, tls_key)",
    ]


def test_unknown_section(tmp_path):
    path = write(tmp_path, MINIMAL + "modbus-server:\n  enabled: true\n")
    assert single_error(path) == f"{path}:7: modbus-server: unknown field (did you mean 'modbus_server'?)"
    path = write(tmp_path, MINIMAL + "tariffs:\n  url: x\n")
    assert single_error(path) == (
        f"{path}:7: tariffs: unknown field "
        "(known: identity, ocpp, hardware, webui, modbus_server, data_dir, system_backend, log_level)")


def test_missing_required_field_is_reported_at_the_parent_mapping(tmp_path):
    path = write(tmp_path, """\
        # station file
        identity:
          model: "AC22"
          vendor: "stationd"
        hardware:
          connectors:
            - id: 1
              max_current_a: 16
        """)
    assert error_lines(path) == [
        f"{path}:2: identity.serial_number: required field missing",
        f"{path}:7: hardware.connectors[0].controller: required field missing",
    ]


def test_missing_section_is_reported_at_the_top_mapping(tmp_path):
    path = write(tmp_path, "\n# only an identity\nidentity:\n  serial_number: SN1\n")
    assert single_error(path) == f"{path}:3: hardware: required field missing"


def test_null_required_section_is_reported_at_its_line(tmp_path):
    path = write(tmp_path, "hardware:\n  connectors: [{id: 1, controller: {transport: sim}}]\nidentity:\n")
    assert single_error(path) == f"{path}:3: identity.serial_number: required field missing"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('  serial_number: 100002440', "identity.serial_number: must be a string (got 100002440); put it in quotes"),
        ('  serial_number: [a]', "identity.serial_number: must be a string (got a list)"),
        ('  connectors: {id: 1}', "hardware.connectors: must be a list (got a mapping)"),
        ('  connectors: [{id: "1", controller: {transport: sim}}]', "hardware.connectors[0].id: must be a whole number (got '1')"),
        ('  connectors: [{id: 1.5, controller: {transport: sim}}]', "hardware.connectors[0].id: must be a whole number (got 1.5)"),
        ('  connectors: [{id: true, controller: {transport: sim}}]', "hardware.connectors[0].id: must be a whole number (got true)"),
        ('  connectors: [{id: 1, phases: 2, controller: {transport: sim}}]', "hardware.connectors[0].phases: must be 1 or 3 (got 2)"),
        ('  connectors: [{id: 1, connector_type: CCS, controller: {transport: sim}}]',
         "hardware.connectors[0].connector_type: must be one of 'Type2Socket', 'Type2Cable' or 'Type3Socket' (got 'CCS')"),
        ('  connectors: [{id: 1, controller: {transport: usb}}]',
         "hardware.connectors[0].controller.transport: must be one of 'serial', 'can' or 'sim' (got 'usb')"),
        ('  connectors: [{id: 1, controller: sim}]', "hardware.connectors[0].controller: must be a mapping (got a string)"),
    ],
)
def test_wrong_types(tmp_path, line, message):
    text = "identity:\n  serial_number: SN1\nhardware:\n  connectors: [{id: 1, controller: {transport: sim}}]\n"
    target = 2 if "serial_number" in line else 4
    lines = text.splitlines()
    lines[target - 1] = line
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert single_error(path) == f"{path}:{target}: {message}"


def test_several_problems_are_listed_in_line_order(tmp_path):
    path = write(tmp_path, """\
        identity:
          serial_number: "SN1"
        hardware:
          connectors:
            - id: 1
              controller: {transport: sim}
              max_current_a: 5
        modbus_server:
          enabled: "yes"
          unit_id: 0
        log_level: verbose
        system_backend: real
        """)
    assert error_lines(path) == [
        f"{path}:7: hardware.connectors[0].max_current_a: must be between 6 and 80 (got 5)",
        f"{path}:9: modbus_server.enabled: must be true or false (got 'yes')",
        f"{path}:10: modbus_server.unit_id: must be between 1 and 247 (got 0)",
        f"{path}:11: log_level: must be one of 'debug', 'info', 'warning' or 'error' (got 'verbose')",
        f"{path}:12: system_backend: must be one of 'device' or 'dry-run' (got 'real')",
    ]


# ----------------------------------------------------------------------------- transports
HW_HEAD = "identity: {serial_number: SN1}\nhardware:\n  connectors:\n    - id: 1\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("      controller:\n        transport: sim\n        port: /dev/ttyS1\n",
         "7: hardware.connectors[0].controller.port: only used with transport serial (this one is sim)"),
        ("      controller:\n        transport: serial\n        baudrate: 9600\n",
         "5: hardware.connectors[0].controller.port: required with transport serial"),
        ("      controller:\n        transport: serial\n        port: /dev/ttyS1\n        node_id: 3\n",
         "8: hardware.connectors[0].controller.node_id: only used with transport can (this one is serial)"),
        ("      controller:\n        transport: can\n        can_channel: can1\n",
         "5: hardware.connectors[0].controller.node_id: required with transport can"),
        ("      controller:\n        transport: can\n        node_id: 64\n",
         "7: hardware.connectors[0].controller.node_id: must be between 1 and 63 (got 64)"),
        ("      controller:\n        transport: can\n        node_id: 1\n        can_interface: vcan\n",
         "8: hardware.connectors[0].controller.can_interface: must be one of 'socketcan', 'virtual' or 'udp_multicast' (got 'vcan')"),
        ("      controller:\n        transport: can\n        node_id: 1\n        port: /dev/ttyS1\n",
         "8: hardware.connectors[0].controller.port: only used with transport serial (this one is can)"),
        ("      controller: {transport: sim}\n      meter:\n        model: sim\n        tcp: {host: 127.0.0.1}\n",
         "8: hardware.connectors[0].meter.tcp: not used by a sim meter"),
        ("      controller: {transport: sim}\n      meter:\n        model: SDM630\n        unit_id: 3\n",
         "6: hardware.connectors[0].meter: a SDM630 meter needs a link: give rtu (Modbus RTU) or tcp (Modbus TCP)"),
        ("      controller: {transport: sim}\n      meter:\n        model: EM24\n        rtu: {port: /dev/ttyUSB0}\n"
         "        tcp: {host: 127.0.0.1, port: 502}\n",
         "9: hardware.connectors[0].meter.tcp: give either rtu or tcp, not both"),
        ("      controller: {transport: sim}\n      meter:\n        model: EM24\n        rtu: {port: /dev/ttyUSB0, parity: X}\n",
         "8: hardware.connectors[0].meter.rtu.parity: must be one of 'N', 'E' or 'O' (got 'X')"),
        ("      controller: {transport: sim}\n      meter:\n        model: EM24\n        tcp: {host: 'bad host'}\n",
         "8: hardware.connectors[0].meter.tcp.host: 'bad host' is not a valid host name or address"),
        ("      controller: {transport: sim}\n      meter: {model: SDM72, rtu: {port: /dev/ttyUSB0}}\n",
         "6: hardware.connectors[0].meter.model: must be one of 'SDM630', 'EM24', 'EM340', 'ABB_B23', "
         "'JANITZA_UMG96RM', 'JANITZA_UMG604', 'ISKRA_WM3M4' or 'sim' (got 'SDM72')"),
        ("      controller: {transport: sim}\n  rfid:\n    transport: sim\n    port: /dev/ttyS3\n",
         "8: hardware.rfid.port: only used with transport serial (this one is sim)"),
        ("      controller: {transport: sim}\n  rfid:\n    transport: serial\n",
         "6: hardware.rfid.port: required with transport serial"),
    ],
)
def test_transport_fields_must_match_the_transport(tmp_path, body, expected):
    path = write(tmp_path, HW_HEAD + body)
    assert single_error(path) == f"{path}:{expected}"


def test_meters_sharing_a_bus_need_distinct_unit_ids_and_equal_settings(tmp_path):
    head = HW_HEAD + "      controller: {transport: sim}\n      meter: {model: SDM630, rtu: {port: /dev/ttyUSB0}}\n"
    path = write(tmp_path, head + "    - id: 2\n      controller: {transport: sim}\n"
                 "      meter: {model: SDM630, unit_id: 1, rtu: {port: /dev/ttyUSB0}}\n")
    assert single_error(path) == (
        f"{path}:9: hardware.connectors[1].meter.unit_id: unit id 1 on /dev/ttyUSB0 is already used by connectors[0].meter")
    path = write(tmp_path, head + "    - id: 2\n      controller: {transport: sim}\n"
                 "      meter: {model: SDM630, unit_id: 2, rtu: {port: /dev/ttyUSB0, baudrate: 19200}}\n")
    assert single_error(path) == (
        f"{path}:9: hardware.connectors[1].meter.rtu: /dev/ttyUSB0 is shared with connectors[0].meter, "
        "so baudrate, parity and stopbits must match it")


# ----------------------------------------------------------------------------- connector ids
def connectors_file(tmp_path: Path, ids: list[int]) -> Path:
    items = "".join(f"    - id: {i}\n      controller: {{transport: sim}}\n" for i in ids)
    return write(tmp_path, "identity: {serial_number: SN1}\nhardware:\n  connectors:\n" + items)


def test_duplicate_connector_ids(tmp_path):
    path = connectors_file(tmp_path, [1, 2, 1])
    assert single_error(path) == f"{path}:8: hardware.connectors[2].id: duplicate connector id 1 (also connectors[0])"


def test_connector_ids_must_be_contiguous(tmp_path):
    path = connectors_file(tmp_path, [1, 3])
    assert single_error(path) == f"{path}:6: hardware.connectors[1].id: connector ids must be 1 to 2 for 2 connector(s) (got 3)"


def test_connectors_are_sorted_by_id(tmp_path):
    config = load_station_config(connectors_file(tmp_path, [2, 3, 1]))
    assert [c.id for c in config.hardware.connectors] == [1, 2, 3]
    assert config.hardware.connector(3).id == 3


def test_connector_count(tmp_path):
    path = connectors_file(tmp_path, [1, 2, 3, 4, 4])
    assert single_error(path) == f"{path}:3: hardware.connectors: a station has 1 to 4 connectors (got 5)"
    path = write(tmp_path, "identity: {serial_number: SN1}\nhardware:\n  connectors: []\n")
    assert single_error(path) == f"{path}:3: hardware.connectors: a station has 1 to 4 connectors (got 0)"


# ----------------------------------------------------------------------------- YAML level
def test_duplicate_yaml_key(tmp_path):
    path = write(tmp_path, """\
        identity:
          serial_number: "SN1"
        hardware:
          connectors:
            - id: 1
              max_current_a: 16
              controller: {transport: sim}
              max_current_a: 32
        """)
    assert single_error(path) == f"{path}:8: hardware.connectors[0].max_current_a: duplicate key (first on line 6)"


def test_duplicate_section(tmp_path):
    path = write(tmp_path, MINIMAL + "identity:\n  serial_number: SN2\n")
    assert single_error(path) == f"{path}:7: identity: duplicate key (first on line 1)"


def test_yaml_syntax_error_names_its_line(tmp_path):
    path = write(tmp_path, """\
        identity:
          serial_number: "SN1"
        hardware:
          connectors:
            - id: 1
             controller: {transport: sim}
        """)
    assert single_error(path).startswith(f"{path}:6: invalid YAML: ")


def test_unterminated_flow_sequence(tmp_path):
    path = write(tmp_path, "identity: {serial_number: SN1}\nhardware:\n  connectors: [\n")
    assert single_error(path) == (
        f"{path}:4: invalid YAML: expected the node content, but found '<stream end>' (while parsing a flow node)")


def test_tab_indentation(tmp_path):
    path = tmp_path / "tabs.yaml"
    path.write_text("identity:\n\tserial_number: SN1\n")
    assert single_error(path) == (
        f"{path}:2: invalid YAML: found character '\\t' that cannot start any token (while scanning for the next token)")


def test_custom_tags_and_merge_keys_are_refused(tmp_path):
    path = write(tmp_path, MINIMAL.replace('"SN1"', '!env SERIAL'))
    assert single_error(path) == (
        f"{path}:2: identity.serial_number: invalid value: could not determine a constructor for the tag '!env'")
    path = write(tmp_path, "base: &b {transport: sim}\n" + MINIMAL.replace("{transport: sim}", "{<<: *b}"))
    assert single_error(path) == f"{path}:7: hardware.connectors[0].controller: merge keys (<<) are not supported"


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing yet\n", "---\n", "~\n"])
def test_empty_file(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    assert single_error(path) == f"{path}: the file is empty; expected sections such as identity: and hardware:"


def test_top_level_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "# a list\n- identity\n- hardware\n")
    assert single_error(path) == (
        f"{path}:2: the top level must be a mapping of sections (identity:, hardware:, ...), not a list")
    path = write(tmp_path, "just text\n")
    assert single_error(path) == (
        f"{path}:1: the top level must be a mapping of sections (identity:, hardware:, ...), not 'just text'")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert single_error(path) == f"{path}: cannot read: no such file"


def test_directory(tmp_path):
    assert single_error(tmp_path) == f"{tmp_path}: cannot read: is a directory, not a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = write(tmp_path, MINIMAL)
    path.chmod(0)
    try:
        assert single_error(path) == f"{path}: cannot read: permission denied"
    finally:
        path.chmod(0o600)


def test_read_error_is_named(tmp_path, monkeypatch):
    path = write(tmp_path, MINIMAL)

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert single_error(path) == f"{path}: cannot read: permission denied"


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("identity:\n  serial_number: SN1\n  vendor: Müller\n".encode("latin-1"))
    assert single_error(path) == f"{path}:3: not UTF-8 text (byte 0xfc)"


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_station_config(path).identity.serial_number == "SN1"


def test_control_character(tmp_path):
    path = tmp_path / "bell.yaml"
    path.write_text(MINIMAL + "log_level: info\x07\n")
    assert single_error(path) == (
        f"{path}:7: invalid YAML: unacceptable character #x0007: special characters are not allowed")


def test_parse_from_string_names_the_source():
    with pytest.raises(StationConfigError) as caught:
        parse_station_config("identity: {}\nhardware: {connectors: []}\n")
    assert str(caught.value).splitlines() == [
        "<string>:1: identity.serial_number: required field missing",
        "<string>:2: hardware.connectors: a station has 1 to 4 connectors (got 0)",
    ]
    assert [p.line for p in caught.value.problems] == [1, 2]


@pytest.mark.parametrize("text", [MINIMAL + "bogus: 1\n", "a: [\n", MINIMAL + "a: 1\na: 2\n"])
def test_no_library_exception_is_chained(tmp_path, text):
    with pytest.raises(StationConfigError) as caught:
        load_station_config(write(tmp_path, text))
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


# ----------------------------------------------------------------------------- the secret
def secret_file(tmp_path: Path, key_line: str, extra: str = "") -> Path:
    head = 'identity:\n  serial_number: "SN1"\nocpp:\n  endpoint: "wss://127.0.0.1:9443/ocpp"\n  security_profile: 2\n'
    tail = "hardware:\n  connectors:\n    - id: 1\n      controller: {transport: sim}\n"
    path = tmp_path / "stationd.yaml"
    path.write_text(head + key_line + "\n" + tail + extra)
    return path


def test_authorization_key_is_hidden_in_repr(tmp_path):
    config = load_station_config(secret_file(tmp_path, f'  authorization_key: "{SECRET}"'))
    assert config.ocpp.authorization_key.get_secret_value() == SECRET
    for text in (repr(config), str(config), repr(config.ocpp), config.model_dump_json(), str(config.model_dump())):
        assert SECRET not in text


@pytest.mark.parametrize(
    ("key_line", "extra", "expected"),
    [
        # another field is wrong: the key is valid and not mentioned at all
        (f'  authorization_key: "{SECRET}"', "log_level: loud\n", None),
        # the key itself is wrong (a number): said without the value
        ("  authorization_key: 9876543210123456789", "", "6: ocpp.authorization_key: must be a string; put it in quotes"),
        ('  authorization_key: ""', "", "6: ocpp.authorization_key: must not be empty"),
        (f'  authorization_key: ["{SECRET}"]', "", "6: ocpp.authorization_key: must be a string; put it in quotes"),
        (f'  authorization_key: {{k: "{SECRET}"}}', "", "6: ocpp.authorization_key: must be a string; put it in quotes"),
        # misspelt: unknown field, value not echoed
        (f'  authorisation_key: "{SECRET}"', "", "6: ocpp.authorisation_key: unknown field (did you mean 'authorization_key'?)"),
        # given twice
        (f'  authorization_key: "{SECRET}"\n  authorization_key: "{SECRET}x"', "",
         "7: ocpp.authorization_key: duplicate key (first on line 6)"),
        # a YAML syntax error on the key's own line
        (f'  authorization_key: "{SECRET}\n  x: {SECRET}', "", None),
        (f'  authorization_key: {SECRET}: {SECRET}', "", "6: invalid YAML: mapping values are not allowed here"),
        # written as key=value: the odd key name is not echoed either
        (f"  authorization_key={SECRET}: 1", "", None),
        (f"  authorization_key {SECRET}: 1", "", None),
        # the key pasted into the URL is refused without echoing the URL
        ("", "", None),
    ],
)
def test_authorization_key_never_appears_in_errors(tmp_path, key_line, extra, expected):
    path = secret_file(tmp_path, key_line, extra)
    if not key_line:
        path.write_text(path.read_text().replace("wss://", f"wss://TE1:{SECRET}@"))
    with pytest.raises(StationConfigError) as caught:
        load_station_config(path)
    text = str(caught.value)
    assert SECRET not in text and SECRET[:8] not in text
    printed = "".join(traceback.format_exception(caught.value))
    assert SECRET not in printed and SECRET[:8] not in printed
    if expected is not None:
        assert text == f"{path}:{expected}"


def test_odd_key_names_are_not_echoed(tmp_path):
    path = secret_file(tmp_path, f"  authorization_key {SECRET}: 1")
    assert single_error(path) == f"{path}:6: ocpp.<invalid name>: unknown field (did you mean 'authorization_key'?)"


def test_a_string_where_a_section_belongs_is_not_echoed(tmp_path):
    path = write(tmp_path, MINIMAL + f'ocpp: "authorization_key: {SECRET}"\n')
    assert single_error(path) == f"{path}:7: ocpp: must be a mapping (got a string)"


def test_url_with_credentials_is_refused(tmp_path):
    path = secret_file(tmp_path, "")
    path.write_text(path.read_text().replace("wss://", f"wss://TE1:{SECRET}@"))
    assert single_error(path) == (
        f"{path}:4: ocpp.endpoint: must not contain a user name or password (use ocpp.authorization_key)")


# ----------------------------------------------------------------------------- OCPP section
@pytest.mark.parametrize(
    ("ocpp", "expected"),
    [
        ('  endpoint: "ws://127.0.0.1:9000/ocpp"\n  security_profile: 2\n', "4: ocpp.endpoint: security_profile 2 needs a wss:// URL"),
        ('  endpoint: "wss://127.0.0.1:9000/ocpp"\n  security_profile: 1\n', "4: ocpp.endpoint: security_profile 1 needs a ws:// URL"),
        ('  endpoint: "http://127.0.0.1:9000/ocpp"\n', "4: ocpp.endpoint: must start with ws:// or wss://"),
        ('  endpoint: "ws:///ocpp"\n  security_profile: 0\n', "4: ocpp.endpoint: must name a host, e.g. ws://backend.example.com/ocpp"),
        ('  endpoint: "ws://127.0.0.1:99999/ocpp"\n', "4: ocpp.endpoint: is not a valid URL (bad host or port)"),
        ('  endpoint: "ws://127.0.0.1/ocpp?x=1"\n', "4: ocpp.endpoint: must not contain spaces, '?' or '#' "
         "(the chargebox id is appended as the last path segment)"),
        ("  security_profile: 3\n", "4: ocpp.security_profile: must be 0, 1 or 2 (got 3)"),
        ("  security_profile: true\n", "4: ocpp.security_profile: must be a whole number (got true)"),
        ("  ca_file: certs/missing.pem\n", "4: ocpp.ca_file: no such file: {dir}/certs/missing.pem"),
        ("  ca_file: .\n", "4: ocpp.ca_file: not a file: {dir}"),
        ("  ca_file: 42\n", "4: ocpp.ca_file: must be a path (got 42)"),
        ('  operator_profile: "Acme"\n', "4: ocpp.operator_profile: unknown operator profile 'Acme'; choose one of '(custom)'"),
    ],
)
def test_ocpp_section_errors(tmp_path, ocpp, expected):
    path = write(tmp_path, MINIMAL.replace("hardware:", "ocpp:\n" + ocpp + "hardware:"))
    # MINIMAL's identity takes lines 1-2, "ocpp:" is line 3, its first field line 4
    assert single_error(path) == f"{path}:{expected.format(dir=tmp_path)}"


OPERATORS = """\
ocpp:
  operator_profile: "Factory settings"
  security_profile: 0
  operator_profiles:
    - name: "Factory settings"
      server_vendor: "CTEK"
      url: "ws://127.0.0.1:9000/ctek"
    - name: "Second"
      server_vendor: "Other"
      server_profile: "Test"
      url: "ws://127.0.0.1:9001/other"
"""


def test_operator_profile_selects_the_url(tmp_path):
    config = load_station_config(write(tmp_path, MINIMAL + OPERATORS))
    assert config.ocpp.selected_profile.server_profile == "Production"
    assert config.ocpp.effective_endpoint == "ws://127.0.0.1:9000/ctek"


def test_operator_profile_errors(tmp_path):
    path = write(tmp_path, MINIMAL + OPERATORS.replace("security_profile: 0", "security_profile: 2"))
    assert single_error(path) == f"{path}:13: ocpp.operator_profiles[0].url: security_profile 2 needs a wss:// URL"
    path = write(tmp_path, MINIMAL + OPERATORS.replace('"Second"', '"Factory settings"'))
    assert single_error(path) == (
        f"{path}:14: ocpp.operator_profiles[1].name: duplicate or reserved profile name 'Factory settings'")
    path = write(tmp_path, MINIMAL + OPERATORS + '  endpoint: "ws://127.0.0.1:9002/ocpp"\n')
    assert single_error(path) == (
        f"{path}:18: ocpp.endpoint: the URL comes from operator profile 'Factory settings'; "
        'leave endpoint empty or select "(custom)"')


# ----------------------------------------------------------------------------- paths, binds
def test_relative_paths_resolve_against_the_config_directory(tmp_path, monkeypatch):
    etc = tmp_path / "etc" / "stationd"
    (etc / "certs").mkdir(parents=True)
    for name in ("ca.pem", "web.crt", "web.key"):
        (etc / "certs" / name).write_text("PEM\n")
    write(etc, MINIMAL + textwrap.dedent("""\
        ocpp:
          ca_file: certs/ca.pem
        webui:
          tls_cert: certs/web.crt
          tls_key: ./certs/../certs/web.key
        data_dir: ../../var/lib/stationd
        """))
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    config = load_station_config(Path("etc/stationd/stationd.yaml"))
    assert config.ocpp.ca_file == etc / "certs" / "ca.pem"
    assert config.webui.tls_cert == etc / "certs" / "web.crt"
    assert config.webui.tls_key == etc / "certs" / "web.key"
    assert config.data_dir == tmp_path / "var" / "lib" / "stationd"


def test_serial_ports_are_used_as_written(tmp_path):
    path = write(tmp_path, HW_HEAD + "      controller: {transport: serial, port: ttyS1}\n")
    assert load_station_config(path).hardware.connectors[0].controller.port == "ttyS1"


def test_parse_station_config_base_dir(tmp_path):
    config = parse_station_config(MINIMAL + "data_dir: state\n", base_dir=tmp_path)
    assert config.data_dir == tmp_path / "state"
    config = parse_station_config(MINIMAL + "data_dir: /srv/state\n", base_dir=tmp_path)
    assert config.data_dir == Path("/srv/state")


def test_check_files_false_skips_existence_checks(tmp_path):
    path = write(tmp_path, MINIMAL + "webui:\n  tls_cert: a.crt\n  tls_key: a.key\n")
    assert error_lines(path) == [f"{path}:8: webui.tls_cert: no such file: {tmp_path}/a.crt",
                                 f"{path}:9: webui.tls_key: no such file: {tmp_path}/a.key"]
    config = load_station_config(path, check_files=False)
    assert config.webui.tls_key == tmp_path / "a.key"


def test_tls_files_come_in_pairs(tmp_path):
    (tmp_path / "a.crt").write_text("PEM\n")
    path = write(tmp_path, MINIMAL + "webui:\n  bind: 127.0.0.1:8443\n  tls_cert: a.crt\n")
    assert single_error(path) == (
        f"{path}:7: webui.tls_key: give tls_cert and tls_key together (or neither, for a self-signed certificate)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8443", ("127.0.0.1", 8443)), ("[::1]:8443", ("::1", 8443)), ("localhost:0", ("localhost", 0)),
     ("192.168.32.1:443", ("192.168.32.1", 443)),  # example: the device's own bind string, parsed only
     ("0.0.0.0:502", ("0.0.0.0", 502)), ("[::]:1502", ("::", 1502)),
     ("station-1.local:80", ("station-1.local", 80))],
)
def test_parse_bind(text, expected):
    assert parse_bind(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("127.0.0.1", "must be HOST:PORT, e.g. 127.0.0.1:8443"), (":8443", "must be HOST:PORT, e.g. 127.0.0.1:8443"),
     ("::1:8443", "an IPv6 address goes in brackets, e.g. [::1]:8443"), ("[::1]8443", "must be [IPv6]:PORT, e.g. [::1]:8443"),
     ("[1.2.3.4]:80", "'1.2.3.4' is not an IPv6 address"), ("127.0.0.1:65536", "port must be a number from 0 to 65535 (got '65536')"),
     ("127.0.0.1:http", "port must be a number from 0 to 65535 (got 'http')"), ("300.1.1.1:80", "'300.1.1.1' is not a valid IPv4 address"),
     ("-bad-:80", "'-bad-' is not a valid host name or address")],
)
def test_parse_bind_refuses(text, message):
    with pytest.raises(ValueError) as caught:
        parse_bind(text)
    assert str(caught.value) == message


def test_bad_bind_in_file(tmp_path):
    path = write(tmp_path, MINIMAL + "modbus_server:\n  enabled: true\n  bind: 127.0.0.1\n")
    assert single_error(path) == f"{path}:9: modbus_server.bind: must be HOST:PORT, e.g. 127.0.0.1:8443 (got '127.0.0.1')"


def test_log_level_is_case_insensitive(tmp_path):
    assert load_station_config(write(tmp_path, MINIMAL + "log_level: DEBUG\n")).log_level == "debug"


def test_bad_log_level_is_shown_as_written(tmp_path):
    path = write(tmp_path, MINIMAL + "log_level: WARN\n")
    assert single_error(path) == f"{path}:7: log_level: must be one of 'debug', 'info', 'warning' or 'error' (got 'WARN')"


def test_null_endpoint_and_profile_list_mean_none(tmp_path):
    config = load_station_config(write(tmp_path, MINIMAL + "ocpp:\n  endpoint:\n  operator_profiles:\n"))
    assert config.ocpp.endpoint == "" and config.ocpp.operator_profiles == []


def test_recursive_alias_and_deep_nesting_are_reported(tmp_path):
    path = write(tmp_path, MINIMAL + "extra: &loop\n  - *loop\n")
    # a value reached through an alias is located at its anchor
    assert single_error(path) == f"{path}:7: extra[0]: recursive alias"
    path = write(tmp_path, "identity: " + "[" * 5000 + "]" * 5000 + "\n")
    assert single_error(path) == f"{path}: invalid YAML: nested too deeply"
