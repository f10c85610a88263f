-- Several nodes share the schedules (SEMANTICS.md, "Nodes"). Each node heartbeats its
-- row in `nodes`; a row older than the node TTL is a dead node. Schedules are spread over
-- a fixed set of partitions (a stable hash of the schedule id); each partition has one
-- lease row, held by the node that runs its schedules' timers. `epoch` grows on every
-- change of owner, so a stale owner's renewal (which names the epoch it holds) fails.

CREATE TABLE nodes (
    id              text PRIMARY KEY,
    http_addr       text NOT NULL,
    version         text NOT NULL,
    started_at      timestamptz NOT NULL,
    heartbeat_at    timestamptz NOT NULL,
    owned_schedules bigint NOT NULL DEFAULT 0,
    -- Set when the node stopped gracefully (it is dead at once, not after the TTL).
    left_at         timestamptz
);

CREATE TABLE partitions (
    partition  integer PRIMARY KEY,
    owner      text,
    expires_at timestamptz NOT NULL DEFAULT '-infinity',
    epoch      bigint NOT NULL DEFAULT 0
);

INSERT INTO partitions (partition) SELECT generate_series(0, 255);
