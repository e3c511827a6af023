//! The outbox rows waiting for the outbox worker: acks handed over by the
//! processor, one queue per mailbox, and rows claimed from the store, served
//! in turn. A mailbox working through a backlog fills only its own queue, so
//! the ack for a fresh mail in another mailbox waits for one send per busy
//! queue, not behind the backlog's acks (a shared FIFO held it 2.5 s behind
//! 1000 mails on 2 cores; bench/ack-latency.sh).
//!
//! Written here because tokio's channels are FIFO over all senders.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::store::OutboxRow;
use crate::types::MailboxName;

/// Where a waiting row came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Queue {
    /// Handed over by the processor for a message from this mailbox
    /// (`None`: a message from no mailbox).
    Mailbox(Option<MailboxName>),
    /// Claimed from the store: due reminders and digests, retries, acks
    /// stored while their mailbox's queue was full.
    Store,
}

#[derive(Debug)]
struct Waiting {
    queue: Queue,
    rows: VecDeque<OutboxRow>,
    /// Rows queued plus places reserved for rows still being committed.
    taken: usize,
}

/// Shared by the processor (which hands acks over) and the outbox worker.
#[derive(Debug)]
pub(super) struct Handover {
    per_mailbox: usize,
    /// In turn order: the queue served last goes to the back.
    queues: Mutex<VecDeque<Waiting>>,
    ready: Notify,
}

impl Handover {
    /// At most `per_mailbox` acks wait (or are reserved) per mailbox.
    pub(super) fn new(per_mailbox: usize) -> Arc<Self> {
        Arc::new(Self {
            per_mailbox,
            queues: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Waiting>> {
        // The lock is never held across a panic-prone call; a poisoned one
        // still holds consistent queues.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn waiting<'q>(queues: &'q mut VecDeque<Waiting>, queue: &Queue) -> &'q mut Waiting {
        let i = match queues.iter().position(|w| &w.queue == queue) {
            Some(i) => i,
            None => {
                queues.push_back(Waiting {
                    queue: queue.clone(),
                    rows: VecDeque::new(),
                    taken: 0,
                });
                queues.len() - 1
            }
        };
        &mut queues[i]
    }

    /// A place for one ack from `mailbox`, or `None` when its queue is full
    /// (the ack is then stored pending and claimed later).
    pub(super) fn try_reserve(self: &Arc<Self>, mailbox: Option<&MailboxName>) -> Option<Place> {
        let queue = Queue::Mailbox(mailbox.cloned());
        let mut queues = self.lock();
        let w = Self::waiting(&mut queues, &queue);
        if w.taken >= self.per_mailbox {
            return None;
        }
        w.taken += 1;
        Some(Place {
            handover: Arc::clone(self),
            queue: Some(queue),
        })
    }

    /// Rows claimed from the store, to be served in their turn.
    pub(super) fn put_claimed(&self, rows: Vec<OutboxRow>) {
        if rows.is_empty() {
            return;
        }
        {
            let mut queues = self.lock();
            let w = Self::waiting(&mut queues, &Queue::Store);
            w.taken += rows.len();
            w.rows.extend(rows);
        }
        self.ready.notify_one();
    }

    /// Whether claimed rows are still waiting.
    pub(super) fn holds_claimed(&self) -> bool {
        self.lock()
            .iter()
            .any(|w| w.queue == Queue::Store && !w.rows.is_empty())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lock().iter().all(|w| w.rows.is_empty())
    }

    /// The next row in turn, and the queue it came from.
    pub(super) fn pop(&self) -> Option<(OutboxRow, Queue)> {
        let mut queues = self.lock();
        let i = queues.iter().position(|w| !w.rows.is_empty())?;
        let mut w = queues.remove(i)?;
        let row = w.rows.pop_front()?;
        w.taken -= 1;
        let queue = w.queue.clone();
        queues.push_back(w);
        Some((row, queue))
    }

    /// Resolves when a row may have been added since the last call.
    pub(super) async fn ready(&self) {
        self.ready.notified().await;
    }

    fn give_back(&self, queue: &Queue) {
        let mut queues = self.lock();
        let w = Self::waiting(&mut queues, queue);
        w.taken = w.taken.saturating_sub(1);
    }
}

/// A reserved place in a mailbox's queue. Dropped unused, it is free again.
#[derive(Debug)]
pub(super) struct Place {
    handover: Arc<Handover>,
    /// `None` once used.
    queue: Option<Queue>,
}

impl Place {
    pub(super) fn send(mut self, row: OutboxRow) {
        if let Some(queue) = self.queue.take() {
            Handover::waiting(&mut self.handover.lock(), &queue)
                .rows
                .push_back(row);
            self.handover.ready.notify_one();
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            self.handover.give_back(&queue);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OutboxId, OutboxKind, OutboxStatus};

    fn row(id: i64) -> OutboxRow {
        OutboxRow {
            id: OutboxId(id),
            kind: OutboxKind::Ack,
            message_id: format!("<{id}@test>"),
            to: vec!["a@example.cn".into()],
            subject: String::new(),
            envelope_from: "kjt@example.cn".into(),
            raw: Vec::new(),
            related_message: None,
            dedupe_key: id.to_string(),
            status: OutboxStatus::Sending,
            attempts: 1,
            next_attempt_at: chrono::Utc::now(),
            lease_owner: None,
            lease_until: None,
            last_error: None,
            created_at: chrono::Utc::now(),
            sent_at: None,
        }
    }

    fn ids(h: &Handover) -> Vec<i64> {
        std::iter::from_fn(|| h.pop().map(|(r, _)| r.id.0)).collect()
    }

    #[test]
    fn a_fresh_mailbox_is_served_between_a_backlogs_acks() {
        let h = Handover::new(4);
        let (backlog, fresh) = (MailboxName::from("backlog"), MailboxName::from("fresh"));
        for id in 1..=4 {
            h.try_reserve(Some(&backlog)).unwrap().send(row(id));
        }
        h.put_claimed(vec![row(10), row(11)]);
        h.try_reserve(Some(&fresh)).unwrap().send(row(20));
        assert_eq!(ids(&h), [1, 10, 20, 2, 11, 3, 4]);
    }

    #[test]
    fn a_full_mailbox_queue_refuses_only_that_mailbox() {
        let h = Handover::new(2);
        let (backlog, fresh) = (MailboxName::from("backlog"), MailboxName::from("fresh"));
        let kept = h.try_reserve(Some(&backlog)).unwrap();
        h.try_reserve(Some(&backlog)).unwrap().send(row(1));
        assert!(h.try_reserve(Some(&backlog)).is_none());
        assert!(h.try_reserve(Some(&fresh)).is_some());
        // A place dropped unused, and a row taken, free their places.
        drop(kept);
        assert!(h.try_reserve(Some(&backlog)).is_some());
        assert_eq!(ids(&h), [1]);
        let _a = h.try_reserve(Some(&backlog)).unwrap();
        let _b = h.try_reserve(Some(&backlog)).unwrap();
        assert!(h.try_reserve(Some(&backlog)).is_none());
    }

    #[test]
    fn claimed_rows_are_reported_until_taken() {
        let h = Handover::new(1);
        assert!(h.is_empty() && !h.holds_claimed());
        h.put_claimed(vec![row(1)]);
        assert!(!h.is_empty() && h.holds_claimed());
        assert_eq!(h.pop().map(|(r, q)| (r.id.0, q)), Some((1, Queue::Store)));
        assert!(h.is_empty() && !h.holds_claimed());
    }
}
