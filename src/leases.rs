//! Several instances on one database share the mailboxes: each mailbox is
//! read by the one instance holding its lease (a row in `mailbox_leases`),
//! renewed every few seconds while the instance lives. With M mailboxes and
//! K live instances each takes at most ⌈M/K⌉, so the work spreads; with one
//! mailbox the others are hot standbys. A dead instance stops renewing, its
//! leases run out, and the others take its mailboxes within
//! [`LeaseTimes::lease`] + [`LeaseTimes::tick`] (25 s by default).
//!
//! A lease only decides who reads; it is not what keeps a message from being
//! recorded twice (the store drops a second copy at commit), so an instance
//! paused past its lease costs a little double work, never a duplicate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::model::{Origin, RawMessage};
use crate::source::{MailboxSource, SourceError};
use crate::store::{Store, StoreError};
use crate::types::MailboxName;

/// How long a lease lasts and how often it is renewed.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTimes {
    pub lease: Duration,
    pub tick: Duration,
    /// How long an instance starting on a shared database waits after saying
    /// it is alive, so that instances started together split the mailboxes
    /// at once; and how often one short of its share looks again for the
    /// mailboxes another hands over.
    pub settle: Duration,
}

impl Default for LeaseTimes {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(20),
            tick: Duration::from_secs(5),
            settle: Duration::from_secs(1),
        }
    }
}

/// Builds a mailbox's source afresh, so one taken over from another instance
/// starts from what that instance committed.
pub type MakeSource =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Box<dyn MailboxSource>, SourceError>> + Send + Sync>;

/// Whether this instance holds a mailbox's lease, as the [`Leases`] task
/// last found it.
#[derive(Debug, Default)]
struct Held(AtomicBool);

impl Held {
    fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
    fn set(&self, v: bool) {
        self.0.store(v, Ordering::Release);
    }
}

/// The lease keeper of one instance: takes, renews, shares and gives back
/// the leases on its mailboxes.
pub struct Leases {
    store: Store,
    clock: Arc<dyn Clock>,
    owner: String,
    times: LeaseTimes,
    mailboxes: Vec<(MailboxName, Arc<Held>)>,
    changed: Arc<Notify>,
}

impl Leases {
    pub fn new(store: Store, clock: Arc<dyn Clock>, owner: String, times: LeaseTimes) -> Self {
        Self {
            store,
            clock,
            owner,
            times,
            mailboxes: Vec::new(),
            changed: Arc::new(Notify::new()),
        }
    }

    /// `source` read only while this instance holds its mailbox's lease.
    pub fn wrap(&mut self, source: Box<dyn MailboxSource>, make: MakeSource) -> LeasedSource {
        let held = Arc::new(Held::default());
        self.mailboxes.push((source.name().clone(), held.clone()));
        LeasedSource {
            name: source.name().clone(),
            inner: Some(source),
            make,
            held,
            changed: self.changed.clone(),
            tick: self.times.tick,
        }
    }

    /// Mailboxes this instance holds now.
    pub fn held(&self) -> Vec<MailboxName> {
        self.mailboxes
            .iter()
            .filter(|(_, h)| h.get())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Says this instance is alive, then waits [`LeaseTimes::settle`] for
    /// others starting with it to say so too: without that the first to
    /// tick takes every mailbox and hands half over only a tick later.
    pub async fn announce(&self) -> Result<(), StoreError> {
        self.store
            .instance_alive(&self.owner, self.clock.now())
            .await?;
        tokio::time::sleep(self.times.settle).await;
        Ok(())
    }

    /// One round: say this instance is alive, renew what it holds, give back
    /// what is over its share, take free or expired mailboxes up to it.
    /// True when it holds less than the fewest an instance should (another
    /// has yet to hand some over).
    pub async fn tick(&self) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(self.times.lease).unwrap_or(chrono::Duration::MAX);
        self.store.instance_alive(&self.owner, now).await?;
        let alive = self.store.instances_alive(now - lease).await?.max(1) as usize;
        let share = self.mailboxes.len().div_ceil(alive);
        let until = now + lease;
        let mut held = 0;
        for (name, h) in &self.mailboxes {
            if !h.get() {
                continue;
            }
            if self
                .store
                .lease_mailbox(name, &self.owner, until, now)
                .await?
            {
                held += 1;
            } else {
                warn!(mailbox = %name, owner = %self.owner, "mailbox lease lost to another instance");
                h.set(false);
                self.changed.notify_waiters();
            }
        }
        for (name, h) in self.mailboxes.iter().rev() {
            if held <= share {
                break;
            }
            if h.get() {
                self.store.release_mailbox(name, &self.owner).await?;
                h.set(false);
                held -= 1;
                info!(mailbox = %name, owner = %self.owner, share, "mailbox handed to another instance");
                self.changed.notify_waiters();
            }
        }
        for (name, h) in &self.mailboxes {
            if held >= share {
                break;
            }
            if !h.get()
                && self
                    .store
                    .lease_mailbox(name, &self.owner, until, now)
                    .await?
            {
                h.set(true);
                held += 1;
                info!(mailbox = %name, owner = %self.owner, "mailbox lease taken");
                self.changed.notify_waiters();
            }
        }
        Ok(held < self.mailboxes.len() / alive)
    }

    /// Ticks until `cancel` fires, then gives every lease back so another
    /// instance takes over at once. While the database cannot be reached no
    /// mailbox is read: the lease may have passed to another instance.
    pub async fn run(&self, cancel: CancellationToken) {
        loop {
            let short = match self.tick().await {
                Ok(short) => short,
                Err(e) => {
                    warn!(owner = %self.owner, error = %e, "cannot renew mailbox leases; reading none until the database answers");
                    self.drop_all();
                    false
                }
            };
            let next = if short {
                self.times.settle
            } else {
                self.times.tick
            };
            tokio::select! {
                () = tokio::time::sleep(next) => {}
                () = cancel.cancelled() => break,
            }
        }
        for (name, h) in &self.mailboxes {
            if h.get() {
                h.set(false);
                if let Err(e) = self.store.release_mailbox(name, &self.owner).await {
                    warn!(mailbox = %name, error = %e, "cannot give the mailbox lease back; it runs out by itself");
                }
            }
        }
        self.changed.notify_waiters();
    }

    fn drop_all(&self) {
        for (_, h) in &self.mailboxes {
            h.set(false);
        }
        self.changed.notify_waiters();
    }
}

/// A mailbox source read only while its lease is held. Without the lease it
/// holds nothing new, waits for the lease keeper, and keeps no connection.
pub struct LeasedSource {
    name: MailboxName,
    inner: Option<Box<dyn MailboxSource>>,
    make: MakeSource,
    held: Arc<Held>,
    changed: Arc<Notify>,
    tick: Duration,
}

#[async_trait::async_trait]
impl MailboxSource for LeasedSource {
    fn name(&self) -> &MailboxName {
        &self.name
    }

    async fn fetch(&mut self, max: usize) -> Result<Vec<RawMessage>, SourceError> {
        if !self.held.get() {
            if let Some(mut gone) = self.inner.take() {
                gone.reset().await;
            }
            return Ok(Vec::new());
        }
        let inner = match &mut self.inner {
            Some(s) => s,
            None => self.inner.insert((self.make)().await?),
        };
        inner.fetch(max).await
    }

    async fn finish(&mut self, committed: &[Origin]) -> Result<(), SourceError> {
        match &mut self.inner {
            Some(s) => s.finish(committed).await,
            None => Ok(()),
        }
    }

    fn skip(&mut self, origin: &Origin) {
        if let Some(s) = &mut self.inner {
            s.skip(origin);
        }
    }

    async fn wait(&mut self, cancel: &CancellationToken) -> Result<(), SourceError> {
        if self.held.get()
            && let Some(s) = &mut self.inner
        {
            return s.wait(cancel).await;
        }
        // Not ours (yet): look again when the keeper changes something, and
        // at each of its ticks in case the notice came before this wait.
        tokio::select! {
            () = self.changed.notified() => {}
            () = tokio::time::sleep(self.tick) => {}
            () = cancel.cancelled() => {}
        }
        Ok(())
    }

    async fn reset(&mut self) {
        if let Some(s) = &mut self.inner {
            s.reset().await;
        }
    }
}
