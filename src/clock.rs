//! The one clock. Everything that asks "what time is it" calls [`now`], so
//! tests (and `--now` on the command line) can pin time.

use std::sync::RwLock;

use chrono::{DateTime, Utc};

static FIXED: RwLock<Option<DateTime<Utc>>> = RwLock::new(None);

/// The current instant, or the one set with [`set`].
pub fn now() -> DateTime<Utc> {
    match FIXED.read() {
        Ok(guard) => guard.unwrap_or_else(Utc::now),
        Err(_) => Utc::now(),
    }
}

/// Pins the clock (`Some`) or lets it run again (`None`).
pub fn set(instant: Option<DateTime<Utc>>) {
    if let Ok(mut guard) = FIXED.write() {
        *guard = instant;
    }
}
