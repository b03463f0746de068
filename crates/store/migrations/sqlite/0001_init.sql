-- suanwang schema v1, SQLite. Integers are INTEGER (i64); booleans 0/1;
-- times are milliseconds since the epoch; money is integer micro-yuan.
CREATE TABLE principals (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('operator', 'tenant', 'provider', 'site')),
    name TEXT NOT NULL,
    parent TEXT REFERENCES principals(id),
    created_at_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX principals_role_name ON principals(role, name) WHERE role <> 'site';

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL REFERENCES principals(id),
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX tokens_principal ON tokens(principal);

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    principal TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE TABLE topology (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    spec TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE sites (
    id TEXT PRIMARY KEY REFERENCES principals(id),
    provider TEXT NOT NULL REFERENCES principals(id),
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    lease_expires_at_ms INTEGER,
    healthy INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (provider, name)
);

CREATE TABLE pools (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL REFERENCES sites(id),
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    kind TEXT NOT NULL,
    family TEXT NOT NULL,
    capacity INTEGER NOT NULL CHECK (capacity >= 0),
    price_micro INTEGER NOT NULL CHECK (price_micro >= 0),
    active INTEGER NOT NULL DEFAULT 1,
    UNIQUE (site, name)
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES principals(id),
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    tasks INTEGER NOT NULL CHECK (tasks > 0),
    units INTEGER NOT NULL CHECK (units > 0),
    retries INTEGER NOT NULL CHECK (retries >= 0),
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    why TEXT
);
CREATE INDEX jobs_tenant ON jobs(tenant, id);
CREATE INDEX jobs_state ON jobs(state);

CREATE TABLE tasks (
    job TEXT NOT NULL REFERENCES jobs(id),
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    units INTEGER NOT NULL,
    pool TEXT,
    site TEXT,
    exit_code INTEGER,
    reason TEXT,
    output_tail TEXT,
    PRIMARY KEY (job, idx)
) WITHOUT ROWID;
-- Two partial indexes, so a task that changes state touches as few index
-- entries as possible: the waiting tasks by job (the round reads them), and
-- the tasks holding capacity by site and pool (assignments, used units).
CREATE INDEX tasks_pending ON tasks(job) WHERE state = 'pending';
CREATE INDEX tasks_active ON tasks(site, pool, units) WHERE state IN ('placed', 'running');

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    task INTEGER,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX events_job ON events(job, seq);

CREATE TABLE idempotency (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE TABLE usage (
    site TEXT NOT NULL,
    job TEXT NOT NULL,
    task INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    pool TEXT NOT NULL,
    units INTEGER NOT NULL,
    wall_ms INTEGER NOT NULL,
    recorded_at_ms INTEGER NOT NULL,
    -- Rated at report time (core::metering): the pool's device model (the
    -- catalogue id when known), micro-SCU-hours, whether the model was
    -- rated (0: unknown model, factor 0) and the catalogue version used.
    device_model TEXT NOT NULL,
    scu_micro_hours INTEGER NOT NULL CHECK (scu_micro_hours >= 0),
    scu_rated INTEGER NOT NULL,
    catalogue_version TEXT NOT NULL,
    PRIMARY KEY (site, job, task, attempt, seq)
);
CREATE INDEX usage_job ON usage(job);
