"""Running the machine's commands: one injectable async runner, and a recorder for tests.

The device edge runs every command through a :class:`CommandRunner`: ``await runner(argv,
timeout=...)`` returns a :class:`CommandResult` and never raises for a failing command (a
missing program is exit status 127, a timeout 124, as coreutils' ``timeout`` reports it).
An argument that carries a secret (a SIM PIN, a mobile password) is a :class:`Secret`: the
command receives it as is, logs and records show it masked.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

DEFAULT_TIMEOUT_S = 30.0
EXIT_NOT_FOUND = 127
EXIT_TIMEOUT = 124
MASK = "****"


class Secret(str):
    """A command-line argument that contains secrets: passed on unchanged, shown masked.

    ``Secret("--pin=1234", hidden=["1234"])`` shows as ``--pin=****``.
    """

    hidden: tuple[str, ...]

    def __new__(cls, text: str, hidden: Iterable[str]) -> Secret:
        argument = super().__new__(cls, text)
        argument.hidden = tuple(h for h in hidden if h)
        return argument

    def masked(self) -> str:
        return mask(str(self), self.hidden)


def mask(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def secrets_of(argv: Sequence[str]) -> tuple[str, ...]:
    return tuple(s for argument in argv if isinstance(argument, Secret) for s in argument.hidden)


def shown(argv: Sequence[str]) -> str:
    """The command line as logs and recordings show it: shell-quoted, secrets masked."""
    return shlex.join(a.masked() if isinstance(a, Secret) else a for a in argv)


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error_text(self) -> str:
        """The command's own complaint (stderr, else stdout), on one line."""
        text = (self.stderr.strip() or self.stdout.strip()).replace("\n", " | ")
        return text[:500] or f"exit status {self.returncode}"


class CommandRunner(Protocol):
    async def __call__(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S) -> CommandResult:
        """Run one command line (no shell); the result, whatever the exit status."""


class SubprocessRunner:
    """Runs commands as child processes (the device)."""

    async def __call__(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S) -> CommandResult:
        try:
            process = await asyncio.create_subprocess_exec(
                *[str(a) for a in argv], stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            return CommandResult(EXIT_NOT_FOUND, "", f"cannot run {argv[0]}: {exc.strerror or exc}")
        try:
            async with asyncio.timeout(timeout):
                out, err = await process.communicate()
        except (TimeoutError, asyncio.CancelledError) as exc:
            if process.returncode is None:
                process.kill()
                await asyncio.shield(process.wait())
            if isinstance(exc, asyncio.CancelledError):
                raise
            return CommandResult(EXIT_TIMEOUT, "", f"{argv[0]} did not finish within {timeout:g} s")
        return CommandResult(process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


@dataclass
class RecordingRunner:
    """Test double: records every command line and answers from canned results.

    ``answer("mmcli", "-J", "-L", stdout=...)`` answers every command line that starts with
    those arguments (the longest matching prefix wins); anything else succeeds with no output.
    """

    answers: dict[tuple[str, ...], CommandResult] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)
    shown_lines: list[str] = field(default_factory=list)

    def answer(self, *prefix: str, stdout: str = "", returncode: int = 0, stderr: str = "") -> None:
        self.answers[tuple(prefix)] = CommandResult(returncode, stdout, stderr)

    async def __call__(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S) -> CommandResult:
        line = tuple(str(a) for a in argv)
        self.calls.append(line)
        self.timeouts.append(timeout)
        self.shown_lines.append(shown(argv))
        matches = [prefix for prefix in self.answers if line[:len(prefix)] == prefix]
        if not matches:
            return CommandResult(0)
        return self.answers[max(matches, key=len)]

    @property
    def lines(self) -> list[str]:
        """Each command line as a shell would spell it (with secrets, as the command got them)."""
        return [shlex.join(call) for call in self.calls]
