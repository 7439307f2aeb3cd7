"""stationd.transfer against real servers on 127.0.0.1: aiohttp for http(s), pyftpdlib for
ftp and explicit ftps (certificates from firmware_sim.test_pki)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import pytest
from file_servers import PASSWORD, USER, FtpFiles, HttpFiles

from firmware_sim.test_pki import create_test_pki
from stationd.transfer import TransferError, allowed, download, redact, upload

DATA = os.urandom(300_000)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return create_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def http_files():
    server = HttpFiles(files={"fw.bin": DATA})
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def https_files(pki):
    server = HttpFiles(files={"fw.bin": DATA}, ssl_context=pki.server_context)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def ftp_files(tmp_path: Path):
    server = FtpFiles(tmp_path / "ftp-root")
    (server.root / "fw.bin").write_bytes(DATA)
    yield server
    server.stop()


@pytest.fixture
def ftps_files(tmp_path: Path, pki):
    server = FtpFiles(tmp_path / "ftps-root", pki=pki)
    (server.root / "fw.bin").write_bytes(DATA)
    yield server
    server.stop()


def closed_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- downloads ------------------------------------------------------------------------------

@pytest.fixture(params=["http", "https", "ftp", "ftps"])
async def any_server(request, tmp_path: Path, pki):
    scheme = request.param
    if scheme.startswith("http"):
        server = HttpFiles(files={"fw.bin": DATA}, ssl_context=pki.server_context if scheme == "https" else None)
        await server.start()
        yield scheme, server, server.base.replace("://", f"://{USER}:{PASSWORD}@") + "/private/fw.bin"
        await server.stop()
    else:
        server = FtpFiles(tmp_path / "root", pki=pki if scheme == "ftps" else None)
        (server.root / "fw.bin").write_bytes(DATA)
        yield scheme, server, f"{server.base}/fw.bin"
        server.stop()


async def test_download_over_each_scheme_with_credentials_never_logged(any_server, tmp_path: Path, pki, caplog):
    scheme, server, url = any_server
    seen: list[tuple[int, int | None]] = []
    caplog.set_level(logging.DEBUG, logger="stationd")
    dest = await download(url, tmp_path / "out" / "fw.bin", ca_file=pki.ca_path, timeout_s=5,
                          progress=lambda got, total: seen.append((got, total)))
    await asyncio.sleep(0)  # ftp progress arrives through the event loop
    assert dest.read_bytes() == DATA
    assert not (tmp_path / "out" / "fw.bin.part").exists()
    assert seen[-1] == (len(DATA), len(DATA))
    assert PASSWORD not in caplog.text and USER not in caplog.text
    assert f"{scheme}://127.0.0.1:{server.port}/" in caplog.text  # the URL is logged without them


async def test_http_resume_after_a_cut_asks_for_the_rest(http_files: HttpFiles, tmp_path: Path):
    http_files.cut = [100_000]
    dest = tmp_path / "fw.bin"
    with pytest.raises(TransferError, match=f"cut after 100000 of {len(DATA)} bytes"):
        await download(f"{http_files.base}/files/fw.bin", dest, timeout_s=5)
    assert (tmp_path / "fw.bin.part").stat().st_size == 100_000 and not dest.exists()
    await download(f"{http_files.base}/files/fw.bin", dest, timeout_s=5)
    assert dest.read_bytes() == DATA
    assert [r.headers.get("Range") for r in http_files.requests] == [None, "bytes=100000-"]


async def test_http_resume_starts_over_when_the_server_ignores_ranges(http_files: HttpFiles, tmp_path: Path):
    http_files.cut, http_files.ranges = [50_000], False
    dest = tmp_path / "fw.bin"
    with pytest.raises(TransferError, match="cut after"):
        await download(f"{http_files.base}/files/fw.bin", dest, timeout_s=5)
    await download(f"{http_files.base}/files/fw.bin", dest, timeout_s=5)
    assert dest.read_bytes() == DATA  # the 200 answer replaced the part, nothing appended twice
    assert http_files.requests[-1].headers.get("Range") == "bytes=50000-"


async def test_no_resume_throws_the_part_away(http_files: HttpFiles, tmp_path: Path):
    (tmp_path / "fw.bin.part").write_bytes(b"garbage")
    await download(f"{http_files.base}/files/fw.bin", tmp_path / "fw.bin", resume=False, timeout_s=5)
    assert (tmp_path / "fw.bin").read_bytes() == DATA
    assert http_files.requests[0].headers.get("Range") is None


@pytest.mark.parametrize("secure", [False, True])
async def test_ftp_resume_after_a_cut_sends_rest(secure, tmp_path: Path, pki):
    server = FtpFiles(tmp_path / "root", pki=pki if secure else None)
    try:
        (server.root / "fw.bin").write_bytes(DATA)
        server.cut = [120_000]
        dest = tmp_path / "fw.bin"
        with pytest.raises(TransferError, match=f"cut after 120000 of {len(DATA)} bytes"):
            await download(f"{server.base}/fw.bin", dest, timeout_s=5, ca_file=pki.ca_path)
        await download(f"{server.base}/fw.bin", dest, timeout_s=5, ca_file=pki.ca_path)
        assert dest.read_bytes() == DATA
        assert server.commands_named("REST") == ["120000"]
        assert server.commands_named("RETR") == ["fw.bin", "fw.bin"]
        if secure:
            assert server.commands_named("AUTH") == ["TLS", "TLS"] and "P" in server.commands_named("PROT")
    finally:
        server.stop()


async def test_ftp_without_rest_starts_over(tmp_path: Path):
    server = FtpFiles(tmp_path / "root", rest=False)
    try:
        (server.root / "fw.bin").write_bytes(DATA)
        server.cut = [70_000]
        dest = tmp_path / "fw.bin"
        with pytest.raises(TransferError):
            await download(f"{server.base}/fw.bin", dest, timeout_s=5)
        await download(f"{server.base}/fw.bin", dest, timeout_s=5)
        assert dest.read_bytes() == DATA
    finally:
        server.stop()


async def test_specific_reasons(http_files: HttpFiles, https_files: HttpFiles, ftp_files: FtpFiles,
                                ftps_files: FtpFiles, tmp_path: Path, pki):
    dest = tmp_path / "x.bin"

    async def reason(url: str, **options) -> TransferError:
        with pytest.raises(TransferError) as caught:
            await download(url, dest, timeout_s=3, **options)
        return caught.value

    port = closed_port()
    assert (await reason(f"http://127.0.0.1:{port}/fw.bin")).reason == f"connection refused by 127.0.0.1:{port}"
    assert (await reason(f"ftp://127.0.0.1:{port}/fw.bin")).reason == f"connection refused by 127.0.0.1:{port}"
    assert (await reason(f"{http_files.base}/files/nothing.bin")).reason == "HTTP 404 Not Found"
    assert "refused the credentials" in (await reason(f"{http_files.base}/private/fw.bin")).reason
    problem = await reason(f"{https_files.base}/files/fw.bin")  # the system store does not know the test CA
    assert problem.reason.startswith("TLS verification of the server's certificate failed")
    problem = await reason(f"{ftps_files.base}/fw.bin")
    assert problem.reason.startswith("TLS verification of the server's certificate failed")
    problem = await reason(f"{http_files.base}/files/fw.bin", max_bytes=1000)
    assert problem.reason == f"the file is too big: {len(DATA)} bytes, at most 1000 are accepted"
    assert not problem.retry and not (tmp_path / "x.bin.part").exists()
    assert "too big" in (await reason(f"{ftp_files.base}/fw.bin", max_bytes=1000)).reason
    problem = await reason(f"ftp://{USER}:wrong-password@127.0.0.1:{ftp_files.port}/fw.bin")
    assert problem.reason.startswith("FTP login refused: 530") and "wrong-password" not in problem.reason
    assert "550" in (await reason(f"{ftp_files.base}/missing.bin")).reason
    problem = await reason("sftp://127.0.0.1/fw.bin")
    assert problem.reason.startswith("unsupported scheme 'sftp'") and not problem.retry
    assert not dest.exists()


async def test_a_silent_server_times_out(tmp_path: Path):
    async def silent(reader, writer):
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await reader.read()  # never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for scheme in ("http", "ftp"):
            with pytest.raises(TransferError, match=rf"no answer from 127.0.0.1:{port} within 0.3 s"):
                await download(f"{scheme}://127.0.0.1:{port}/fw.bin", tmp_path / "x", timeout_s=0.3)
    finally:
        server.close()


async def test_cancelling_an_ftp_transfer_releases_its_thread(tmp_path: Path):
    closed = asyncio.Event()

    async def silent(reader, writer):
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await reader.read()  # until the station's socket is shut down
            closed.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        task = asyncio.create_task(download(f"ftp://127.0.0.1:{port}/fw.bin", tmp_path / "x", timeout_s=60))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
        await asyncio.wait_for(closed.wait(), 2)  # the thread's connection is gone, not waiting 60 s
    finally:
        server.close()


# ---- uploads --------------------------------------------------------------------------------

async def test_upload_put_joins_location_and_file_name(http_files: HttpFiles, tmp_path: Path):
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(DATA[:5000])
    await upload(f"{http_files.base}/upload/", source, "SN1.tar.gz", timeout_s=5)
    await upload(f"{http_files.base}/upload", source, "SN2.tar.gz", timeout_s=5)
    assert http_files.uploads == {"SN1.tar.gz": DATA[:5000], "SN2.tar.gz": DATA[:5000]}
    assert [r.path for r in http_files.requests] == ["/upload/SN1.tar.gz", "/upload/SN2.tar.gz"]


async def test_upload_falls_back_to_a_multipart_post_on_405(http_files: HttpFiles, tmp_path: Path):
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(DATA[:7000])
    await upload(f"{http_files.base}/form/", source, "SN1.tar.gz", timeout_s=5)
    assert http_files.uploads == {"SN1.tar.gz": DATA[:7000]}
    assert [(r.method, r.path) for r in http_files.requests] == [("PUT", "/form/SN1.tar.gz"), ("POST", "/form/")]


async def test_upload_refused_raises(http_files: HttpFiles, tmp_path: Path):
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(b"x")
    with pytest.raises(TransferError, match="PUT refused: HTTP 404"):
        await upload(f"{http_files.base}/nowhere/", source, "SN1.tar.gz", timeout_s=5)
    with pytest.raises(TransferError, match="connection refused"):
        await upload(f"http://127.0.0.1:{closed_port()}/", source, "SN1.tar.gz", timeout_s=5)


@pytest.mark.parametrize("secure", [False, True])
async def test_upload_stor_into_the_location_directory(secure, tmp_path: Path, pki):
    server = FtpFiles(tmp_path / "root", pki=pki if secure else None)
    try:
        (server.root / "diag").mkdir()
        source = tmp_path / "diag.tar.gz"
        source.write_bytes(DATA)
        await upload(f"{server.base}/diag/", source, "SN1.tar.gz", timeout_s=5, ca_file=pki.ca_path)
        assert (server.root / "diag" / "SN1.tar.gz").read_bytes() == DATA
        assert server.commands_named("CWD") == ["diag/"] and server.commands_named("STOR") == ["SN1.tar.gz"]
        with pytest.raises(TransferError, match="550"):
            await upload(f"{server.base}/nowhere/", source, "SN1.tar.gz", timeout_s=5, ca_file=pki.ca_path)
    finally:
        server.stop()


# ---- helpers --------------------------------------------------------------------------------

def test_allowed_follows_supported_file_transfer_protocols():
    class Store:
        def __init__(self, value):
            self.value = value

        def get(self, name):
            assert name == "SupportedFileTransferProtocols"
            return self.value

    everything = Store(("FTP", "FTPS", "HTTP", "HTTPS"))
    assert allowed("ftp://h/f", everything) and allowed("HTTPS://h/f", everything)
    assert not allowed("sftp://h/f", everything) and not allowed("file:///etc/passwd", everything)
    assert not allowed("http://h/f", Store(("FTP",))) and allowed("ftp://h/f", Store(("FTP",)))


def test_redact_drops_credentials_and_query():
    assert redact("ftp://user:pa%40ss@host:2121/dir/f.bin") == "ftp://host:2121/dir/f.bin"
    assert redact("https://u:p@h/f?token=abc") == "https://h/f?…"
    assert redact("gopher://u:p@h/f") == "gopher://h/f"
