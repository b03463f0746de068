//! suanwang's domain core. Pure like `suanwang-place`: no IO, no clock, no
//! randomness. Time comes in as an argument (milliseconds since the epoch).
//!
//! It reads wire types (`suanwang-api`) as *input* to validation and turns
//! them into domain types; it never serialises anything itself.

pub mod bill;
pub mod deadline;
pub mod error;
pub mod lifecycle;
pub mod machine;
pub mod metering;
pub mod money;
pub mod price;
pub mod round;
pub mod spec;
pub mod topology;
pub mod wire;

pub use error::FieldError;
