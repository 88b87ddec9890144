"""Delivery backends: the development mailbox (keeps messages) and real SMTP."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from idp.config import MailSettings
from idp.models.outbox import OutboxMessage


class DeliveryError(Exception):
    """A send failed; the worker retries later."""


class DevMailbox:
    """Development only: messages stay in the outbox and show on /dev/mailbox."""

    def send(self, message: OutboxMessage) -> None:
        return None


class SmtpSender:
    """Sends one message per SMTP conversation (host, port, STARTTLS/TLS, auth from config)."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    def send(self, message: OutboxMessage) -> None:
        s = self.settings
        email = EmailMessage()
        email["From"] = s.from_address
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email["Message-ID"] = make_msgid(domain=s.from_address.rpartition("@")[2] or None)
        email.set_content(message.body_text)
        if message.body_html:
            email.add_alternative(message.body_html, subtype="html")
        try:
            if s.smtp_security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.smtp_host, s.smtp_port, timeout=s.smtp_timeout,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
            with smtp:
                encrypted = s.smtp_security == "tls"
                smtp.ehlo()
                offered = smtp.has_extn("starttls")
                if s.smtp_security == "starttls" or (s.smtp_security == "auto" and offered):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                    encrypted = True
                if s.smtp_username:
                    # Never send credentials in clear unless the operator said so.
                    if not encrypted and s.smtp_security != "none":
                        raise DeliveryError("SMTP server offers no TLS; credentials not sent")
                    smtp.login(s.smtp_username, s.smtp_password)
                smtp.send_message(email)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}"[:400]) from exc


def make_email_sender(settings: MailSettings) -> DevMailbox | SmtpSender:
    return SmtpSender(settings) if settings.backend == "smtp" else DevMailbox()
