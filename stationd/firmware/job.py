"""One firmware update request and how far it got: what the FirmwareUpdater keeps in station_meta.

A job is a plain UpdateFirmware (``signed`` is None; FirmwareStatusNotification) or a
SignedUpdateFirmware (``signed`` holds the requestId, signing certificate, signature and
installDateTime; SignedFirmwareStatusNotification with the requestId). The updater speaks the
signed vocabulary of statuses; :data:`PLAIN_STATUS` says how a plain notification (and a plain
TriggerMessage FirmwareStatusNotification) names the statuses 1.6's FirmwareStatusNotification
does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WAITING, DOWNLOADING, DOWNLOADED, INSTALLING = "waiting", "downloading", "downloaded", "installing"
REBOOTING = "rebooting"  # a signed update is installed; Installed is reported after the reboot
PHASES = (WAITING, DOWNLOADING, DOWNLOADED, INSTALLING, REBOOTING)
BUSY = (INSTALLING, REBOOTING)  # phases a new request does not cancel: it waits for them

#: Signed statuses as FirmwareStatusNotification says them (the others are the same word).
PLAIN_STATUS = {
    "DownloadScheduled": "Idle",
    "SignatureVerified": "Downloaded",
    "InstallScheduled": "Downloaded",
    "InstallRebooting": "Installing",
    "InstallVerificationFailed": "InstallationFailed",
    "InvalidSignature": "InstallationFailed",
}


@dataclass
class SignedRequest:
    """What SignedUpdateFirmware adds to an update."""

    request_id: int
    signing_certificate: str  # PEM, checked against the ManufacturerRootCertificates on receipt
    signature: str  # base64, over the whole downloaded file
    install_date: str | None = None  # installDateTime, ISO 8601 UTC; None: as soon as possible

    @property
    def install_at(self) -> datetime | None:
        return datetime.fromisoformat(self.install_date) if self.install_date else None


@dataclass
class UpdateJob:
    """One update request and how far it got (persisted as JSON)."""

    id: str
    location: str
    retrieve_date: str  # ISO 8601, UTC
    retries: int
    retry_interval: float
    phase: str = WAITING
    attempts: int = 0  # download attempts made so far
    signed: SignedRequest | None = None

    @property
    def retrieve_at(self) -> datetime:
        return datetime.fromisoformat(self.retrieve_date)

    @property
    def package_name(self) -> str:
        return f"{self.id}.pkg"

    @property
    def request_id(self) -> int | None:
        return self.signed.request_id if self.signed else None

    def notification(self, status: str) -> tuple[str, dict]:
        """The status notification (action, payload) that tells the backend ``status``."""
        if self.signed is None:
            return "FirmwareStatusNotification", {"status": PLAIN_STATUS.get(status, status)}
        return "SignedFirmwareStatusNotification", {"status": status, "requestId": self.signed.request_id}

    @classmethod
    def from_json(cls, data: dict) -> UpdateJob:
        job = cls(**{name: data[name] for name in ("id", "location", "retrieve_date", "retries",
                                                    "retry_interval", "phase", "attempts")})
        if data.get("signed") is not None:  # jobs saved before signed updates existed have none
            job.signed = SignedRequest(**data["signed"])
            if not isinstance(job.signed.request_id, int) or not isinstance(job.signed.signing_certificate, str) \
                    or not isinstance(job.signed.signature, str):
                raise ValueError("the signed request is incomplete")
            job.signed.install_at  # noqa: B018 - must parse
        if job.phase not in PHASES:
            raise ValueError(f"unknown phase {job.phase!r}")
        job.retrieve_at  # noqa: B018 - must parse
        return job
