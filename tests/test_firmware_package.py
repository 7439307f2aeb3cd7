"""Firmware update packages (docs/firmware-package.md): build, verify, extract, and the CLI."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stationd.cli import main
from stationd.firmware import (
    Limits,
    PackageBuildError,
    PackageError,
    build_package,
    extract_payloads,
    read_manifest,
    verify_package,
)

MODEL = "stationd AC22"
CREATED = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
def payloads(tmp_path: Path) -> list[Path]:
    source = tmp_path / "src"
    source.mkdir()
    rootfs = source / "rootfs.img"
    rootfs.write_bytes(bytes(range(256)) * 9000 + b"tail")  # > 2 MiB: several hashing chunks
    controller = source / "controller-AC22.bin"
    controller.write_bytes(b"\x7fcontroller image")
    return [rootfs, controller]


@pytest.fixture
def package(tmp_path: Path, payloads: list[Path]) -> Path:
    output = tmp_path / "update.tar"
    build_package(MODEL, "1.2.0", payloads, output, created=CREATED)
    return output


def refused(kind: str, path: Path, model: str = MODEL, **options) -> PackageError:
    with pytest.raises(PackageError) as caught:
        verify_package(path, expected_model=model, **options)
    assert caught.value.kind == kind, caught.value
    return caught.value


# ----------------------------------------------------------------- hand-made archives
def manifest_json(files: list[tuple[str, bytes]], **changes) -> bytes:
    manifest = {"format": "stationd-firmware", "format_version": 1, "model": MODEL, "version": "2.0",
                "created": "2025-01-31T12:00:00Z",
                "payloads": [{"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                             for name, data in files]}
    manifest.update(changes)
    return json.dumps(manifest).encode()


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def hand_made(path: Path, members, *, manifest: bytes | None = None, digest: str | None = None,
              head: bool = True, fmt: int = tarfile.PAX_FORMAT) -> Path:
    """A tar archive: manifest.json + its checksum (unless head=False), then ``members``."""
    entries = []
    if head:
        manifest = manifest if manifest is not None else manifest_json(
            [(info.name, data) for info, data in members if data is not None])
        digest = digest or hashlib.sha256(manifest).hexdigest()
        entries += [regular("manifest.json", manifest),
                    regular("manifest.json.sha256", f"{digest}  manifest.json\n".encode())]
    with tarfile.open(path, "w", format=fmt) as archive:
        for info, data in entries + list(members):
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


# ----------------------------------------------------------------------------- round trip
def test_round_trip_build_verify_extract(tmp_path, payloads, package):
    manifest = read_manifest(package)
    assert (manifest.model, manifest.version, manifest.created) == (MODEL, "1.2.0", "2025-01-31T12:00:00Z")
    assert [(p.name, p.size, p.kind) for p in manifest.payloads] == [
        ("rootfs.img", payloads[0].stat().st_size, "system"), ("controller-AC22.bin", 17, "controller")]
    assert manifest.payloads[0].sha256 == hashlib.sha256(payloads[0].read_bytes()).hexdigest()
    with tarfile.open(package) as archive:  # the documented layout, readable by any tar tool
        assert archive.getnames() == ["manifest.json", "manifest.json.sha256", "rootfs.img", "controller-AC22.bin"]
    verified = verify_package(package, expected_model="STATIONd ac22")  # CiString: case-insensitive
    assert verified.manifest == manifest
    out = extract_payloads(verified, tmp_path / "out" / "new")
    assert [p.name for p in out] == ["rootfs.img", "controller-AC22.bin"]
    for extracted, original in zip(out, payloads):
        assert extracted.read_bytes() == original.read_bytes()
    assert sorted(p.name for p in (tmp_path / "out" / "new").iterdir()) == ["controller-AC22.bin", "rootfs.img"]


def test_same_input_same_package(tmp_path, payloads, package):
    again = tmp_path / "again.tar"
    build_package(MODEL, "1.2.0", payloads, again, created=CREATED)
    assert again.read_bytes() == package.read_bytes()


def test_a_package_an_outside_tool_made_is_accepted(tmp_path):
    """GNU tar format, `sha256sum` output as the checksum member, extra manifest fields."""
    data = b"os image"
    manifest = manifest_json([("os.img", data)], builder="yocto")
    path = hand_made(tmp_path / "outside.tar", [regular("os.img", data)], manifest=manifest,
                     fmt=tarfile.GNU_FORMAT)
    assert verify_package(path, expected_model=MODEL).manifest.version == "2.0"


# ------------------------------------------------------------------------------ refusals
def test_wrong_model(package):
    problem = refused("wrong_model", package, model="stationd DC50")
    assert "'stationd AC22'" in str(problem) and "'stationd DC50'" in str(problem)
    refused("wrong_model", package, model="stationd AC22 ")  # exact apart from case


def test_truncated_anywhere_is_corrupted(tmp_path, package):
    verified = verify_package(package, expected_model=MODEL)
    data = package.read_bytes()
    last = verified.manifest.payloads[-1]
    end_of_data = verified.offsets[-1] + last.size
    end_marker = verified.offsets[-1] + -(-last.size // 512) * 512
    cuts = [0, 10, 511, 512 + 50, 1024 + 10, verified.offsets[0] + 1000, verified.offsets[0] + 2_000_000,
            verified.offsets[1] - 512, end_of_data, end_marker, end_marker + 512]
    for cut in cuts:
        cut_file = tmp_path / f"cut-{cut}.tar"
        cut_file.write_bytes(data[:cut])
        refused("corrupted", cut_file)


def test_a_flipped_byte_in_a_payload(tmp_path, package):
    verified = verify_package(package, expected_model=MODEL)
    data = bytearray(package.read_bytes())
    data[verified.offsets[0] + 123_456] ^= 0x01
    package.write_bytes(bytes(data))
    assert "SHA-256" in str(refused("corrupted", package))


def test_a_flipped_byte_in_the_manifest(package):
    data = bytearray(package.read_bytes())
    where = data.index(b'"1.2.0"')
    data[where + 1:where + 6] = b"1.3.0"
    package.write_bytes(bytes(data))
    assert "checksum" in str(refused("corrupted", package))
    with pytest.raises(PackageError):
        read_manifest(package)


def test_manifest_hash_mismatch(tmp_path):
    data = b"payload"
    path = hand_made(tmp_path / "p.tar", [regular("os.img", data)], digest="0" * 64)
    assert "does not match its checksum" in str(refused("corrupted", path))


def test_payload_hash_in_the_manifest_does_not_match(tmp_path):
    manifest = manifest_json([("os.img", b"other bytes")])
    path = hand_made(tmp_path / "p.tar", [regular("os.img", b"right bytes")], manifest=manifest)
    refused("corrupted", path)


@pytest.mark.parametrize("manifest", [
    b"not json", b"[]", b'{"format": "stationd-firmware"}',
    manifest_json([("os.img", b"x")], format_version=2),
    manifest_json([("os.img", b"x")], model=""),
    manifest_json([("os.img", b"x")], version="a/b"),
    manifest_json([("os.img", b"x")], created="yesterday"),
    manifest_json([("os.img", b"x")], payloads=[{"name": "os.img", "size": "1", "sha256": "0" * 64}]),
], ids=["text", "list", "fields", "format2", "model", "version", "created", "size-type"])
def test_invalid_manifests_are_corrupted(tmp_path, manifest):
    refused("corrupted", hand_made(tmp_path / "p.tar", [regular("os.img", b"x")], manifest=manifest))


@pytest.mark.parametrize("member", [
    regular("../x", b"x"),
    regular("/etc/passwd", b"x"),
    regular("sub/os.img", b"x"),
    special("link", tarfile.SYMTYPE, "/etc/shadow"),
    special("hard", tarfile.LNKTYPE, "manifest.json"),
    special("dev", tarfile.CHRTYPE),
    special("blk", tarfile.BLKTYPE),
    special("fifo", tarfile.FIFOTYPE),
    special("dir", tarfile.DIRTYPE),
], ids=["dotdot", "absolute", "subdir", "symlink", "hardlink", "chardev", "blockdev", "fifo", "directory"])
def test_unsafe_members(tmp_path, member):
    ok = regular("os.img", b"x")
    listed = manifest_json([("os.img", b"x")])
    after = hand_made(tmp_path / "after.tar", [ok, member], manifest=listed)
    refused("unsafe", after)
    first = hand_made(tmp_path / "first.tar", [member], head=False)
    refused("unsafe", first)


def test_an_unlisted_member_is_unsafe(tmp_path):
    listed = manifest_json([("os.img", b"x")])
    refused("unsafe", hand_made(tmp_path / "p.tar", [regular("os.img", b"x"), regular("extra.sh", b"rm")],
                                manifest=listed))


def test_oversized_declared_sizes(tmp_path):
    huge = manifest_json([], payloads=[{"name": "os.img", "size": 2**40, "sha256": "0" * 64}])
    path = hand_made(tmp_path / "huge.tar", [regular("os.img", b"x")], manifest=huge)
    assert "os.img" in str(refused("too_large", path))
    small = hand_made(tmp_path / "small.tar", [regular("os.img", b"0123456789A")])
    refused("too_large", small, limits=Limits(max_payload_size=10))
    refused("too_large", small, limits=Limits(max_payloads=0))
    refused("too_large", small, limits=Limits(max_manifest_size=50))
    refused("too_large", small, limits=Limits(max_package_size=1000))


def test_no_payloads_is_refused(tmp_path):
    with pytest.raises(PackageBuildError, match="no payloads"):
        build_package(MODEL, "1.0", [], tmp_path / "empty.tar")
    assert not (tmp_path / "empty.tar").exists()
    path = hand_made(tmp_path / "empty.tar", [], manifest=manifest_json([]))
    assert "no payloads" in str(refused("corrupted", path))


def test_not_a_package(tmp_path, package):
    gz = tmp_path / "update.tar.gz"
    gz.write_bytes(gzip.compress(package.read_bytes()))
    assert "gzip" in str(refused("corrupted", gz))
    refused("corrupted", tmp_path / "missing.tar")
    (tmp_path / "plain.tar").write_bytes(b"hello" * 300)
    refused("corrupted", tmp_path / "plain.tar")


def test_extract_rechecks_hashes_and_leaves_nothing(tmp_path, package):
    verified = verify_package(package, expected_model=MODEL)
    data = bytearray(package.read_bytes())
    data[verified.offsets[1] + 3] ^= 0xFF  # changed after verification
    package.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with pytest.raises(PackageError) as caught:
        extract_payloads(verified, dest)
    assert caught.value.kind == "corrupted"
    assert list(dest.iterdir()) == []


# ---------------------------------------------------------------------------------- build
@pytest.mark.parametrize("model, version, match", [
    ("", "1.0", "model must not be empty"), ("x" * 21, "1.0", "1 to 20"), ("AC\u00e922", "1.0", "ASCII"),
    (MODEL, "", "version must not be empty"), (MODEL, "1/2", "'/'"), (MODEL, "v" * 51, "1 to 50"),
    (MODEL, " 1.0", "blank"),
])
def test_build_validates_model_and_version(tmp_path, payloads, model, version, match):
    with pytest.raises(PackageBuildError, match=match):
        build_package(model, version, payloads, tmp_path / "out.tar")


def test_build_refuses_bad_payloads_and_keeps_the_old_output(tmp_path, payloads, package):
    before = package.read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    (other / "ROOTFS.IMG").write_bytes(b"x")
    (other / ".hidden").write_bytes(b"x")
    (other / "manifest.json").write_bytes(b"x")
    for bad, match in [([tmp_path / "nope.bin"], "no such file"), ([other], "directory"),
                       ([*payloads, other / "ROOTFS.IMG"], "same payload name"),
                       ([other / ".hidden"], "not allowed"), ([other / "manifest.json"], "reserved"),
                       ([payloads[0], package], "output")]:
        with pytest.raises(PackageBuildError, match=match):
            build_package(MODEL, "9.9", bad, package)
    assert package.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "src", "update.tar"]  # no temp file left


# ------------------------------------------------------------------------------------ CLI
def run(argv, capsys):
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_pack_then_verify(tmp_path, payloads, capsys):
    output = tmp_path / "fw.tar"
    status, out, err = run(["firmware", "pack", "--model", MODEL, "--version", "3.1.4", "--output", output,
                            *payloads], capsys)
    assert (status, err) == (0, "")
    assert "version:  3.1.4" in out and "rootfs.img" in out and "controller-AC22.bin" in out
    assert read_manifest(output).version == "3.1.4"

    status, out, err = run(["firmware", "verify", output, "--model", MODEL], capsys)
    assert (status, err) == (0, "")
    assert out.startswith(f"{output}: OK\n")

    status, out, err = run(["firmware", "verify", output, "--model", "Other"], capsys)
    assert status == 1 and out == ""
    assert "wrong model" in err and "MachineMismatch" in err


def test_cli_errors(tmp_path, payloads, capsys):
    output = tmp_path / "fw.tar"
    status, _, err = run(["firmware", "pack", "--model", MODEL, "--version", "1", "--output", output,
                          tmp_path / "missing.img"], capsys)
    assert status == 1 and "no such file" in err and not output.exists()
    status, out, err = run(["firmware", "pack", "--model", MODEL, "--version", "1", "--output", output], capsys)
    assert status == 1 and "no payloads" in err
    status, out, err = run(["firmware", "pack", "--model", MODEL, "--version", "a/b", "--output", output,
                            *payloads], capsys)
    assert status == 2 and "--version" in err and "--help" in err
    status, out, err = run(["firmware", "pack", "--version", "1", "--output", output, *payloads], capsys)
    assert status == 2 and "--model" in err
    output.write_bytes(b"garbage")
    status, out, err = run(["firmware", "verify", output, "--model", MODEL], capsys)
    assert status == 1 and out == "" and "corrupted" in err and "InstallationFailed" in err and "Traceback" not in err


def test_real_process_pack(tmp_path, payloads):
    output = tmp_path / "fw.tar"
    proc = subprocess.run([sys.executable, "-m", "stationd", "firmware", "pack", "--model", MODEL,
                           "--version", "1.0.0", "--output", str(output), *map(str, payloads)],
                          check=False, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert verify_package(output, expected_model=MODEL).manifest.version == "1.0.0"
