//! The clock the services read. The daemon gets one as a parameter, so a
//! test (or `--now` on the command line) can pin or move time; nothing reads
//! the system time behind its back.

use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until told otherwise.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// When a task last showed it is alive. The daemon's watchdog tells systemd
/// all is well only while every task's heartbeat is recent.
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<Mutex<Instant>>);

impl Default for Heartbeat {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }
}

impl Heartbeat {
    /// How often a task beats while it waits on something long.
    pub const PERIOD: StdDuration = StdDuration::from_secs(10);

    pub fn beat(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    pub fn age(&self) -> StdDuration {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }

    /// Runs `fut`, beating every [`Self::PERIOD`] until it is done: a task
    /// waiting on IDLE or a slow message is waiting, not dead.
    pub async fn while_pending<F: Future>(&self, fut: F) -> F::Output {
        tokio::pin!(fut);
        let mut tick = tokio::time::interval(Self::PERIOD);
        loop {
            tokio::select! {
                out = &mut fut => {
                    self.beat();
                    return out;
                }
                _ = tick.tick() => self.beat(),
            }
        }
    }
}
