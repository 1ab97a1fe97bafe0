//! Group commit: callers hand over one write each and wait; a writer task takes everything waiting
//! (up to a bound) and writes it in one transaction, so one commit (an fsync) serves them all.
//! Under light load a group is one item and nothing waits for company; under heavy load the groups
//! grow by themselves.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

type Pending<I, O> = (I, oneshot::Sender<Result<O, String>>);

/// The handle callers submit through; cheap to clone.
pub struct GroupCommit<I, O> {
    tx: mpsc::Sender<Pending<I, O>>,
}

impl<I, O> Clone for GroupCommit<I, O> {
    fn clone(&self) -> Self {
        GroupCommit {
            tx: self.tx.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> GroupCommit<I, O> {
    /// Starts `writers` tasks (1 for SQLite's single writer). `write` gets a group in submission
    /// order and answers one result per item, in the same order. The tasks end when every handle
    /// is dropped.
    pub fn start<F, Fut>(max_group: usize, writers: usize, write: F) -> GroupCommit<I, O>
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<O, String>>> + Send,
    {
        let (tx, rx) = mpsc::channel::<Pending<I, O>>(max_group * 16);
        let rx = Arc::new(Mutex::new(rx));
        let write = Arc::new(write);
        for _ in 0..writers.max(1) {
            let (rx, write) = (rx.clone(), write.clone());
            tokio::spawn(async move {
                while let Some(group) = next_group(&rx, max_group).await {
                    let (items, replies): (Vec<I>, Vec<_>) = group.into_iter().unzip();
                    let count = items.len();
                    let mut results = write(items).await.into_iter();
                    for reply in replies {
                        let result = results.next().unwrap_or_else(|| {
                            Err(format!("the writer answered fewer than {count} results"))
                        });
                        let _ = reply.send(result);
                    }
                }
            });
        }
        GroupCommit { tx }
    }

    /// Items handed over and not yet picked up by a writer.
    pub fn waiting(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Hands `item` to a writer and waits for its result.
    pub async fn submit(&self, item: I) -> Result<O, String> {
        let (reply, answer) = oneshot::channel();
        let stopped = || "the writer has stopped".to_owned();
        self.tx.send((item, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Waits for one item, then takes whatever else is already waiting, up to `max`.
async fn next_group<T>(rx: &Mutex<mpsc::Receiver<T>>, max: usize) -> Option<Vec<T>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut group = vec![first];
    while group.len() < max {
        match rx.try_recv() {
            Ok(next) => group.push(next),
            Err(_) => break,
        }
    }
    Some(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_submitted_together_share_a_group_and_get_their_own_answers() {
        let groups = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = groups.clone();
        let writer = GroupCommit::start(8, 1, move |items: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().map(|mut g| g.push(items.len())).ok();
                items
                    .into_iter()
                    .map(|n| {
                        if n == 3 {
                            Err("three".into())
                        } else {
                            Ok(n * 10)
                        }
                    })
                    .collect()
            }
        });
        let answers = futures::future::join_all((0..20).map(|n| writer.submit(n))).await;
        for (n, answer) in answers.into_iter().enumerate() {
            let expected = if n == 3 {
                Err("three".to_owned())
            } else {
                Ok(n as u32 * 10)
            };
            assert_eq!(answer, expected);
        }
        let groups = groups.lock().map(|g| g.clone()).unwrap_or_default();
        assert_eq!(groups.iter().sum::<usize>(), 20);
        assert!(groups.iter().all(|&n| n <= 8), "bounded: {groups:?}");
        assert!(groups.len() < 20, "some items shared a commit: {groups:?}");
    }
}
