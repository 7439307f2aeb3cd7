"""Logging: one line per event, journald priorities, LogLevel* keys, secrets never written."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from conftest import dry_run_station

from stationd import cli, logs
from stationd.config.station_file import load_station_config
from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.daemon import Daemon
from stationd.sdnotify import SystemdNotifier

SECRET = "correct horse battery"
SECRET_HEX = SECRET.encode().hex()
LEVEL_LOGGERS = [logs.ROOT] + [name for name, _ in logs.LEVEL_KEYS.values()]


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    """Restore the stationd loggers and the registered secret sources after each test."""
    root = logging.getLogger(logs.ROOT)
    handlers, propagate = list(root.handlers), root.propagate
    levels = {name: logging.getLogger(name).level for name in LEVEL_LOGGERS}
    sources = list(logs._secret_sources)
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.propagate = propagate
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logs._secret_sources[:] = sources


@pytest.fixture
def journal() -> io.StringIO:
    stream = io.StringIO()
    logs.configure(stream, journal=True)
    return stream


@pytest.fixture
def terminal() -> io.StringIO:
    stream = io.StringIO()
    logs.configure(stream, journal=False)
    return stream


@pytest.fixture
def secret() -> Iterator[str]:
    remove = logs.add_secret_source(lambda: [SECRET])
    yield SECRET
    remove()


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


log = logging.getLogger("stationd.test")


# ----------------------------------------------------------------------------- secrets
def test_secret_in_the_message_is_redacted(journal, secret):
    log.info(f"connecting with password {secret} now")
    assert lines(journal) == ["<6>stationd.test: connecting with password *** now"]


@pytest.mark.parametrize("with_known_secrets", [False, True])
def test_the_password_of_a_url_is_redacted(journal, with_known_secrets):
    remove = logs.add_secret_source(lambda: ["unrelated-secret"] if with_known_secrets else [])
    try:
        log.debug("never shown")
        log.warning("UpdateFirmware from %s", "ftp://fw:Sup3r-pass@127.0.0.1:2121/pkg.tar")
        log.warning('frame [2,"1","GetDiagnostics",{"location":"https://u:p%40ss@127.0.0.1/up"}]')
    finally:
        remove()
    assert lines(journal) == [
        "<4>stationd.test: UpdateFirmware from ftp://fw:***@127.0.0.1:2121/pkg.tar",
        '<4>stationd.test: frame [2,"1","GetDiagnostics",{"location":"https://u:***@127.0.0.1/up"}]',
    ]


def test_secret_in_args_is_redacted(journal, secret):
    log.info("connecting with password %s (attempt %d)", secret, 3)
    log.warning("key=%r", secret)
    assert lines(journal) == [
        "<6>stationd.test: connecting with password *** (attempt 3)",
        "<4>stationd.test: key='***'",
    ]


def test_secret_in_extra_fields_is_redacted(journal, secret):
    log.info("backend login", extra={"fields": {"user": "TE-DEV000001", "password": secret, "connector": 1}})
    [line] = lines(journal)
    assert SECRET not in line
    assert line == '<6>stationd.test: backend login user=TE-DEV000001 password=*** connector=1'


def test_secret_inside_a_non_text_field_value_is_redacted(journal, secret):
    """A field value is written as str(value): bytes, lists or objects may carry the secret too."""

    class Credentials:
        def __str__(self) -> str:
            return f"TE-DEV000001:{SECRET}"

    log.info("login", extra={"fields": {"raw": SECRET.encode(), "tried": [SECRET], "creds": Credentials(),
                                        "connector": 2}})
    [line] = lines(journal)
    assert SECRET not in line
    assert "connector=2" in line
    assert "creds=TE-DEV000001:***" in line


def test_secret_in_an_exception_withholds_the_details(journal, secret):
    try:
        raise PermissionError(f"backend refused password {SECRET}")
    except PermissionError:
        log.exception("login failed")
    [line] = lines(journal)
    assert SECRET not in line
    assert line.startswith("<3>stationd.test: login failed")
    assert "PermissionError, details withheld" in line
    assert "Traceback" not in line


def test_secret_in_a_chained_exception_withholds_the_details(journal, secret):
    try:
        try:
            raise ValueError(SECRET)
        except ValueError as inner:
            raise RuntimeError("handshake failed") from inner
    except RuntimeError as exc:
        log.error("connection lost", exc_info=exc)
    [line] = lines(journal)
    assert SECRET not in line
    assert "RuntimeError, details withheld" in line


def test_an_exception_without_secrets_keeps_its_traceback_on_one_line(journal, secret):
    try:
        raise TimeoutError("no answer from 127.0.0.1:9000")
    except TimeoutError:
        log.exception("heartbeat failed")
    [line] = lines(journal)
    assert line.startswith("<3>stationd.test: heartbeat failed | Traceback (most recent call last):")
    assert "TimeoutError: no answer from 127.0.0.1:9000" in line
    assert " | " in line


def test_a_broken_log_call_neither_raises_nor_leaks(journal, secret, capsys):
    log.info("two placeholders %s %s, one argument", secret)  # a bug in a caller
    log.info("next line")
    out = journal.getvalue() + capsys.readouterr().err
    assert SECRET not in out
    first, second = lines(journal)
    assert first.startswith("<6>stationd.test: two placeholders %s %s, one argument (bad log call")
    assert second == "<6>stationd.test: next line"


def test_secret_sources_are_read_at_each_log_call_and_can_be_removed(journal):
    current: list[str] = []
    remove = logs.add_secret_source(lambda: current)
    log.info("key is %s", "hunter2-longer")
    current.append("hunter2-longer")
    log.info("key is %s", "hunter2-longer")
    remove()
    remove()  # removing twice is harmless
    log.info("key is %s", "hunter2-longer")
    assert lines(journal) == [
        "<6>stationd.test: key is hunter2-longer",
        "<6>stationd.test: key is ***",
        "<6>stationd.test: key is hunter2-longer",
    ]


def test_a_secret_is_redacted_in_every_handler_of_the_tree(journal, secret):
    """The filter works on the record, so a second handler cannot see the secret either."""
    raw = io.StringIO()
    second = logging.StreamHandler(raw)
    second.setFormatter(logs.LineFormatter(journal=True))
    logging.getLogger(logs.ROOT).addHandler(second)
    log.info("password %s", SECRET)
    assert SECRET not in raw.getvalue() and "***" in raw.getvalue()


# ----------------------------------------------------------------------------- formats
def test_journal_format_has_priority_prefix_and_no_timestamp(journal):
    logging.getLogger(logs.ROOT).setLevel(logging.DEBUG)
    log.debug("d")
    log.info("station up")
    log.warning("meter 2 slow")
    log.error("e")
    log.critical("c")
    assert lines(journal) == [
        "<7>stationd.test: d",
        "<6>stationd.test: station up",
        "<4>stationd.test: meter 2 slow",
        "<3>stationd.test: e",
        "<2>stationd.test: c",
    ]
    assert not re.search(r"\d{4}-\d\d-\d\d", journal.getvalue())


def test_terminal_format_starts_with_an_iso_utc_timestamp(terminal):
    log.info("station up", extra={"fields": {"connector": 1, "id_tag": "aec 78085", "empty": ""}})
    [line] = lines(terminal)
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z INFO stationd\.test: (.*)", line)
    assert match, line
    stamp = datetime.fromisoformat(match[1]).replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - stamp) < timedelta(minutes=1)
    assert match[2] == 'station up connector=1 id_tag="aec 78085" empty=""'


def test_configure_picks_the_format_from_journal_stream(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    logs.configure(stream)
    log.warning("under systemd")
    monkeypatch.delenv("JOURNAL_STREAM")
    logs.configure(stream)
    log.warning("on a terminal")
    first, second = lines(stream)
    assert first == "<4>stationd.test: under systemd"
    assert re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z WARNING stationd\.test: on a terminal$", second)


def test_configure_installs_exactly_one_handler():
    stream = io.StringIO()
    logs.configure(io.StringIO(), journal=True)
    handler = logs.configure(stream, journal=True)
    root = logging.getLogger(logs.ROOT)
    assert root.handlers == [handler]
    assert root.propagate is False
    log.info("once")
    assert lines(stream) == ["<6>stationd.test: once"]


def test_multi_line_messages_become_one_line(journal):
    log.warning("first line\nsecond line\n", extra={"fields": {"detail": "a\nb"}})
    log.info("%s", "args\ntoo")
    assert lines(journal) == [
        '<4>stationd.test: first line second line  detail="a b"',
        "<6>stationd.test: args too",
    ]


# ----------------------------------------------------------------------------- LogLevel* keys
@pytest.mark.parametrize(("value", "level"), [(0, logging.WARNING), (1, logging.INFO), (2, logging.DEBUG),
                                              (7, logging.DEBUG), (-1, logging.WARNING)])
def test_log_level_app_service_sets_the_stationd_logger(value, level):
    logs.apply_level_key("LogLevelAppService", value)
    assert logging.getLogger("stationd").level == level


@pytest.mark.parametrize(("key", "logger"), [("LogLevelAuth", "stationd.auth"), ("LogLevelCan", "stationd.hw.can")])
def test_log_level_auth_and_can_set_their_loggers(key, logger):
    logs.apply_level_key(key, 0)
    assert logging.getLogger(logger).level == logging.WARNING
    logs.apply_level_key(key, 1)
    assert logging.getLogger(logger).level == logging.INFO
    logs.apply_level_key(key, 3)
    assert logging.getLogger(logger).level == logging.DEBUG


def test_log_level_keys_decide_what_is_written(journal):
    logs.apply_level_key("LogLevelAppService", 0)
    logs.apply_level_key("LogLevelAuth", 2)
    log.info("dropped")
    log.warning("kept")
    logging.getLogger("stationd.auth").debug("auth detail")
    assert lines(journal) == ["<4>stationd.test: kept", "<7>stationd.auth: auth detail"]


def test_unknown_log_level_key_is_an_error():
    with pytest.raises(KeyError):
        logs.apply_level_key("LogLevelFoo", 1)


# ----------------------------------------------------------------------------- end to end
def test_authorization_key_from_the_store_never_appears_in_a_log_line(tmp_path, journal):
    store = ConfigStore.open(tmp_path)
    assert store.set("AuthorizationKey", SECRET, Source.LOCAL).ok
    logs.add_secret_source(store.secret_values)
    assert SECRET in store.secret_values() and SECRET_HEX in store.secret_values()
    log.info("basic auth password %s, as hex %s", SECRET, SECRET_HEX, extra={"fields": {"key": SECRET_HEX}})
    log.info(f"as a backend sends it: {SECRET_HEX.upper()}")
    out = journal.getvalue()
    assert SECRET not in out
    assert SECRET_HEX not in out.lower()
    assert out.count("***") == 4


async def test_daemon_logs_the_authorization_key_change_without_its_value(tmp_path, terminal):
    raw: list[logging.LogRecord] = []

    class Raw(logging.Handler):  # sees each record before the SecretFilter rewrites it
        def emit(self, record: logging.LogRecord) -> None:
            raw.append(record)

    root = logging.getLogger(logs.ROOT)
    root.handlers.insert(0, Raw())
    raw_messages = lambda: [r.getMessage() for r in raw]  # noqa: E731
    config = load_station_config(dry_run_station(tmp_path))
    daemon = Daemon(config, notifier=SystemdNotifier.from_env({}))
    task = asyncio.create_task(daemon.run())
    async with asyncio.timeout(5):
        while not any("stationd ready" in m for m in raw_messages()):
            await asyncio.sleep(0.01)
    # a technician changes the key with the CLI while the daemon runs
    assert cli.main(["config", "set", "--data-dir", str(config.data_dir), "AuthorizationKey", SECRET]) == 0

    def changes() -> list[str]:
        return [m for m in raw_messages() if "configuration key AuthorizationKey changed" in m]

    async with asyncio.timeout(5):  # the CLI's own line, then the daemon's (it re-reads every second)
        while len(changes()) < 2:
            await asyncio.sleep(0.02)
    log.info("the daemon now redacts %s and %s", SECRET, SECRET_HEX)
    daemon.request_stop("test")
    assert await asyncio.wait_for(task, 5) == 0

    assert changes()[-1] == "configuration key AuthorizationKey changed (by local)"
    for message in raw_messages():  # as the code wrote them, before any redaction
        if not message.startswith("the daemon now redacts"):
            assert SECRET not in message and SECRET_HEX not in message, message
    written = terminal.getvalue()
    assert "configuration key AuthorizationKey changed" in written
    assert "the daemon now redacts *** and ***" in written
    assert SECRET not in written and SECRET_HEX not in written
