"""Email and text messages through a durable outbox, delivered by a worker with retries."""
