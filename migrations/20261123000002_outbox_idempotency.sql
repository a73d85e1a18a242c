-- Events awaiting publication, written in the same transaction as the
-- change that caused them (the transactional outbox). The relay publishes
-- pending rows to JetStream with Nats-Msg-Id = msg_id, waits for the ack,
-- then sets published_at; JetStream drops a re-published msg_id within its
-- duplicate window, so a row is in the stream exactly once.
CREATE TABLE outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msg_id uuid NOT NULL UNIQUE,
    subject text NOT NULL,
    -- The exact bytes to publish (text, not jsonb, which would reorder keys).
    payload text NOT NULL,
    -- Extra NATS headers (e.g. trace context) as a JSON object of strings.
    headers jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_error text
);

CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Replies to requests that carried an idempotency key (the Nats-Msg-Id
-- header), stored in the same transaction as the change, so that a retry
-- gets the identical reply and changes nothing.
CREATE TABLE idempotency (
    key text PRIMARY KEY,
    endpoint text NOT NULL,
    -- SHA-256 of the endpoint and the request, to refuse a key reused for a
    -- different request.
    request_hash text NOT NULL,
    reply_body text,
    error_code integer,
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX idempotency_expires_idx ON idempotency (expires_at);
