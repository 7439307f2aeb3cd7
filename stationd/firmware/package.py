"""Firmware update packages: build, verify, extract (format: docs/firmware-package.md).

A package is an uncompressed POSIX tar archive::

    manifest.json           what the package is for and what it carries (model, version, payloads)
    manifest.json.sha256    SHA-256 of manifest.json (``sha256sum`` output is accepted)
    <payload> …             the payload files, flat names, in the order the manifest lists them

Verification reads the archive once, front to back, hashing every payload in chunks (nothing is
held in memory whole). Every refusal is a :class:`PackageError` whose ``kind`` says what the
station tells the backend: ``wrong_model`` → DataTransfer MachineMismatch, then
InstallationFailed; ``corrupted``, ``unsafe`` and ``too_large`` → InstallationFailed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

FORMAT = "stationd-firmware"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
DIGEST_NAME = "manifest.json.sha256"
RESERVED_PREFIX = "manifest."
CHUNK = 1 << 20
TAR_BLOCK = 512

MAX_MODEL_LENGTH = 20  # chargePointModel: CiString20
MAX_VERSION_LENGTH = 50  # firmwareVersion: CiString50
MAX_NAME_LENGTH = 100  # fits a ustar name field without a pax header
PAYLOAD_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._+-]{{0,{MAX_NAME_LENGTH - 1}}}")
CONTROLLER_IMAGE = re.compile(r"controller-(?P<model>[A-Za-z0-9._+-]+)\.bin")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
DIGEST_LINE = re.compile(r"(?P<hex>[0-9a-fA-F]{64})(?:[ \t]+\*?manifest\.json)?[ \t]*\r?\n?")

# A package is written in ustar format (no extended headers); a GNU long-name or pax header is
# accepted up to this size. tarfile reads such a header whole into memory, so a huge one would
# be a memory bomb; it is refused from its size field, before its data is read.
MAX_EXTENDED_HEADER = 64 * 1024
_EXTENDED_TYPES = frozenset({tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                             tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE})

CORRUPTED = "corrupted"
WRONG_MODEL = "wrong_model"
UNSAFE = "unsafe"
TOO_LARGE = "too_large"
KINDS = (CORRUPTED, WRONG_MODEL, UNSAFE, TOO_LARGE)


class PackageError(Exception):
    """The package is refused. ``kind``: corrupted | wrong_model | unsafe | too_large."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown package error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message


class PackageBuildError(ValueError):
    """build_package refused its input (bad model or version, missing or clashing payloads)."""


@dataclass(frozen=True)
class Limits:
    """What a station accepts; a package beyond any of these is refused as ``too_large``."""

    max_manifest_size: int = 64 * 1024
    max_payloads: int = 64
    max_payload_size: int = 2 * 1024**3
    max_package_size: int = 4 * 1024**3


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class PayloadEntry:
    name: str
    size: int
    sha256: str  # lowercase hex
    version: str | None = None  # optional; the convention for controller images (docs)

    @property
    def kind(self) -> str:
        """``controller`` for an EVSE controller image (``controller-<model>.bin``), else ``system``."""
        return "controller" if CONTROLLER_IMAGE.fullmatch(self.name) else "system"

    @property
    def controller_model(self) -> str | None:
        match = CONTROLLER_IMAGE.fullmatch(self.name)
        return match["model"] if match else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "size": self.size, "sha256": self.sha256}
        if self.version is not None:
            data["version"] = self.version
        return data


@dataclass(frozen=True)
class Manifest:
    model: str
    version: str
    created: str  # ISO 8601, UTC ("2025-01-31T12:00:00Z")
    payloads: tuple[PayloadEntry, ...]
    format_version: int = FORMAT_VERSION

    @property
    def total_size(self) -> int:
        return sum(p.size for p in self.payloads)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": self.format_version, "model": self.model,
                "version": self.version, "created": self.created,
                "payloads": [p.to_json() for p in self.payloads]}

    def encode(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, ensure_ascii=True) + "\n").encode("ascii")

    def matches_model(self, model: str) -> bool:
        """chargePointModel is a CiString: compared case-insensitively, otherwise exactly."""
        return self.model.casefold() == model.casefold()


@dataclass(frozen=True)
class VerifiedPackage:
    """A package that passed :func:`verify_package`; ``offsets`` locate each payload's bytes."""

    path: Path
    manifest: Manifest
    offsets: tuple[int, ...] = field(repr=False)


# ------------------------------------------------------------------------------- validation
def check_model(model: str) -> str:
    """A chargePointModel: 1–20 printable ASCII characters, no leading or trailing blank."""
    _check_text("model", model, MAX_MODEL_LENGTH)
    return model


def check_version(version: str) -> str:
    """A firmwareVersion: 1–50 printable ASCII characters without '/', no leading or trailing blank."""
    _check_text("version", version, MAX_VERSION_LENGTH)
    if "/" in version:
        raise ValueError("version must not contain '/'")
    return version


def check_payload_name(name: str) -> str:
    if not PAYLOAD_NAME.fullmatch(name):
        raise ValueError(f"payload name {name!r} is not allowed: 1–{MAX_NAME_LENGTH} characters of "
                         "A–Z a–z 0–9 . _ + -, starting with a letter or digit")
    if name.lower().startswith(RESERVED_PREFIX):
        raise ValueError(f"payload name {name!r} is reserved (names starting with {RESERVED_PREFIX!r})")
    return name


def _check_text(what: str, value: object, longest: int) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > longest:
        raise ValueError(f"{what} must be 1 to {longest} characters long (got {len(value)})")
    bad = next((c for c in value if not " " <= c <= "~"), None)
    if bad is not None:
        raise ValueError(f"{what} may only contain printable ASCII characters (found {bad!r})")
    if value != value.strip():
        raise ValueError(f"{what} must not start or end with a blank")


# ----------------------------------------------------------------------------------- build
def build_package(model: str, version: str, payloads: list[Path], output: Path, *,
                  created: datetime | None = None, limits: Limits = DEFAULT_LIMITS) -> Manifest:
    """Write a package for ``model`` at ``output`` (atomically: temp file, fsync, rename).

    Payload names are the files' base names. Refuses (:class:`PackageBuildError`) a bad model or
    version, no payloads, a missing file, a directory, a name clash (also one differing only in
    case) and an output that is one of the payloads.
    """
    try:
        check_model(model)
        check_version(version)
    except ValueError as problem:
        raise PackageBuildError(str(problem)) from None
    output = Path(output)
    files = _check_payload_files([Path(p) for p in payloads], output)
    moment = (created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    entries = tuple(PayloadEntry(path.name, size, digest) for path, size, digest in
                    ((path, *_hash_file(path)) for path in files))
    manifest = Manifest(model, version, moment.strftime("%Y-%m-%dT%H:%M:%SZ"), entries)
    try:
        _check_declared_sizes(manifest, limits)
    except PackageError as problem:
        raise PackageBuildError(f"a station would refuse this package: {problem}") from None
    manifest_bytes = manifest.encode()
    digest_bytes = f"{hashlib.sha256(manifest_bytes).hexdigest()}  {MANIFEST_NAME}\n".encode("ascii")
    mtime = int(moment.timestamp())

    def write(archive: tarfile.TarFile) -> None:
        for name, data in ((MANIFEST_NAME, manifest_bytes), (DIGEST_NAME, digest_bytes)):
            archive.addfile(_member(name, len(data), mtime), io.BytesIO(data))
        for path, entry in zip(files, entries):
            with open(path, "rb") as raw:
                reader = _HashingReader(raw)
                archive.addfile(_member(entry.name, entry.size, mtime), reader)
                if reader.hexdigest() != entry.sha256:
                    raise PackageBuildError(f"{path} changed while the package was being built")

    _atomic_write(output, write)
    return manifest


def _check_payload_files(paths: list[Path], output: Path) -> list[Path]:
    if not paths:
        raise PackageBuildError("no payloads: a package must carry at least one payload file")
    seen: dict[str, Path] = {}
    target = output.resolve()
    for path in paths:
        if not path.exists():
            raise PackageBuildError(f"{path}: no such file")
        if path.is_dir():
            raise PackageBuildError(f"{path}: is a directory (payloads are files)")
        if not path.is_file():
            raise PackageBuildError(f"{path}: not a regular file")
        if path.resolve() == target:
            raise PackageBuildError(f"{path}: is also the output file")
        try:
            check_payload_name(path.name)
        except ValueError as problem:
            raise PackageBuildError(f"{path}: {problem}") from None
        clash = seen.get(path.name.lower())
        if clash is not None:
            raise PackageBuildError(f"{path} and {clash} have the same payload name {path.name!r} "
                                    "(names are compared case-insensitively)")
        seen[path.name.lower()] = path
    return paths


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, mtime, 0o644, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _atomic_write(output: Path, write: Callable[[tarfile.TarFile], None]) -> None:
    directory = output.parent if str(output.parent) else Path(".")
    handle, temp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=directory)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as file:
            with tarfile.open(fileobj=file, mode="w", format=tarfile.USTAR_FORMAT) as archive:
                write(archive)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, output)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _hash_file(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class _HashingReader:
    """A file wrapper that hashes what tarfile copies out of it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.digest = raw, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


# ---------------------------------------------------------------------------------- verify
def read_manifest(path: Path, *, limits: Limits = DEFAULT_LIMITS) -> Manifest:
    """The package's manifest, its own checksum checked; payloads are not read."""
    with _open(path, limits) as archive:
        return _read_head(archive, _members(archive), limits)


def verify_package(path: Path, *, expected_model: str, limits: Limits = DEFAULT_LIMITS) -> VerifiedPackage:
    """Check a whole package: manifest and its checksum, the model, the limits, that the archive
    holds nothing but flat regular files, and every payload's size and SHA-256 (streamed)."""
    path = Path(path)
    with _open(path, limits) as archive:
        members = _members(archive)
        manifest = _read_head(archive, members, limits)
        if not manifest.matches_model(expected_model):
            raise PackageError(WRONG_MODEL, f"the package is for model {manifest.model!r}, "
                                            f"this station is {expected_model!r}")
        _check_declared_sizes(manifest, limits)
        offsets = []
        for entry in manifest.payloads:
            member = next(members, None)
            if member is None:
                raise PackageError(CORRUPTED, f"payload {entry.name!r} is missing (the package is truncated?)")
            if member.name != entry.name:
                raise PackageError(CORRUPTED, f"expected payload {entry.name!r} next, found {member.name!r}")
            if member.size != entry.size:
                raise PackageError(CORRUPTED, f"payload {entry.name!r} is {member.size} bytes, "
                                              f"the manifest says {entry.size}")
            source = archive.extractfile(member)
            assert source is not None  # a regular file
            size, digest = _hash_stream(source, entry.size, entry.name)
            _check_hash(entry, size, digest)
            offsets.append(member.offset_data)
        extra = next(members, None)
        if extra is not None:
            raise PackageError(UNSAFE, f"the archive holds {extra.name!r}, which the manifest does not list")
        _check_end_of_archive(archive)
    return VerifiedPackage(path, manifest, tuple(offsets))


def extract_payloads(verified: VerifiedPackage, dest_dir: Path, *, kind: str | None = None) -> list[Path]:
    """Copy the payloads (only those of ``kind``, ``system`` or ``controller``, when given) into
    ``dest_dir`` (created if needed), in manifest order, re-checking every hash on the way; all
    or nothing: on a mismatch no payload file is left behind. Returns their paths."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    wanted = [(entry, offset) for entry, offset in zip(verified.manifest.payloads, verified.offsets)
              if kind in (None, entry.kind)]
    temps: list[Path] = []
    try:
        with open(verified.path, "rb") as package:
            for entry, offset in wanted:
                package.seek(offset)
                handle, temp_name = tempfile.mkstemp(prefix=f".{entry.name}.", suffix=".part", dir=dest_dir)
                temps.append(Path(temp_name))
                with os.fdopen(handle, "wb") as out:
                    size, digest = _hash_stream(package, entry.size, entry.name, copy_to=out)
                    _check_hash(entry, size, digest, "while extracting: ")
                    out.flush()
                    os.fsync(out.fileno())
        targets = [dest_dir / entry.name for entry, _ in wanted]
        for temp, target in zip(temps, targets):
            os.replace(temp, target)
        temps.clear()
        return targets
    except OSError as problem:
        raise PackageError(CORRUPTED, f"cannot extract from {verified.path}: {problem}") from None
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


class _open:
    """tarfile.open for reading a package, every low-level failure turned into PackageError."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path, self.limits = Path(path), limits

    def __enter__(self) -> tarfile.TarFile:
        try:
            size = self.path.stat().st_size
            if size > self.limits.max_package_size:
                raise PackageError(TOO_LARGE, f"the package is {size} bytes, at most "
                                              f"{self.limits.max_package_size} are accepted")
            with open(self.path, "rb") as file:
                magic = file.read(2)
            if magic == b"\x1f\x8b":
                raise PackageError(CORRUPTED, "the file is gzip-compressed; a package is an uncompressed tar archive")
            self.archive = tarfile.open(self.path, mode="r:", tarinfo=_BoundedTarInfo)
        except OSError as problem:
            raise PackageError(CORRUPTED, f"cannot read {self.path}: {problem.strerror or problem}") from None
        except (tarfile.TarError, EOFError, ValueError, UnicodeError) as problem:
            raise PackageError(CORRUPTED, f"not a package (not a tar archive): {problem}") from None
        return self.archive

    def __exit__(self, kind: type[BaseException] | None, problem: BaseException | None, traceback: object) -> bool:
        self.archive.close()
        if isinstance(problem, (tarfile.TarError, EOFError, UnicodeError)) or (
                isinstance(problem, OSError) and not isinstance(problem, PackageError)):
            raise PackageError(CORRUPTED, f"the archive is damaged or truncated: {problem}") from None
        return False


class _BoundedTarInfo(tarfile.TarInfo):
    """A member header that refuses an extended header (GNU long name, pax) over
    :data:`MAX_EXTENDED_HEADER` before tarfile reads its data into memory."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_TYPES and self.size > MAX_EXTENDED_HEADER:
            raise PackageError(UNSAFE, f"an extended tar header (type {self.type!r}) of {self.size} bytes; at most "
                                       f"{MAX_EXTENDED_HEADER} are accepted")
        return super()._proc_member(tarfile_)


def _shown(name: str, longest: int = 120) -> str:
    """A member name for a message: repr, clipped (a name can be up to 64 KiB long)."""
    return repr(name) if len(name) <= longest else repr(name[:longest]) + f"… ({len(name)} characters)"


def _members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The archive's members, each checked to be a safe flat regular file before it is used."""
    seen: set[str] = set()
    while True:
        member = archive.next()
        if member is None:
            return
        _check_member(member, seen)
        yield member


def _check_member(member: tarfile.TarInfo, seen: set[str]) -> None:
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise PackageError(UNSAFE, f"absolute name {_shown(name)} in the archive")
    if ".." in re.split(r"[/\\]", name):
        raise PackageError(UNSAFE, f"name {_shown(name)} leaves the package directory ('..')")
    if member.issym() or member.islnk():
        raise PackageError(UNSAFE, f"{_shown(name)} is a {'symbolic' if member.issym() else 'hard'} link")
    if member.isdev():
        raise PackageError(UNSAFE, f"{_shown(name)} is a device or FIFO")
    if member.isdir():
        raise PackageError(UNSAFE, f"{_shown(name)} is a directory (a package holds flat files only)")
    if not member.isreg() or member.type == tarfile.GNUTYPE_SPARSE or member.issparse():
        raise PackageError(UNSAFE, f"{_shown(name)} is not a regular file (tar type {member.type!r})")
    if name not in (MANIFEST_NAME, DIGEST_NAME) and not PAYLOAD_NAME.fullmatch(name):
        raise PackageError(UNSAFE, f"name {_shown(name)} is not allowed in a package (flat names of "
                                   "A–Z a–z 0–9 . _ + - only)")
    if name.lower() in seen:
        raise PackageError(UNSAFE, f"{_shown(name)} appears twice in the archive")
    seen.add(name.lower())


def _read_head(archive: tarfile.TarFile, members: Iterator[tarfile.TarInfo], limits: Limits) -> Manifest:
    manifest_bytes = _small_member(archive, next(members, None), MANIFEST_NAME, limits.max_manifest_size)
    digest_bytes = _small_member(archive, next(members, None), DIGEST_NAME, 1024)
    match = DIGEST_LINE.fullmatch(digest_bytes.decode("ascii", errors="replace"))
    if match is None:
        raise PackageError(CORRUPTED, f"{DIGEST_NAME} does not hold a SHA-256 checksum")
    if hashlib.sha256(manifest_bytes).hexdigest() != match["hex"].lower():
        raise PackageError(CORRUPTED, f"{MANIFEST_NAME} does not match its checksum in {DIGEST_NAME}")
    return parse_manifest(manifest_bytes)


def _small_member(archive: tarfile.TarFile, member: tarfile.TarInfo | None, name: str, limit: int) -> bytes:
    if member is None:
        raise PackageError(CORRUPTED, f"{name} is missing (not a package, or truncated)")
    if member.name != name:
        raise PackageError(CORRUPTED, f"the package must start with {MANIFEST_NAME} and {DIGEST_NAME}; "
                                      f"found {member.name!r}")
    if member.size > limit:
        raise PackageError(TOO_LARGE, f"{name} is {member.size} bytes, at most {limit} are accepted")
    source = archive.extractfile(member)
    assert source is not None
    data = source.read()
    if len(data) != member.size:
        raise PackageError(CORRUPTED, f"{name} is truncated")
    return data


def parse_manifest(data: bytes) -> Manifest:
    """Parse and validate the bytes of manifest.json (unknown fields are ignored)."""
    try:
        raw = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as problem:
        raise PackageError(CORRUPTED, f"{MANIFEST_NAME} is not valid JSON: {problem}") from None
    try:
        return _manifest_from_json(raw)
    except (ValueError, TypeError, KeyError) as problem:
        raise PackageError(CORRUPTED, f"{MANIFEST_NAME}: {problem}") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate field {key!r}")
        result[key] = value
    return result


def _manifest_from_json(raw: Any) -> Manifest:
    if not isinstance(raw, dict):
        raise TypeError("must be a JSON object")
    if raw.get("format") != FORMAT:
        raise ValueError(f"format must be {FORMAT!r}")
    if _field(raw, "format_version", int) != FORMAT_VERSION:
        raise ValueError(f"format_version {raw['format_version']} is not supported (this station reads "
                         f"{FORMAT_VERSION})")
    model = check_model(_field(raw, "model", str))
    version = check_version(_field(raw, "version", str))
    created = _field(raw, "created", str)
    try:
        datetime.fromisoformat(created)
    except ValueError:
        raise ValueError(f"created {created!r} is not an ISO 8601 date and time") from None
    payloads = _field(raw, "payloads", list)
    if not payloads:
        raise ValueError("no payloads: a package must carry at least one payload")
    entries, names = [], set()
    for number, item in enumerate(payloads, 1):
        if not isinstance(item, dict):
            raise TypeError(f"payload {number} must be a JSON object")
        name = check_payload_name(_field(item, "name", str))
        if name.lower() in names:
            raise ValueError(f"payload {name!r} is listed twice")
        names.add(name.lower())
        size = _field(item, "size", int)
        if size < 0:
            raise ValueError(f"payload {name!r}: size must not be negative")
        digest = _field(item, "sha256", str)
        if not SHA256_HEX.fullmatch(digest):
            raise ValueError(f"payload {name!r}: sha256 must be 64 hex digits")
        item_version = item.get("version")
        if item_version is not None:
            if not isinstance(item_version, str):
                raise TypeError(f"payload {name!r}: version must be a JSON string")
            item_version = check_version(item_version)
        entries.append(PayloadEntry(name, size, digest.lower(), item_version))
    return Manifest(model, version, created, tuple(entries))


def _field(raw: dict[str, Any], name: str, kind: type) -> Any:
    if name not in raw:
        raise ValueError(f"field {name!r} is missing")
    value = raw[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"field {name!r} must be a JSON {kind.__name__.replace('str', 'string')}")
    return value


def _check_declared_sizes(manifest: Manifest, limits: Limits) -> None:
    if len(manifest.payloads) > limits.max_payloads:
        raise PackageError(TOO_LARGE, f"{len(manifest.payloads)} payloads, at most {limits.max_payloads} "
                                      "are accepted")
    for entry in manifest.payloads:
        if entry.size > limits.max_payload_size:
            raise PackageError(TOO_LARGE, f"payload {entry.name!r} is {entry.size} bytes, at most "
                                          f"{limits.max_payload_size} are accepted")
    if manifest.total_size > limits.max_package_size:
        raise PackageError(TOO_LARGE, f"the payloads add up to {manifest.total_size} bytes, at most "
                                      f"{limits.max_package_size} are accepted")


def _hash_stream(source: BinaryIO, size: int, name: str, *, copy_to: BinaryIO | None = None) -> tuple[int, str]:
    digest, done = hashlib.sha256(), 0
    while done < size:
        chunk = source.read(min(CHUNK, size - done))
        if not chunk:
            break
        digest.update(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
        done += len(chunk)
    return done, digest.hexdigest()


def _check_hash(entry: PayloadEntry, size: int, digest: str, context: str = "") -> None:
    if size != entry.size:
        raise PackageError(CORRUPTED, f"{context}payload {entry.name!r} is truncated ({size} of {entry.size} bytes)")
    if digest != entry.sha256:
        raise PackageError(CORRUPTED, f"{context}payload {entry.name!r} does not match its SHA-256")


def _check_end_of_archive(archive: tarfile.TarFile) -> None:
    """The two zero blocks that end a tar archive must be there: otherwise the file was cut."""
    file = archive.fileobj
    assert file is not None
    file.seek(archive.offset)
    end = file.read(2 * TAR_BLOCK)
    if len(end) != 2 * TAR_BLOCK or end.count(0) != len(end):
        raise PackageError(CORRUPTED, "the archive has no end marker (the package is truncated?)")
