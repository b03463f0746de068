//! Group commit for job submissions: handlers queue their job on a bounded
//! channel and wait; one writer drains what has queued (up to
//! `BATCH_JOBS_MAX`) and commits it in one transaction, so one fsync serves
//! many submissions. A submission is answered only after its batch
//! committed. If the transaction fails, every job in it gets the error and
//! none is stored (a client retries with its idempotency key).

use std::sync::Arc;

use suanwang_store::{IdemOutcome, NewJob, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

pub const QUEUE_JOBS_MAX: usize = 8_192;
pub const BATCH_JOBS_MAX: usize = 1_024;
/// Tasks per batch: a batch of big jobs commits in bounded time.
pub const BATCH_TASKS_MAX: u64 = 200_000;
pub const WRITERS_MAX: usize = 16;

type Reply = oneshot::Sender<Result<IdemOutcome, Arc<StoreError>>>;

#[derive(Debug, Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<(NewJob, Reply)>,
}

impl GroupCommit {
    /// Starts `writers` writer tasks sharing one queue: while one commits
    /// (waits for its fsync), the next drains what queued meanwhile. SQLite
    /// has one writer at a time anyway, so it gets one; PostgreSQL commits
    /// concurrent transactions in parallel. They end when every
    /// `GroupCommit` clone is dropped and the queue is drained.
    pub fn start(
        store: Arc<dyn Store>,
        writers: usize,
        on_commit: impl Fn(usize) + Send + Sync + 'static,
    ) -> GroupCommit {
        assert!((1..=WRITERS_MAX).contains(&writers));
        let (queue, receiver) = mpsc::channel::<(NewJob, Reply)>(QUEUE_JOBS_MAX);
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let on_commit = Arc::new(on_commit);
        for _ in 0..writers {
            let store = store.clone();
            let receiver = receiver.clone();
            let on_commit = on_commit.clone();
            tokio::spawn(async move {
                let mut jobs: Vec<NewJob> = Vec::with_capacity(BATCH_JOBS_MAX);
                let mut replies: Vec<Reply> = Vec::with_capacity(BATCH_JOBS_MAX);
                loop {
                    {
                        let mut receiver = receiver.lock().await;
                        let Some((job, reply)) = receiver.recv().await else {
                            return;
                        };
                        let mut tasks = job.tasks;
                        jobs.push(job);
                        replies.push(reply);
                        while jobs.len() < BATCH_JOBS_MAX && tasks < BATCH_TASKS_MAX {
                            match receiver.try_recv() {
                                Ok((job, reply)) => {
                                    tasks += job.tasks;
                                    jobs.push(job);
                                    replies.push(reply);
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    commit(store.as_ref(), &mut jobs, &mut replies, on_commit.as_ref()).await;
                }
            });
        }
        GroupCommit { queue }
    }

    pub async fn submit(&self, job: NewJob) -> Result<IdemOutcome, Arc<StoreError>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((job, reply))
            .await
            .map_err(|_| Arc::new(StoreError::Corrupt("the commit writer stopped".into())))?;
        answer
            .await
            .map_err(|_| Arc::new(StoreError::Corrupt("the commit writer stopped".into())))?
    }
}

/// Commits one batch and answers every request in it.
async fn commit(
    store: &dyn Store,
    jobs: &mut Vec<NewJob>,
    replies: &mut Vec<Reply>,
    on_commit: &(dyn Fn(usize) + Send + Sync),
) {
    let started = std::time::Instant::now();
    let result = store.submit_batch(jobs).await;
    metrics::histogram!("suanwang_commit_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("suanwang_commit_batch_jobs").record(jobs.len() as f64);
    match result {
        Ok(outcomes) => {
            assert_eq!(outcomes.len(), replies.len(), "one outcome per job");
            on_commit(jobs.len());
            for (outcome, reply) in outcomes.into_iter().zip(replies.drain(..)) {
                // The client may have gone; its job is stored anyway.
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            tracing::error!(%error, jobs = jobs.len(), "group commit failed; nothing of the batch is stored");
            let error = Arc::new(error);
            for reply in replies.drain(..) {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
    jobs.clear();
}
