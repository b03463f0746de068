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
    pub started_at_ms: i64,
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
}
