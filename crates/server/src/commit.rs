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

type Reply = oneshot::Sender<Result<IdemOutcome, Arc<StoreError>>>;

#[derive(Debug, Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<(NewJob, Reply)>,
}

impl GroupCommit {
    /// Starts the writer task. It ends when every `GroupCommit` clone is
    /// dropped and the queue is drained.
    pub fn start(store: Arc<dyn Store>, on_commit: impl Fn(usize) + Send + 'static) -> GroupCommit {
        let (queue, mut receiver) = mpsc::channel::<(NewJob, Reply)>(QUEUE_JOBS_MAX);
        tokio::spawn(async move {
            let mut jobs: Vec<NewJob> = Vec::with_capacity(BATCH_JOBS_MAX);
            let mut replies: Vec<Reply> = Vec::with_capacity(BATCH_JOBS_MAX);
            while let Some((job, reply)) = receiver.recv().await {
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
                let started = std::time::Instant::now();
                let result = store.submit_batch(&jobs).await;
                metrics::histogram!("suanwang_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
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
        });
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
