//! The agent's durable state: the attempts it started (with their executor
//! handles) and the reports not yet acknowledged by the server. One JSON
//! file, replaced atomically (write, fsync, rename) on every change, so a
//! crash leaves either the old or the new state, never half of one.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use suanwang_api::{StatusReport, UsageReport};

use crate::executor::Handle;

/// Attempts the agent tracks at once; far above any site's slots.
pub const ATTEMPTS_MAX: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttemptKey {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub pool: String,
    pub units: u64,
    pub handle: Handle,
    /// When it started, by the wall clock: for people; no duration is
    /// measured from it (a wall clock steps).
    pub started_at_ms: i64,
    /// How long it has run, by the agent's monotonic clock, as of the last
    /// poll: what interim usage records, the wall-time limit and the
    /// agent's own measure of an attempt that ended unreadably are made of.
    /// Kept in the state file, so that a restarted agent continues from it
    /// (see [`Attempt::measure`]). Absent in a file from before it was kept:
    /// the wall time already reported.
    #[serde(default)]
    pub elapsed_ms: u64,
    /// Where this agent process began measuring: its monotonic instant and
    /// `elapsed_ms` then. Not kept: an instant means nothing to another
    /// process.
    #[serde(skip)]
    pub resumed: Option<(std::time::Instant, u64)>,
    /// Set once the final status is queued for the server.
    pub finished: bool,
    /// Set when the agent stopped it because it is no longer assigned.
    pub stopped: bool,
    pub wall_time_max_ms: u64,
    /// The `seq` of the attempt's next usage record.
    #[serde(default)]
    pub usage_seq: u32,
    /// Wall time already reported in interim usage records (long attempts
    /// are metered as they run, so a lost agent loses at most one interval).
    #[serde(default)]
    pub usage_reported_ms: u64,
}

impl Attempt {
    /// A new attempt, measured from `now`.
    pub fn new(
        pool: String,
        units: u64,
        handle: Handle,
        started_at_ms: i64,
        now: std::time::Instant,
    ) -> Attempt {
        Attempt {
            pool,
            units,
            handle,
            started_at_ms,
            elapsed_ms: 0,
            resumed: Some((now, 0)),
            finished: false,
            stopped: false,
            wall_time_max_ms: 0,
            usage_seq: 0,
            usage_reported_ms: 0,
        }
    }

    /// Its run time at `now`, by the monotonic clock: what this process
    /// measured since it began measuring, on top of what was measured
    /// before. Each reading is from that start, never a sum of per-tick
    /// differences, so no rounding accumulates.
    ///
    /// Across a restart of the agent the attempt may have gone on running;
    /// the time between the last state saved and the first poll of the new
    /// process is not counted (no clock both processes share is monotonic).
    /// The agent undercounts then, never overcounts: the server rejects a
    /// wall time beyond what it saw, and a tenant is never billed for an
    /// agent's outage. An executor's own measure of a finished attempt
    /// (the process executor's kernel clock, Slurm's elapsed time) spans
    /// the restart, and is what its last usage record covers.
    pub fn measure(&mut self, now: std::time::Instant) -> u64 {
        match self.resumed {
            Some((since, base)) => {
                let more = u64::try_from(now.saturating_duration_since(since).as_millis())
                    .unwrap_or(u64::MAX);
                self.elapsed_ms = self.elapsed_ms.max(base.saturating_add(more));
            }
            None => {
                // First poll of this process: from what was kept (a state
                // from before `elapsed_ms` was kept has what was reported).
                self.elapsed_ms = self.elapsed_ms.max(self.usage_reported_ms);
                self.resumed = Some((now, self.elapsed_ms));
            }
        }
        self.elapsed_ms
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    pub statuses: Vec<StatusReport>,
    pub usage: Vec<UsageReport>,
}

impl Outbox {
    /// Reports waiting: statuses and usage records.
    pub fn len(&self) -> usize {
        self.statuses.len() + self.usage.len()
    }

    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty() && self.usage.is_empty()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    #[serde(with = "attempts")]
    pub attempts: BTreeMap<AttemptKey, Attempt>,
    pub outbox: Outbox,
}

/// JSON objects need string keys: attempts are stored as a list.
mod attempts {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Attempt, AttemptKey};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<AttemptKey, Attempt>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        map.iter().collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<AttemptKey, Attempt>, D::Error> {
        Ok(Vec::<(AttemptKey, Attempt)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path) -> anyhow::Result<StateFile> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(StateFile {
            path: dir.join("state.json"),
        })
    }

    pub fn load(&self) -> anyhow::Result<State> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("reading {}", self.path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(error) => Err(error).with_context(|| format!("reading {}", self.path.display())),
        }
    }

    pub fn save(&self, state: &State) -> anyhow::Result<()> {
        assert!(
            state.attempts.len() <= ATTEMPTS_MAX,
            "attempts are bounded by the site's slots"
        );
        let temporary = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec(state)?;
        {
            let mut file = std::fs::File::create(&temporary)
                .with_context(|| format!("writing {}", temporary.display()))?;
            file.write_all(&text)?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &self.path)?;
        if let Some(dir) = self.path.parent() {
            // The rename is durable only once the directory is synced.
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = std::env::temp_dir().join(format!("suanwang-state-{}", std::process::id()));
        let file = StateFile::new(&dir).unwrap();
        assert_eq!(file.load().unwrap(), State::default());
        let mut state = State::default();
        state.attempts.insert(
            AttemptKey {
                job: "j".into(),
                task: 3,
                attempt: 1,
            },
            Attempt {
                pool: "p".into(),
                units: 2,
                handle: Handle("pid:1:2".into()),
                started_at_ms: 5,
                elapsed_ms: 130_000,
                resumed: None,
                finished: false,
                stopped: false,
                wall_time_max_ms: 9,
                usage_seq: 2,
                usage_reported_ms: 120_000,
            },
        );
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), state);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn run_time_is_monotonic_and_continues_across_a_restart() {
        let t0 = std::time::Instant::now();
        let ms = std::time::Duration::from_millis;
        let mut attempt = Attempt::new("p".into(), 1, Handle("h".into()), 5, t0);
        // Readings from the start: no rounding piles up tick after tick.
        let mut now = t0;
        for _ in 0..1_000 {
            now += std::time::Duration::from_micros(1_500);
            attempt.measure(now);
        }
        assert_eq!(attempt.measure(now), 1_500);
        // A reading from before the last one takes nothing back.
        assert_eq!(attempt.measure(t0), 1_500);
        assert_eq!(attempt.measure(now + ms(500)), 2_000);
        // What a restarted agent loads: the run time kept, no instant; it
        // continues from there with its own clock.
        let text = serde_json::to_string(&attempt).unwrap();
        let mut loaded: Attempt = serde_json::from_str(&text).unwrap();
        assert_eq!((loaded.elapsed_ms, loaded.resumed), (2_000, None));
        let later = now + ms(60_000);
        assert_eq!(loaded.measure(later), 2_000);
        assert_eq!(loaded.measure(later + ms(250)), 2_250);
        // A state file from before the run time was kept: from what was
        // reported.
        let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
        old.as_object_mut().unwrap().remove("elapsed_ms");
        old["usage_reported_ms"] = 1_000.into();
        let mut old: Attempt = serde_json::from_value(old).unwrap();
        assert_eq!(old.measure(later), 1_000);
    }
}
