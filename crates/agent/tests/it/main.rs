//! The agent's integration tests. The Slurm tests run against a real
//! single-node cluster (`scripts/slurm.sh`); without one they print why they
//! skip, unless `SUANWANG_REQUIRE_SLURM=1` (CI), which makes them fail.

mod slurm;
