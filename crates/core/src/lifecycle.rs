//! The task lifecycle as a pure state machine, and the job state derived
//! from its tasks. The stores apply exactly these transitions; bulk SQL
//! updates (placing a round, lapsing a lease) are the same transitions
//! written set-wise, and their tests compare against this module.
//!
//! ```text
//! pending ──place──▶ placed ──start──▶ running ──succeed──▶ succeeded
//!    ▲                  │                 │
//!    └──── retry ◀──────┴── fail / lapse ─┴──▶ failed | lost (no retries left)
//! any non-terminal ──cancel──▶ cancelled
//! pending ──deadline missed──▶ failed (whatever retries are left)
//! ```

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskState {
    Pending,
    Placed,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Lost,
}

impl TaskState {
    pub const ALL: [TaskState; 7] = [
        TaskState::Pending,
        TaskState::Placed,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
        TaskState::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Placed => "placed",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Lost => "lost",
        }
    }

    pub fn parse(text: &str) -> Option<TaskState> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled | TaskState::Lost
        )
    }

    /// Placed and running tasks hold units of their pool.
    pub fn holds_capacity(self) -> bool {
        matches!(self, TaskState::Placed | TaskState::Running)
    }
}

/// The state a site reports for one of its attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReportedState {
    Running,
    Succeeded,
    Failed,
}

impl ReportedState {
    pub const ALL: [ReportedState; 3] = [
        ReportedState::Running,
        ReportedState::Succeeded,
        ReportedState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportedState::Running => "running",
            ReportedState::Succeeded => "succeeded",
            ReportedState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<ReportedState> {
        ReportedState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

/// What a job's event records. A status report's event is named by the
/// task's state after it (`EventKind::from(TaskState)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    Submitted,
    Placed,
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// A task's site lost its lease.
    Lost,
    /// A task ended or went back with its gang.
    Gang,
    /// Waiting tasks failed at their job's deadline.
    Deadline,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::Submitted,
        EventKind::Placed,
        EventKind::Pending,
        EventKind::Running,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::Cancelled,
        EventKind::Lost,
        EventKind::Gang,
        EventKind::Deadline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Submitted => "submitted",
            EventKind::Placed => "placed",
            EventKind::Pending => "pending",
            EventKind::Running => "running",
            EventKind::Succeeded => "succeeded",
            EventKind::Failed => "failed",
            EventKind::Cancelled => "cancelled",
            EventKind::Lost => "lost",
            EventKind::Gang => "gang",
            EventKind::Deadline => "deadline",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl From<TaskState> for EventKind {
    fn from(state: TaskState) -> EventKind {
        match state {
            TaskState::Pending => EventKind::Pending,
            TaskState::Placed => EventKind::Placed,
            TaskState::Running => EventKind::Running,
            TaskState::Succeeded => EventKind::Succeeded,
            TaskState::Failed => EventKind::Failed,
            TaskState::Cancelled => EventKind::Cancelled,
            TaskState::Lost => EventKind::Lost,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskEvent {
    /// The scheduler placed the task: a new attempt begins.
    Place,
    /// The site reports the attempt started.
    Start,
    Succeed,
    Fail,
    /// The site's lease lapsed while the attempt was placed or running.
    LeaseLapsed,
    Cancel,
    /// Another member of its gang went back to pending: a gang runs whole or
    /// not at all, so this attempt ends too and the gang is placed again
    /// (while retries are left; a gang's members move in lockstep).
    Requeue,
    /// A service's replica ended by itself (exit code 0): replicas stay up,
    /// so it waits to be placed again while retries are left, and has
    /// succeeded only when none are.
    ReplicaEnded,
    /// A waiting task can no longer finish by its job's deadline
    /// (`deadline::verdict`): it fails for good, whatever retries are left.
    DeadlineMissed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    pub state: TaskState,
    /// Attempts begun so far; the current attempt when placed or running.
    pub attempt: u32,
    /// Attempts allowed beyond the first.
    pub retries: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task is {state:?}: {event:?} does not apply")]
pub struct Illegal {
    pub state: TaskState,
    pub event: TaskEvent,
}

impl Task {
    pub fn new(retries: u32) -> Task {
        Task {
            state: TaskState::Pending,
            attempt: 0,
            retries,
        }
    }

    fn retries_left(&self) -> bool {
        self.attempt <= self.retries
    }

    /// An attempt that ended: pending again while retries are left,
    /// otherwise `ended` for good.
    fn again_or(self, ended: TaskState) -> Task {
        Task {
            state: if self.retries_left() {
                TaskState::Pending
            } else {
                ended
            },
            ..self
        }
    }

    /// The state after `event`, or why it does not apply. A finished
    /// attempt that fails (or whose site vanishes) goes back to pending while
    /// retries are left; the next `Place` starts a new attempt.
    pub fn apply(self, event: TaskEvent) -> Result<Task, Illegal> {
        use TaskEvent as E;
        use TaskState as S;
        let illegal = Illegal {
            state: self.state,
            event,
        };
        let next = match (self.state, event) {
            (S::Pending, E::Place) => Task {
                state: S::Placed,
                attempt: self.attempt + 1,
                ..self
            },
            (S::Placed, E::Start) => Task {
                state: S::Running,
                ..self
            },
            // A short task may finish before its start report arrives.
            (S::Placed | S::Running, E::Succeed) => Task {
                state: S::Succeeded,
                ..self
            },
            (S::Placed | S::Running, E::Fail) => self.again_or(S::Failed),
            (S::Placed | S::Running, E::LeaseLapsed) => self.again_or(S::Lost),
            (S::Placed | S::Running, E::Requeue) => self.again_or(S::Cancelled),
            (S::Placed | S::Running, E::ReplicaEnded) => self.again_or(S::Succeeded),
            (S::Pending, E::DeadlineMissed) => Task {
                state: S::Failed,
                ..self
            },
            (S::Pending | S::Placed | S::Running, E::Cancel) => Task {
                state: S::Cancelled,
                ..self
            },
            _ => return Err(illegal),
        };
        debug_assert!(next.attempt >= self.attempt);
        Ok(next)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobState {
    Pending,
    Placed,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Placed => "placed",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub const ALL: [JobState; 6] = [
        JobState::Pending,
        JobState::Placed,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// Task counts of one job, by state, in `TaskState::ALL` order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts(pub [u64; 7]);

impl Counts {
    pub fn get(&self, state: TaskState) -> u64 {
        self.0[state as usize]
    }

    pub fn add(&mut self, state: TaskState, n: u64) {
        self.0[state as usize] += n;
    }

    /// Takes `n` tasks out of `state`; there must be that many.
    pub fn remove(&mut self, state: TaskState, n: u64) {
        let count = &mut self.0[state as usize];
        *count = count
            .checked_sub(n)
            .unwrap_or_else(|| panic!("{n} {} tasks removed from {count}", state.as_str()));
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// The job's state from its tasks' states.
pub fn job_state(counts: &Counts, cancel_requested: bool) -> JobState {
    use TaskState as S;
    let total = counts.total();
    let terminal: u64 = [S::Succeeded, S::Failed, S::Cancelled, S::Lost]
        .into_iter()
        .map(|s| counts.get(s))
        .sum();
    if cancel_requested {
        return JobState::Cancelled;
    }
    if total > 0 && terminal == total {
        return if counts.get(S::Succeeded) == total {
            JobState::Succeeded
        } else if counts.get(S::Cancelled) == total {
            JobState::Cancelled
        } else {
            JobState::Failed
        };
    }
    if counts.get(S::Running) + counts.get(S::Succeeded) > 0 {
        JobState::Running
    } else if counts.get(S::Placed) > 0 {
        JobState::Placed
    } else {
        JobState::Pending
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event() -> impl Strategy<Value = TaskEvent> {
        prop_oneof![
            Just(TaskEvent::Place),
            Just(TaskEvent::Start),
            Just(TaskEvent::Succeed),
            Just(TaskEvent::Fail),
            Just(TaskEvent::LeaseLapsed),
            Just(TaskEvent::Cancel),
            Just(TaskEvent::Requeue),
            Just(TaskEvent::ReplicaEnded),
            Just(TaskEvent::DeadlineMissed),
        ]
    }

    proptest! {
        /// Whatever happens, a task never runs more than retries + 1 attempts,
        /// attempts never decrease, and terminal states are final.
        #[test]
        fn attempts_are_bounded(retries in 0u32..5, events in proptest::collection::vec(event(), 0..60)) {
            let mut task = Task::new(retries);
            for event in events {
                match task.apply(event) {
                    Ok(next) => {
                        prop_assert!(!task.state.is_terminal());
                        prop_assert!(next.attempt >= task.attempt);
                        prop_assert!(next.attempt <= retries + 1);
                        task = next;
                    }
                    Err(illegal) => prop_assert_eq!(illegal.state, task.state),
                }
            }
        }
    }

    #[test]
    fn retries_then_failure() {
        let mut task = Task::new(1);
        for expect in [TaskState::Pending, TaskState::Failed] {
            task = task.apply(TaskEvent::Place).unwrap();
            task = task.apply(TaskEvent::Start).unwrap();
            task = task.apply(TaskEvent::Fail).unwrap();
            assert_eq!(task.state, expect);
        }
        assert_eq!(task.attempt, 2);
        assert!(task.apply(TaskEvent::Place).is_err());
    }

    #[test]
    fn a_requeued_gang_member_waits_while_retries_are_left() {
        let running = |attempt| Task {
            state: TaskState::Running,
            attempt,
            retries: 1,
        };
        let requeued = running(1).apply(TaskEvent::Requeue).unwrap();
        assert_eq!((requeued.state, requeued.attempt), (TaskState::Pending, 1));
        let last = running(2).apply(TaskEvent::Requeue).unwrap();
        assert_eq!(last.state, TaskState::Cancelled);
        assert!(
            Task::new(1).apply(TaskEvent::Requeue).is_err(),
            "pending: nothing to end"
        );
    }

    #[test]
    fn a_service_replica_is_started_again_while_retries_are_left() {
        let mut task = Task::new(1);
        for expect in [TaskState::Pending, TaskState::Succeeded] {
            task = task.apply(TaskEvent::Place).unwrap();
            task = task.apply(TaskEvent::Start).unwrap();
            task = task.apply(TaskEvent::ReplicaEnded).unwrap();
            assert_eq!(task.state, expect);
        }
        assert_eq!(task.attempt, 2);
    }

    #[test]
    fn a_waiting_task_fails_for_good_at_its_deadline() {
        // (task, expected state after DeadlineMissed; None = does not apply).
        let task = |state, attempt| Task {
            state,
            attempt,
            retries: 3,
        };
        let table = [
            (task(TaskState::Pending, 0), Some(TaskState::Failed)),
            (task(TaskState::Pending, 2), Some(TaskState::Failed)),
            (task(TaskState::Placed, 1), None),
            (task(TaskState::Running, 1), None),
            (task(TaskState::Succeeded, 1), None),
            (task(TaskState::Cancelled, 0), None),
        ];
        for (before, expect) in table {
            let after = before.apply(TaskEvent::DeadlineMissed).ok();
            assert_eq!(after.map(|t| t.state), expect, "{before:?}");
            if let Some(after) = after {
                assert_eq!(after.attempt, before.attempt, "no new attempt");
            }
        }
    }

    #[test]
    fn job_state_from_counts() {
        let check = |pairs: &[(TaskState, u64)], cancel: bool, expect: JobState| {
            let mut counts = Counts::default();
            for &(state, n) in pairs {
                counts.add(state, n);
            }
            assert_eq!(job_state(&counts, cancel), expect, "{pairs:?}");
        };
        check(&[(TaskState::Pending, 4)], false, JobState::Pending);
        check(
            &[(TaskState::Pending, 3), (TaskState::Placed, 1)],
            false,
            JobState::Placed,
        );
        check(
            &[(TaskState::Pending, 3), (TaskState::Succeeded, 1)],
            false,
            JobState::Running,
        );
        check(&[(TaskState::Succeeded, 4)], false, JobState::Succeeded);
        check(
            &[(TaskState::Succeeded, 3), (TaskState::Lost, 1)],
            false,
            JobState::Failed,
        );
        check(&[(TaskState::Running, 3)], true, JobState::Cancelled);
    }
}
