"""Delivery backends: the development mailbox (keeps messages), SMTP, and an SMS gateway."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

import requests

from idp.config import MailSettings, SmsSettings
from idp.models.outbox import OutboxMessage


class DeliveryError(Exception):
    """A send failed; the worker retries later."""


class DevMailbox:
    """Development only: messages (email and text) stay in the outbox, shown on /dev/mailbox."""

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


class HttpSmsSender:
    """Posts each text message as JSON to a configurable SMS gateway (`[sms]` settings)."""

    def __init__(self, settings: SmsSettings) -> None:
        self.settings = settings

    def send(self, message: OutboxMessage) -> None:
        s = self.settings
        body = {"to": message.recipient, "text": message.body_text}
        if s.http_sender:
            body["from"] = s.http_sender
        headers = {"Accept": "application/json"}
        if s.http_token:
            headers["Authorization"] = f"Bearer {s.http_token}"
        try:
            response = requests.post(s.http_url, json=body, headers=headers,
                                     timeout=s.http_timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}"[:400]) from exc
        if not 200 <= response.status_code < 300:
            # The body is not kept: a gateway may echo the message, and with it the code.
            raise DeliveryError(f"SMS gateway answered HTTP {response.status_code}")


def make_sms_sender(settings: SmsSettings) -> DevMailbox | HttpSmsSender:
    return HttpSmsSender(settings) if settings.backend == "http" else DevMailbox()
