//! The agent's integration tests. The Slurm tests run against a real
//! single-node cluster (`scripts/slurm.sh`); without one they print why they
//! skip, unless `SUANWANG_REQUIRE_SLURM=1` (CI), which makes them fail. The
//! process executor's cgroup tests likewise need a writable cgroup v2
//! hierarchy, and fail without one when `SUANWANG_REQUIRE_CGROUP2=1`.

mod process;
mod slurm;
