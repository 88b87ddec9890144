"""Outbox API: mail and text messages queued, sent or failed, and putting one back in line.

A message is described by its channel, kind (the template), recipient, status and delivery
attempts: never its subject or body, which carry links and codes (a verification email's
subject holds its code). Messages are not stored per portal; a portal's client sees what
the console shows its portal_admin (the messages to its portal's people, addresses and
phone numbers: idp.admin.console.outbox), and anything else answers 404, like an unknown
id. Which messages may be retried is the console's rule too.
"""

from __future__ import annotations

from typing import Any

from idp import audit
from idp.admin.api.contacts import timestamp
from idp.admin.api.invitations import ID, path_id
from idp.admin.api.pagination import paginate
from idp.admin.api.problems import ApiProblem
from idp.admin.api.registry import Param, operation
from idp.admin.api.schemas import DATE_TIME, NULLABLE_DATE_TIME, PAGE_PARAMS, errors_of, page_of

# The console's rules, so that a portal's staff see the same messages in both.
from idp.admin.console.outbox import _retryable as retryable
from idp.admin.console.outbox import _visible as visible_messages
from idp.admin.roles import OUTBOX_READ, OUTBOX_RETRY, Actor
from idp.db import db
from idp.models import OutboxMessage
from idp.models.outbox import FAILED, QUEUED, SENDING, SENT
from idp.notify.worker import retry_message

TAG = "outbox"
STATUSES = [QUEUED, SENDING, SENT, FAILED]

MESSAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "channel", "kind", "recipient", "status", "attempts", "created_at",
                 "next_attempt_at", "sent_at", "last_error"],
    "properties": {
        "id": {"type": "integer"},
        "channel": {"type": "string", "enum": ["email", "sms"]},
        "kind": {"type": "string", "description": "The template, e.g. invitation"},
        "recipient": {"type": "string"},
        "status": {"type": "string", "enum": STATUSES},
        "attempts": {"type": "integer", "minimum": 0},
        "created_at": DATE_TIME,
        "next_attempt_at": DATE_TIME,
        "sent_at": NULLABLE_DATE_TIME,
        "last_error": {"type": ["string", "null"],
                       "description": "Why the last attempt failed (the server's answer)"},
    },
}


@operation(
    "GET", "/outbox",
    summary=("List messages, newest first, by status and channel: channel, kind, recipient, "
             "attempts and errors, never a subject or body"),
    tag=TAG, permission=OUTBOX_READ,
    query=(Param("status", {"type": "string", "enum": STATUSES}, "Only this status."),
           Param("channel", {"type": "string", "enum": ["email", "sms"]}, "Only this channel."),
           *PAGE_PARAMS),
    responses={200: ("A page of messages", page_of(MESSAGE)), **errors_of(401, 403, 422)},
)
def list_outbox(actor: Actor, query: dict[str, Any]) -> Any:
    statement = visible_messages(actor, OUTBOX_READ).order_by(OutboxMessage.id.desc())
    if query["status"]:
        statement = statement.where(OutboxMessage.status == query["status"])
    if query["channel"]:
        statement = statement.where(OutboxMessage.channel == query["channel"])
    return paginate(statement, query, serialize_message)


@operation(
    "POST", "/outbox/{message_id}/retry",
    summary=("Send a failed message, or one waiting after a failed attempt, at once (the "
             "worker picks it up next); any other is a conflict"),
    tag=TAG, permission=OUTBOX_RETRY, path_params={"message_id": ID},
    responses={200: ("The message, queued", MESSAGE), **errors_of(401, 403, 404, 409)},
)
def retry_outbox_message(actor: Actor, message_id: str, query: dict[str, Any]) -> Any:
    message = db.session.execute(visible_messages(actor, OUTBOX_RETRY).where(
        OutboxMessage.id == path_id(message_id))).scalar_one_or_none()
    if message is None:
        raise ApiProblem(404, f"No message {message_id}.")
    if not retryable(message):
        raise ApiProblem(409, "Only a failed message, or one waiting to be tried again after "
                              f"a failed attempt, can be retried (this one is {message.status}).")
    previous = message.status
    retry_message(message)
    audit.record("outbox.retried", actor=actor.label, subject=message.recipient,
                 message_id=message.id, message_kind=message.kind, channel=message.channel,
                 status=previous, attempts=message.attempts)
    return serialize_message(message)


def serialize_message(message: OutboxMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "channel": message.channel,
        "kind": message.kind,
        "recipient": message.recipient,
        "status": message.status,
        "attempts": message.attempts,
        "created_at": timestamp(message.created_at),
        "next_attempt_at": timestamp(message.next_attempt_at),
        "sent_at": timestamp(message.sent_at),
        "last_error": message.last_error,
    }
