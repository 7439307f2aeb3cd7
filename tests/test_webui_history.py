"""History and Diagnostics pages over real HTTPS against a running station: the session history
(filter, pages, CSV export without a row cap), the meter charts' samples, the OCPP log (Expert
only, secrets masked) and the outbox's dead letters."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from test_ocpp_client import until
from webui_helpers import WebClient, webui_station

from firmware_sim.central_system import CallError
from stationd.config.value_types import Source
from stationd.webui.session_history import PAGE_SIZE

BOX = "TE-IT0001"
KEY_HEX = "Sesame-Open-Up-1234".encode().hex()  # a valid AuthorizationKey, as hex


async def expert(client: WebClient) -> None:
    await client.get("/profile")
    status, _ = await client.post("/profile", {"level": "Expert", "language": "en"})
    assert status == 200


def old_sessions(station, count: int) -> None:
    """``count`` finished sessions, one a day back from yesterday, alternating connectors."""
    sessions = station.station.core.sessions
    start = datetime.now(timezone.utc).replace(hour=10, minute=0, second=0, microsecond=0)
    for i in range(count):
        begin = start - timedelta(days=i + 1)
        tag = "=HYPERLINK(1)" if i == 0 else f"TAG{i % 3}"
        session = sessions.start(1 + i % 2, tag, begin, 1000.0 * i)
        sessions.stop(session, begin + timedelta(minutes=90), 1000.0 * i + 7500, "EVDisconnected")


async def test_session_history_filters_pages_and_exports_everything(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, cs):
        async with WebClient(base, ca) as client:
            old_sessions(station, 2 * PAGE_SIZE + 10)
            assert station.store.set("CsMode", "1", Source.LOCAL).ok  # free charging: plugging in starts
            station.world.plug(1)
            station.world.charge(1)
            # (the old sessions' own Start/StopTransactions go out first: wait for this one's session)
            await until(lambda: station.station.core.connectors[1].session is not None, 15)
            live = station.station.core.connectors[1].session
            await until(lambda: station.station.ocpp.outbox.transaction_id(live.session_id) is not None, 15)
            tid = station.station.ocpp.outbox.transaction_id(live.session_id)
            await client.login_and_set_password()

            status, text = await client.get("/sessions")
            assert status == 200 and f"{2 * PAGE_SIZE + 11} sessions" in text
            first = text.split('data-session="', 2)[1].split('"')[0]
            assert first == str(live.session_id)  # newest first: the one charging now
            row = text.split(f'data-session="{live.session_id}"')[1].split("</tr>")[0]
            assert f"<td>{tid}</td>" in row and "charging" in row and "anonymous" in row
            assert "Page 1 of 3" in text and 'rel="next"' in text
            status, text = await client.get("/sessions?page=3")
            assert text.count("data-session=") == 11 and 'rel="prev"' in text

            status, text = await client.get("/sessions?connector=2&idtag=TAG1")
            rows = text.count("data-session=")
            assert status == 200 and rows > 0 and "RFID" in text
            assert all(f"<td>{c}</td>" not in text for c in ("TAG0", "TAG2"))
            yesterday = date.today() - timedelta(days=1)
            status, text = await client.get(f"/sessions?from={yesterday}&to={yesterday}")
            assert text.count("data-session=") == 1 and "1:30:00" in text and "7.500" in text

            status, text = await client.get("/sessions?from=2026-13-01&to=yesterday&connector=9")
            assert status == 400 and text.count('aria-invalid="true"') == 3
            assert "YYYY-MM-DD" in text and "No such connector." in text

            async with client.http.get(base + "/sessions/export.csv") as response:
                assert response.status == 200 and response.content_type == "text/csv"
                disposition = response.headers["Content-Disposition"]
                assert f"sessions-IT0001-{datetime.now(timezone.utc):%Y%m%d}.csv" in disposition
                body = await response.text()
            table = list(csv.DictReader(io.StringIO(body)))
            assert len(table) == 2 * PAGE_SIZE + 11  # no row cap, unlike a page
            assert table[0]["session_id"] == str(live.session_id) and table[0]["transaction_id"] == str(tid)
            assert table[0]["authentication"] == "anonymous" and table[0]["end"] == ""
            formula = next(r for r in table if "HYPERLINK" in r["id_tag"])
            assert formula["id_tag"] == "'=HYPERLINK(1)" and formula["energy_kwh"] == "7.500"
            assert formula["duration_s"] == "5400" and formula["stop_reason"] == "EVDisconnected"

            async with client.http.get(base + "/sessions/export.csv?connector=2&idtag=TAG1") as response:
                filtered = list(csv.DictReader(io.StringIO(await response.text())))
            assert len(filtered) == rows and {r["connector"] for r in filtered} == {"2"}
            async with client.http.get(base + "/sessions/export.csv?from=nonsense") as response:
                assert response.status == 400


async def test_charts_keep_the_meter_samples_of_each_connector(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        async with WebClient(base, ca) as client:
            await client.login_and_set_password()
            assert station.store.set("CsMode", "1", Source.LOCAL).ok
            station.world.plug(1)
            station.world.charge(1)

            async def charts() -> dict:
                status, text = await client.get("/api/charts")
                assert status == 200
                return json.loads(text)

            for _ in range(300):  # the sim meter samples once a second
                data = await charts()
                points = data["connectors"][0]["points"]
                if any(power > 1000 for _, power, _ in points):
                    break
                await asyncio.sleep(0.1)
            assert [c["id"] for c in data["connectors"]] == [1, 2] and data["windowS"] == 3600
            assert any(power > 1000 for _, power, _ in points)
            times = [t for t, _, _ in points]
            assert times == sorted(times)
            status, text = await client.get("/charts")
            assert status == 200 and 'src="/static/charts.js"' in text and 'data-connector="2"' in text
            status, _ = await client.get("/static/charts.js")
            assert status == 200


async def test_ocpp_log_is_for_experts_and_masks_the_authorization_key(tmp_path: Path):
    async with webui_station(tmp_path) as (_station, base, ca, cs):
        async with WebClient(base, ca) as client:
            await client.login_and_set_password()
            for path in ("/ocpp/log", "/ocpp/dead-letters"):
                status, text = await client.get(path)
                assert status == 403 and "Expert user level" in text
            status, _ = await client.get("/api/ocpp/log")
            assert status == 403
            await cs.wait_connected(BOX, 15)
            await cs.call(BOX, "ChangeConfiguration", {"key": "AuthorizationKey", "value": KEY_HEX})
            await expert(client)

            status, text = await client.get("/api/ocpp/log?action=ChangeConfiguration")
            frames = json.loads(text)["frames"]
            assert status == 200 and {f["direction"] for f in frames} == {"in", "out"}
            assert {f["type"] for f in frames} == {"CALL", "CALLRESULT"}
            assert all(f["action"] == "ChangeConfiguration" for f in frames)
            assert "AuthorizationKey" in frames[-1]["frame"]  # the CALL (oldest of the two)
            status, everything = await client.get("/api/ocpp/log?n=500")
            assert "BootNotification" in everything
            for body in (text, everything, (await client.get("/ocpp/log"))[1]):
                assert KEY_HEX not in body and KEY_HEX.upper() not in body and "Sesame" not in body
            status, page = await client.get("/ocpp/log?action=BootNotification&n=5")
            assert status == 200 and "BootNotification" in page and "ChangeConfiguration</td>" not in page
            assert 'data-live="/api/ocpp/log?action=BootNotification&amp;n=5"' in page


async def test_dead_letters_show_what_the_backend_refused(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, cs):
        async with WebClient(base, ca) as client:
            assert station.store.set("TransactionMessageAttempts", "1", Source.LOCAL).ok
            assert station.store.set("CsMode", "1", Source.LOCAL).ok
            cs.respond("StartTransaction", CallError("InternalError", "backend database down"))
            station.world.plug(1)
            await until(lambda: station.station.ocpp.outbox.counts()["dead_letters"] >= 1, 20)
            await client.login_and_set_password()
            await expert(client)
            status, text = await client.get("/ocpp/dead-letters")
            assert status == 200 and "StartTransaction" in text and "Dead letters: 0" not in text
            row = text.split('data-letter="')[1].split("</tr>")[0]
            assert "InternalError" in row and "backend database down" in row and "<td>1</td>" in row

            outbox = station.station.ocpp.outbox
            start_letter = next(d for d in outbox.dead_letters() if d.action == "StartTransaction")
            status, text = await client.post("/ocpp/dead-letters", {"operation": "requeue"})
            assert status == 200 and "Tick the messages first." in text and outbox.dead_letters()
            status, _ = await client.post("/ocpp/dead-letters", {"operation": "requeue", "letter": "1"}, csrf=False)
            assert status == 403 and outbox.dead_letters()  # CSRF: nothing changed
            cs.respond("StartTransaction")  # the backend was fixed: the default answer again
            status, text = await client.post("/ocpp/dead-letters",
                                             {"operation": "requeue", "letter": str(start_letter.id)})
            assert status == 200 and "Queued again:" in text
            await cs.wait_for("StartTransaction", timeout=15)
            await until(lambda: outbox.transaction_id(station.station.core.connectors[1].session.session_id)
                        is not None, 15)
            assert all(d.id != start_letter.id for d in outbox.dead_letters())

            cs.respond("StopTransaction", CallError("InternalError", "still down"))
            station.world.unplug(1)
            await until(lambda: any(d.action == "StopTransaction" for d in outbox.dead_letters()), 20)
            stop_letter = next(d for d in outbox.dead_letters() if d.action == "StopTransaction")
            status, text = await client.get("/ocpp/dead-letters")
            assert 'data-confirm="Delete the ticked messages for good?' in text
            status, text = await client.post("/ocpp/dead-letters",
                                             {"operation": "discard", "letter": str(stop_letter.id)})
            assert status == 200 and "Discarded: 1 message(s)." in text
            assert all(d.id != stop_letter.id for d in outbox.dead_letters())


def test_meter_history_is_bounded_in_time_and_points():
    from types import SimpleNamespace

    from stationd.core.events import EventBus, MeterSampled
    from stationd.webui.meter_history import MeterHistory

    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    bus = EventBus()
    history = MeterHistory(window_s=60, max_points=50, clock=lambda: now[0]).attach(bus)

    def sample(connector: int, power: float) -> None:
        bus.publish(MeterSampled(connector, SimpleNamespace(timestamp=now[0], power_w=power,
                                                            energy_import_wh=power / 10)))

    for second in range(100):
        now[0] = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=second)
        sample(1, 1000.0 + second)
    points = history.points(1)
    assert len(points) == 50 and points[-1][1] == 1099.0 and points[0][1] == 1050.0  # the newest 50
    now[0] += timedelta(seconds=30)
    assert [p[1] for p in history.points(1)] == [1000.0 + s for s in range(69, 100)]  # the last 60 s only
    assert history.points(2) == [] and history.as_json([1, 2])["connectors"][1] == {"id": 2, "points": []}
    history.detach()
    sample(2, 5.0)
    assert history.points(2) == []
