"""Sends job notifications: e-mail over SMTP and webhook POSTs, with retries.

Deliveries are queued in the database when a job ends; every `execd serve` runs a
notifier that claims due ones (so several nodes never send one twice at once), sends
them, and records the outcome. A failed delivery is tried again with backoff, up to
`attempts` times, and then recorded as failed; the job itself never changes. A webhook
URL whose address is refused (execd.fetching) is recorded as failed at once.
"""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

import httpx
import orjson
import structlog

from execd import fetching
from execd.domain import times
from execd.domain.executions import Execution
from execd.domain.secret_values import mask_url, scrub
from execd.engine.sealing import Sealer, SealError, sealed_webhook_url
from execd.store.notifications import DELIVERY_SECONDS, Notification, NotificationStore

MAX_IN_FLIGHT = 32

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None
    port: int
    username: str | None
    password: str | None
    sender: str
    starttls: bool
    timeout: float = 10.0  # per SMTP step; a whole delivery stays under DELIVERY_SECONDS


class Notifier:
    def __init__(
        self,
        store: NotificationStore,
        smtp: SmtpSettings,
        sealer: Sealer,
        *,
        fetch_allow: fetching.AllowList,
        interval: float,
        attempts: int,
        backoff: float,
    ) -> None:
        self.store = store
        self.smtp = smtp
        self.sealer = sealer
        self.fetch_allow = fetch_allow
        self.interval = interval
        self.attempts = attempts
        self.backoff = backoff
        self._http: httpx.AsyncClient | None = None
        # Deliveries this process made, by (channel, "delivered" | "failed"): metrics.
        self.deliveries: dict[tuple[str, str], int] = {}

    async def run(self) -> None:
        """Each delivery runs on its own: a slow receiver holds up only itself."""
        self._http = fetching.client(self.fetch_allow, timeout=10.0, follow_redirects=False)
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                room = MAX_IN_FLIGHT - len(in_flight)
                due = []
                if room > 0:
                    try:
                        due = await self.store.claim(room)
                    except Exception as exc:  # the database may be briefly unreachable
                        log.warning("notifier_claim_failed", error=str(exc))
                for notification, job in due:
                    task = asyncio.create_task(self._deliver(notification, job))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if not due:
                    await asyncio.sleep(self.interval)
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            await self._http.aclose()

    async def _deliver(self, notification: Notification, job: Execution) -> None:
        hidden: list[str] = []  # what the error must not show of the webhook URL
        final = False  # a refused address is refused again: no retry
        try:
            if notification.channel == "email":
                await asyncio.to_thread(self._send_mail, notification, job)
            else:
                url, hidden = self._webhook_url(notification, job)
                await asyncio.wait_for(self._post(url, notification, job), DELIVERY_SECONDS)
            error = None
        except fetching.FetchRefused as exc:
            error, final = scrub(str(exc), hidden), True
        except Exception as exc:
            error = scrub(f"{type(exc).__name__}: {exc}", hidden)[:2000] or type(exc).__name__
        retry_in = None
        if error is not None and not final and notification.attempts + 1 < self.attempts:
            retry_in = self.backoff * 2**notification.attempts
        outcome = (notification.channel, "failed" if error is not None else "delivered")
        self.deliveries[outcome] = self.deliveries.get(outcome, 0) + 1
        if error is not None:
            log.warning("notification_failed", id=notification.id, error=error, retry=retry_in)
        try:
            await self.store.record(notification, error, retry_in)
        except Exception as exc:  # the claim runs out and it is tried again
            log.warning("notification_record_failed", id=notification.id, error=str(exc))

    def _send_mail(self, notification: Notification, job: Execution) -> None:
        if not self.smtp.host:
            raise RuntimeError("no SMTP server configured (EXECD_SMTP_HOST)")
        message = EmailMessage()
        message["From"] = self.smtp.sender
        message["To"] = notification.target
        message["Subject"] = subject(job, notification.event)
        message.set_content(body(job, notification.event))
        with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=self.smtp.timeout) as smtp:
            if self.smtp.starttls:
                smtp.starttls()
            if self.smtp.username:
                smtp.login(self.smtp.username, self.smtp.password or "")
            smtp.send_message(message)

    def _webhook_url(self, notification: Notification, job: Execution) -> tuple[str, list[str]]:
        """Where to send, and its secret pieces. The URL is sealed in the job when it
        carries credentials (the delivery's target shows it masked); an older job's
        target is the URL itself."""
        sealed = sealed_webhook_url(job.job)
        url = notification.target
        if sealed is not None:
            try:
                url = str(self.sealer.open(sealed))
            except SealError as exc:
                raise SealError(f"The webhook URL cannot be opened: {exc.message}") from None
        return url, mask_url(url)[1]

    async def _post(self, url: str, notification: Notification, job: Execution) -> None:
        assert self._http is not None
        payload = {
            "deliveryId": notification.id,  # the same on every retry: deduplicate on it
            "event": f"job.{notification.event}",
            "jobId": job.uuid,
            "jobName": (job.job or {}).get("name"),
            "jobType": job.job_type,
            "outcome": "Completed" if notification.event == "completed" else "Failed",
            "status": job.status.value,  # the canonical state: timeout, abandoned, ...
            "error": job.error,
            "tenantId": job.tenant_id,
            "projectId": job.project_id,
            "dateEnded": times.iso(job.ended),
        }
        response = await self._http.post(
            url,
            content=orjson.dumps(payload),
            headers={
                "Content-Type": "application/json",
                "X-Execd-Delivery": str(notification.id),
            },
        )
        response.raise_for_status()


def subject(job: Execution, event: str) -> str:
    name = (job.job or {}).get("name") or job.action_ref
    return f"[execd] Job {name!r} {event}"


def body(job: Execution, event: str) -> str:
    info = job.job or {}
    lines = [
        f"Job: {info.get('name') or job.action_ref} ({job.uuid})",
        f"Type: {job.job_type}",
        f"Resource: {(info.get('resource') or {}).get('resourceName') or job.action_ref}",
        f"Outcome: {event} ({job.status.value})",
        f"Submitted by: {job.submitted_by}",
    ]
    if job.started is not None and job.ended is not None:
        lines.append(f"Run time: {job.ended - job.started:.1f} seconds")
    if job.error:
        lines.append(f"Error: {job.error}")
    return "\n".join(lines) + "\n"
