"""The security category's short run against the real daemon (``stationd demo`` on a profile 2
TLS central system on 127.0.0.1): the TLS matrix refused, no secret anywhere, the WebUI refusing
what it must, upload bombs refused with bounded memory, Modbus writes out of range refused."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from reliability.security import run
from reliability.security_webui import longname_bomb
from stationd.firmware.package import UNSAFE, PackageError, verify_package


@pytest.fixture(scope="module")
def tally():
    return run(False)


@pytest.mark.slow
def test_every_case_is_refused_and_no_secret_is_found(tally):
    assert tally.failures == []
    assert tally.passed and tally.lost == 0
    assert tally.tried > 300  # routes, CSRF, secret places, Modbus values: every one counted


@pytest.mark.slow
def test_the_tls_matrix_is_refused_and_logged_and_the_station_comes_back(tally):
    notes = "\n".join(tally.notes)
    for case, reason in (("untrusted CA", "self-signed certificate in certificate chain"),
                         ("expired certificate", "certificate has expired"),
                         ("wrong host name", "mismatch"),
                         ("TLS 1.1 only (a permissive client got TLSv1.1)", "tls version refused"),
                         ("TLS 1.0 only (a permissive client got TLSv1)", "tls version refused")):
        line = next(n for n in tally.notes if n.startswith(f"TLS {case}"))
        assert "refused" in line and reason in line
    assert "SecurityProfile downgrade by ChangeConfiguration to 1, 0, 3: all Rejected" in notes
    assert "back on the good backend with SecurityProfile 2" in notes


@pytest.mark.slow
def test_secrets_scan_webui_and_modbus_ran_their_cases(tally):
    notes = "\n".join(tally.notes)
    assert "none found" in notes and "diagnostics archive members" in notes
    assert "routes of the router refused without a session" in notes
    assert "CSRF (missing, wrong) and a foreign Origin refused" in notes
    bombs = [n for n in tally.notes if n.startswith("upload bomb ")]
    assert len(bombs) >= 9 and all("HTTP 4" in n for n in bombs)
    assert "Modbus:" in notes and "changed nothing" in notes


def test_a_package_with_a_huge_long_name_header_is_refused_before_it_is_read(tmp_path: Path):
    package = tmp_path / "bomb.tar"
    with package.open("wb") as out:
        for chunk in longname_bomb(8 * 1024 * 1024):
            out.write(chunk)
    with pytest.raises(PackageError) as refused:
        verify_package(package, expected_model="any")
    assert refused.value.kind == UNSAFE and "extended tar header" in refused.value.message
    pax = tmp_path / "pax.tar"
    with pax.open("wb") as out:
        for chunk in longname_bomb(1024 * 1024, tarfile.XHDTYPE):
            out.write(chunk)
    with pytest.raises(PackageError, match="extended tar header"):
        verify_package(pax, expected_model="any")
