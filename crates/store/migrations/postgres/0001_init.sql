-- suanwang schema v1, PostgreSQL. Integers are BIGINT (i64); booleans 0/1;
-- times are milliseconds since the epoch; money is integer micro-yuan.
-- Text is COLLATE "C": ids compare as bytes, fast and the same on every
-- server whatever the database's locale.
CREATE TABLE principals (
    id TEXT COLLATE "C" PRIMARY KEY,
    role TEXT COLLATE "C" NOT NULL CHECK (role IN ('operator', 'tenant', 'provider', 'site')),
    name TEXT COLLATE "C" NOT NULL,
    parent TEXT COLLATE "C" REFERENCES principals(id),
    created_at_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX principals_role_name ON principals(role, name) WHERE role <> 'site';

CREATE TABLE tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    principal TEXT COLLATE "C" NOT NULL REFERENCES principals(id),
    name TEXT COLLATE "C" NOT NULL,
    hash TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE INDEX tokens_principal ON tokens(principal);

CREATE TABLE audit (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    principal TEXT COLLATE "C" NOT NULL,
    action TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C" NOT NULL,
    detail TEXT COLLATE "C" NOT NULL
);

CREATE TABLE topology (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    spec TEXT COLLATE "C" NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE sites (
    id TEXT COLLATE "C" PRIMARY KEY REFERENCES principals(id),
    provider TEXT COLLATE "C" NOT NULL REFERENCES principals(id),
    name TEXT COLLATE "C" NOT NULL,
    region TEXT COLLATE "C" NOT NULL,
    lease_expires_at_ms BIGINT,
    healthy BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (provider, name)
);

CREATE TABLE pools (
    id TEXT COLLATE "C" PRIMARY KEY,
    site TEXT COLLATE "C" NOT NULL REFERENCES sites(id),
    name TEXT COLLATE "C" NOT NULL,
    spec TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    family TEXT COLLATE "C" NOT NULL,
    capacity BIGINT NOT NULL CHECK (capacity >= 0),
    price_micro BIGINT NOT NULL CHECK (price_micro >= 0),
    active BIGINT NOT NULL DEFAULT 1,
    UNIQUE (site, name)
);

CREATE TABLE jobs (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL REFERENCES principals(id),
    name TEXT COLLATE "C" NOT NULL,
    spec TEXT COLLATE "C" NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    tasks BIGINT NOT NULL CHECK (tasks > 0),
    units BIGINT NOT NULL CHECK (units > 0),
    retries BIGINT NOT NULL CHECK (retries >= 0),
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    created_at_ms BIGINT NOT NULL,
    why TEXT COLLATE "C"
);
CREATE INDEX jobs_tenant ON jobs(tenant, id);
CREATE INDEX jobs_state ON jobs(state);

CREATE TABLE tasks (
    job TEXT COLLATE "C" NOT NULL REFERENCES jobs(id),
    idx BIGINT NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    attempt BIGINT NOT NULL DEFAULT 0,
    units BIGINT NOT NULL,
    pool TEXT COLLATE "C",
    site TEXT COLLATE "C",
    exit_code BIGINT,
    reason TEXT COLLATE "C",
    output_tail TEXT COLLATE "C",
    PRIMARY KEY (job, idx)
);
-- Two partial indexes, so a task that changes state touches as few index
-- entries as possible: the waiting tasks by job (the round reads them), and
-- the tasks holding capacity by site and pool (assignments, used units).
CREATE INDEX tasks_pending ON tasks(job) WHERE state = 'pending';
CREATE INDEX tasks_active ON tasks(site, pool, units) INCLUDE (job) WHERE state IN ('placed', 'running');

CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job TEXT COLLATE "C" NOT NULL,
    task BIGINT,
    at_ms BIGINT NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    detail TEXT COLLATE "C" NOT NULL
);
CREATE INDEX events_job ON events(job, seq);

CREATE TABLE idempotency (
    principal TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    request_hash TEXT COLLATE "C" NOT NULL,
    status BIGINT NOT NULL,
    body TEXT COLLATE "C" NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (principal, key)
);

CREATE TABLE usage (
    site TEXT COLLATE "C" NOT NULL,
    job TEXT COLLATE "C" NOT NULL,
    task BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    pool TEXT COLLATE "C" NOT NULL,
    units BIGINT NOT NULL,
    wall_ms BIGINT NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    -- Rated at report time (core::metering): the pool's device model (the
    -- catalogue id when known), micro-SCU-hours, whether the model was
    -- rated (0: unknown model, factor 0) and the catalogue version used.
    device_model TEXT COLLATE "C" NOT NULL,
    scu_micro_hours BIGINT NOT NULL CHECK (scu_micro_hours >= 0),
    scu_rated BIGINT NOT NULL,
    catalogue_version TEXT NOT NULL,
    PRIMARY KEY (site, job, task, attempt, seq)
);
CREATE INDEX usage_job ON usage(job);
