"""The outbox worker: claims due messages, sends them, retries failures with backoff.

Claiming is a conditional UPDATE (and `FOR UPDATE SKIP LOCKED` where the database has it),
so several workers never send one message twice. A worker that dies mid-send leaves a
claim that expires, and the message is picked up again: nothing is lost on restart.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import ColumnElement, and_, or_, update

from idp.clock import utcnow
from idp.db import db
from idp.models.outbox import FAILED, QUEUED, SENDING, SENT, OutboxMessage
from idp.notify.senders import DeliveryError, make_email_sender, make_sms_sender
from idp.ops import metrics

log = logging.getLogger(__name__)
CLAIM_LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=1)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at an hour."""
    return min(timedelta(seconds=30 * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(OutboxMessage.status == QUEUED, OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == SENDING, OutboxMessage.claimed_until < now),
    )


def claim_due_messages(limit: int = 20) -> list[OutboxMessage]:
    """Claim up to `limit` due messages for this worker."""
    now = utcnow()
    candidates = db.session.scalars(
        db.select(OutboxMessage.id).where(_due(now)).order_by(OutboxMessage.id).limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    claimed = []
    for message_id in candidates:
        result = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, _due(now))
            .values(status=SENDING, claimed_until=now + CLAIM_LEASE)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(message_id)
    db.session.commit()
    return [db.session.get(OutboxMessage, message_id) for message_id in claimed]  # type: ignore[misc]


def deliver_due(limit: int = 20) -> int:
    """Send what is due; returns how many were sent."""
    all_settings = current_app.extensions["idp"].settings
    settings = all_settings.mail
    senders = {"email": make_email_sender(settings), "sms": make_sms_sender(all_settings.sms)}
    sent = 0
    for message in claim_due_messages(limit):
        try:
            senders[message.channel].send(message)
        except DeliveryError as exc:
            message.attempts += 1
            message.last_error = str(exc)
            message.status = FAILED if message.attempts >= settings.max_attempts else QUEUED
            message.next_attempt_at = utcnow() + backoff(message.attempts)
            metrics.OUTBOX_DELIVERIES.labels(
                message.channel, "failed" if message.status == FAILED else "retry").inc()
            log.warning("outbox %s to %s failed (attempt %s): %s", message.id,
                        message.channel, message.attempts, exc)
        else:
            message.attempts += 1
            message.status, message.sent_at, message.last_error = SENT, utcnow(), None
            metrics.OUTBOX_DELIVERIES.labels(message.channel, "sent").inc()
            sent += 1
        message.claimed_until = None
        db.session.commit()
    return sent


def retry_message(message: OutboxMessage) -> None:
    """Put a failed or waiting message back at the front of the queue (admin action)."""
    if message.status in (FAILED, QUEUED):
        message.status, message.next_attempt_at = QUEUED, utcnow()
        db.session.commit()


def run_worker(app: Flask, interval: float = 1.0, stop: threading.Event | None = None) -> None:
    """Deliver in a loop until `stop` is set (the `idp worker` command and `idp serve`)."""
    stop = stop or threading.Event()
    while not stop.is_set():
        with app.app_context():
            try:
                deliver_due()
            except Exception:  # keep the worker alive; the failure is logged and retried
                log.exception("outbox worker iteration failed")
                db.session.rollback()
            finally:
                db.session.remove()
        stop.wait(interval)


def start_background_worker(app: Flask, interval: float = 1.0) -> threading.Event:
    """Run the worker in a daemon thread (development server); set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(app, interval, stop), daemon=True,
                              name="outbox-worker")
    thread.start()
    time.sleep(0)  # let the thread start before the server takes over
    return stop
