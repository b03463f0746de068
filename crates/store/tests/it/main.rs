//! The store's contract suite: every test runs against SQLite and against
//! PostgreSQL (when `SUANWANG_TEST_POSTGRES` names a server; CI sets
//! `SUANWANG_REQUIRE_POSTGRES=1` so that a missing server fails the run).

mod harness;

mod bills;
mod boundary;
mod corrupt;
mod deadlines;
mod holds;
mod jobs;
mod kinds;
mod leader;
mod leases;
mod ledger;
mod locks;
mod paging;
mod prices;
mod principals;
mod reports;
mod resources;
mod rounds;
mod twin;
mod upgrade;
mod usage_integrity;
