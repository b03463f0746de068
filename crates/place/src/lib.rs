//! suanwang's placement engine. Pure: no IO, no clock, no OS randomness.
//! Time never matters here and seeds come in as arguments, so the same input
//! always gives byte-identical output.

pub mod check;
pub mod explain;
pub mod format;
pub mod gen;
pub mod greedy;
pub mod index;
pub mod model;
pub mod solve;

pub use model::{Assignment, Class, Filter, Kind, Pool, Problem, Region, Solution};
