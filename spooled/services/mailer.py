"""Outgoing mail (the email login codes) over SMTP, sent by one background task so a request never waits on
(or reveals through its timing) a mail server.

`SPOOLED_SMTP_URL`: `smtp://[user:password@]host[:port]` (port 25 by default; STARTTLS whenever the server
offers it) or `smtps://...` (TLS from the first byte, port 465 by default). Without it nothing is sent and the
message's secret (the login code) is logged instead, for local development: the one place a secret is
ever logged.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

import attrs
import trio

from spooled.settings import parse_smtp_url

log = logging.getLogger(__name__)

SEND_TIMEOUT_SECS = 30.0
QUEUE_SIZE = 1000


@attrs.frozen
class Mail:
    to: str
    subject: str
    body: str
    secret: str                 # what the log shows when no SMTP server is configured


class Mailer:
    def __init__(self, smtp_url: str | None, sender: str):
        self._target = parse_smtp_url(smtp_url) if smtp_url else None
        self._sender = sender
        self._send, self._receive = trio.open_memory_channel[Mail](QUEUE_SIZE)

    @property
    def configured(self) -> bool:
        return self._target is not None

    def send(self, mail: Mail) -> None:
        """Queue a message (never blocks). Without SMTP, log its secret for local development instead."""
        if self._target is None:
            log.warning("no SMTP server configured (SPOOLED_SMTP_URL): the email login code for %s is %s",
                        mail.to, mail.secret)
            return
        try:
            self._send.send_nowait(mail)
        except trio.WouldBlock:
            log.error("outgoing mail queue full: a message to %s was dropped", mail.to)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Send queued messages one by one until cancelled (the supervisor's core nursery)."""
        task_status.started()
        async for mail in self._receive:
            try:
                with trio.fail_after(SEND_TIMEOUT_SECS + 5):
                    await trio.to_thread.run_sync(self._deliver, mail, abandon_on_cancel=True)
            except (OSError, smtplib.SMTPException, trio.TooSlowError) as exc:
                log.error("could not send mail to %s: %s", mail.to, exc)

    def _deliver(self, mail: Mail) -> None:
        t = self._target
        assert t is not None
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self._sender, mail.to, mail.subject
        msg.set_content(mail.body)
        context = ssl.create_default_context()
        if t.tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(t.host, t.port, timeout=SEND_TIMEOUT_SECS, context=context)
        else:
            smtp = smtplib.SMTP(t.host, t.port, timeout=SEND_TIMEOUT_SECS)
        with smtp:
            smtp.ehlo()
            if not t.tls and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
            if t.user:
                smtp.login(t.user, t.password or "")
            smtp.send_message(msg)
