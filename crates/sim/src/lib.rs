//! suanwang sim: the digital twin. It runs the server's own pure cores —
//! the placement engine (`suanwang-place`, through `core::round::plan`),
//! the state machine (`core::machine`, applied to
//! `core::machine::model::Model`), deadlines and metering
//! (`core::metering`) — on a virtual clock, replaying real or synthetic
//! workloads, and compares placement policies side by side on identical
//! input.
//!
//! **Architecture invariant: no rule of the server is written again here.**
//! Whether a task is placed, retried, lost, requeued with its gang or
//! cancelled is decided by the same functions the server's store calls;
//! what a job may ask for is decided by `core::spec::validate_job`, what a
//! pool is by `core::spec::validate_pools`. The twin supplies only what the
//! network and the world would: time, arrivals, agents that run tasks for
//! their duration, heartbeats, and failures. *Rationale:* a model of
//! suanwang could drift from suanwang; a twin cannot, because there is
//! one copy of each rule.
//!
//! **Deterministic.** Same scenario and seed, same bytes of `report.json`:
//! every draw comes from seeded ChaCha8 streams or a seeded hash, maps are
//! ordered (`BTreeMap`), ties break by index, and no wall-clock time enters
//! the report.
//!
//! | module | what |
//! |---|---|
//! | [`scenario`] | the TOML schema, strict, every error naming its field |
//! | [`workload`] | loaders (synthetic, own CSV, Alibaba, SWF, Azure) and the seeded geography rules |
//! | [`setup`] | a scenario resolved: topology, sites, pools, failures, arrivals |
//! | [`policy`] | market, greedy, nearest, cheapest — all through the engine's feasibility |
//! | [`engine`] | the discrete-event loop driving the machine |
//! | [`report`] | `report.json` and the self-contained `report.html` |
//! | [`bench`] | the synthetic benchmark scenario |

pub mod bench;
pub mod engine;
pub mod error;
pub mod policy;
pub mod report;
pub mod scenario;
pub mod setup;
pub mod workload;

pub use engine::{Options, Outcome};
pub use error::SimError;
pub use policy::Policy;
pub use setup::Setup;

/// Runs every policy of `policies` on `setup` and builds the report.
/// `progress(policy index, arrived, total)` is called as it goes.
pub fn simulate(
    setup: &Setup,
    policies: &[Policy],
    options: Options,
    progress: &mut dyn FnMut(usize, u64, u64),
) -> (report::Report, Vec<Outcome>) {
    let outcomes: Vec<Outcome> = policies
        .iter()
        .enumerate()
        .map(|(i, policy)| {
            engine::run(setup, *policy, options, &mut |done, total| {
                progress(i, done, total)
            })
        })
        .collect();
    (report::build(setup, &outcomes), outcomes)
}
