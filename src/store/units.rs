//! Each unit's mails for a deadline, kept between acks.
//!
//! An ack states where the unit stands, which folds every mail it sent for
//! the deadline (photos add up across mails). Loading those from the
//! database for each ack made a unit's k-th mail cost O(k) rows. So the
//! folded-over mails are kept in memory and checked against the database on
//! every use with one query of two rows: how many submissions the unit has
//! and the highest id (table `unit_tallies`, kept by triggers), and the
//! store's revision, which every change other than a new submission bumps
//! (reprocess, assign). A submission this store records is added to its
//! unit's kept mails at commit; only newer ones recorded elsewhere (another
//! instance) are then read. Anything unexpected (another instance's commit
//! landing under the highest id, a change by a coordinator) reloads the
//! unit in full, so the kept copy is never trusted over the database.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use super::query::Filter;
use super::{Result, Store, SubmissionId, get};
use crate::status::Sent;
use crate::types::{CampaignId, DeadlineId, OrgId};

/// At most this many submissions are kept over all units; the least
/// recently used units go first. A unit over the limit is not kept.
const MAX_KEPT: usize = 50_000;

pub(super) type UnitKey = (CampaignId, DeadlineId, OrgId);

#[derive(Default)]
pub(super) struct UnitCache {
    units: HashMap<UnitKey, Kept>,
    kept: usize,
    clock: u64,
}

// A store's debug output names how much is kept, not every kept mail.
impl std::fmt::Debug for UnitCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitCache")
            .field("units", &self.units.len())
            .field("submissions", &self.kept)
            .finish()
    }
}

struct Kept {
    revision: i64,
    count: i64,
    max_id: i64,
    sent: Arc<Vec<Sent>>,
    used: u64,
}

/// What the database says about a unit right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    revision: i64,
    count: i64,
    max_id: i64,
}

impl UnitCache {
    /// The kept mails if they were read at the same revision; the id above
    /// which newer ones are to be read.
    /// A unit with newer mail is handed out rather than shared: the caller
    /// extends it and puts it back, and a shared copy would be cloned whole
    /// for that, a unit's k-th mail costing O(k) again.
    fn get(&mut self, key: &UnitKey, now: Stamp) -> Option<(Arc<Vec<Sent>>, i64, i64)> {
        self.clock += 1;
        let clock = self.clock;
        let kept = self.units.get_mut(key)?;
        if kept.revision != now.revision || kept.count > now.count || kept.max_id > now.max_id {
            return None;
        }
        if kept.count == now.count && kept.max_id == now.max_id {
            kept.used = clock;
            return Some((kept.sent.clone(), kept.max_id, kept.count));
        }
        let kept = self.units.remove(key)?;
        self.kept -= kept.sent.len();
        Some((kept.sent, kept.max_id, kept.count))
    }

    /// A submission this store has just committed, added to its unit's kept
    /// mails if they were read up to an older id: the unit's next ack then
    /// reads only its stamp. If anything else was committed in between, the
    /// stamp's count tells the next use to read again.
    fn add(&mut self, key: &UnitKey, id: i64, sent: Sent) {
        let Some(kept) = self.units.get_mut(key) else {
            return;
        };
        // A newer id kept means the unit was read back with this one in it.
        if id <= kept.max_id {
            return;
        }
        if self.kept >= MAX_KEPT {
            self.kept -= kept.sent.len();
            self.units.remove(key);
            return;
        }
        Arc::make_mut(&mut kept.sent).push(sent);
        kept.count += 1;
        kept.max_id = id;
        self.kept += 1;
    }

    fn put(&mut self, key: UnitKey, now: Stamp, sent: Arc<Vec<Sent>>) {
        if let Some(old) = self.units.remove(&key) {
            self.kept -= old.sent.len();
        }
        if sent.len() > MAX_KEPT {
            return;
        }
        while self.kept + sent.len() > MAX_KEPT {
            let Some(oldest) = self
                .units
                .iter()
                .min_by_key(|(_, k)| k.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(old) = self.units.remove(&oldest) {
                self.kept -= old.sent.len();
            }
        }
        self.kept += sent.len();
        self.clock += 1;
        self.units.insert(
            key,
            Kept {
                revision: now.revision,
                count: now.count,
                max_id: now.max_id,
                sent,
                used: self.clock,
            },
        );
    }
}

impl Store {
    /// Every mail a unit sent for a deadline, in no particular order: what
    /// its row of the status and its ack are folded from.
    pub async fn unit_sent(
        &self,
        campaign: &CampaignId,
        deadline: &DeadlineId,
        org: &OrgId,
    ) -> Result<Arc<Vec<Sent>>> {
        // The tally, not a count of the unit's submissions: that read each
        // of them, and a unit's k-th mail cost O(k) (on PostgreSQL a heap
        // tuple each while the pages were not yet all-visible).
        let row = sqlx::query(
            "SELECT (SELECT n FROM store_revision WHERE id = 1) AS revision, \
               COALESCE(t.n, 0) AS n, COALESCE(t.max_id, 0) AS max_id \
             FROM (SELECT 1 AS one) AS one \
             LEFT JOIN unit_tallies t \
               ON t.campaign = $1 AND t.deadline = $2 AND t.org_id = $3",
        )
        .bind(campaign.as_str())
        .bind(deadline.as_str())
        .bind(org.as_str())
        .fetch_one(&self.pool)
        .await?;
        let now = Stamp {
            revision: get(&row, "revision")?,
            count: get(&row, "n")?,
            max_id: get(&row, "max_id")?,
        };
        let key = (campaign.clone(), deadline.clone(), org.clone());
        let kept = self.lock_units().get(&key, now);
        let sent = match kept {
            Some((sent, max_id, count)) if max_id == now.max_id && count == now.count => {
                return Ok(sent);
            }
            Some((mut sent, max_id, count)) => {
                let newer = self
                    .load_submissions(Filter::UnitAfter(campaign, deadline, org, max_id))
                    .await?;
                if count + newer.len() as i64 == now.count {
                    Arc::make_mut(&mut sent).extend(newer.iter().map(|s| s.sent()));
                    sent
                } else {
                    self.load_unit(campaign, deadline, org).await?
                }
            }
            None => self.load_unit(campaign, deadline, org).await?,
        };
        // Kept only if nothing changed meanwhile: else the next use reloads.
        if sent.len() as i64 == now.count {
            self.lock_units().put(key, now, sent.clone());
        }
        Ok(sent)
    }

    async fn load_unit(
        &self,
        campaign: &CampaignId,
        deadline: &DeadlineId,
        org: &OrgId,
    ) -> Result<Arc<Vec<Sent>>> {
        let subs = self
            .load_submissions(Filter::Unit(campaign, deadline, org))
            .await?;
        Ok(Arc::new(subs.iter().map(|s| s.sent()).collect()))
    }

    /// Called by [`Store::record`] after its commit.
    pub(super) fn units_recorded(&self, key: UnitKey, id: SubmissionId, sent: Sent) {
        self.lock_units().add(&key, id.0, sent);
    }

    fn lock_units(&self) -> std::sync::MutexGuard<'_, UnitCache> {
        // The cache holds no invariant a panic elsewhere could break halfway.
        self.units.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn key(org: &str) -> UnitKey {
        (
            CampaignId::from("c"),
            DeadlineId::from("d"),
            OrgId::from(org),
        )
    }

    fn mails(n: usize) -> Arc<Vec<Sent>> {
        Arc::new(
            (0..n)
                .map(|_| Sent {
                    arrived_at: Utc::now(),
                    late: false,
                    documents: Vec::new(),
                    problems: Vec::new(),
                })
                .collect(),
        )
    }

    fn stamp(revision: i64, count: i64, max_id: i64) -> Stamp {
        Stamp {
            revision,
            count,
            max_id,
        }
    }

    #[test]
    fn kept_mails_are_not_used_after_a_revision_or_a_lost_submission() {
        let mut c = UnitCache::default();
        c.put(key("a"), stamp(0, 2, 7), mails(2));
        assert!(c.get(&key("a"), stamp(0, 2, 7)).is_some());
        assert!(c.get(&key("a"), stamp(1, 2, 7)).is_none(), "reprocessed");
        assert!(c.get(&key("a"), stamp(0, 1, 7)).is_none(), "assigned away");
        assert!(c.get(&key("b"), stamp(0, 2, 7)).is_none());
    }

    #[test]
    fn a_unit_with_newer_mail_is_handed_out_to_be_extended_without_a_copy() {
        let mut c = UnitCache::default();
        c.put(key("a"), stamp(0, 2, 7), mails(2));
        let (sent, max_id, count) = c.get(&key("a"), stamp(0, 3, 9)).expect("kept");
        assert_eq!((max_id, count), (7, 2));
        assert_eq!(Arc::strong_count(&sent), 1, "not shared with the cache");
        assert_eq!(c.kept, 0);
        assert!(c.get(&key("a"), stamp(0, 3, 9)).is_none(), "until put back");
        c.put(key("a"), stamp(0, 3, 9), sent);
        assert!(c.get(&key("a"), stamp(0, 3, 9)).is_some());
    }

    #[test]
    fn a_recorded_submission_extends_the_kept_mails_in_place() {
        let mut c = UnitCache::default();
        c.put(key("a"), stamp(0, 2, 7), mails(2));
        let one = mails(1)[0].clone();
        c.add(&key("a"), 9, one.clone());
        let (sent, max_id, count) = c.get(&key("a"), stamp(0, 3, 9)).expect("kept");
        assert_eq!((sent.len(), max_id, count), (3, 9, 3));
        drop(sent);
        c.add(&key("a"), 8, one.clone());
        assert_eq!(c.kept, 3, "an older id was read back already");
        c.add(&key("b"), 10, one);
        assert!(c.get(&key("b"), stamp(0, 1, 10)).is_none(), "nothing kept");
        assert!(
            c.get(&key("a"), stamp(0, 5, 11)).is_some(),
            "another commit in between: handed out to read what is newer"
        );
    }

    #[test]
    fn the_least_recently_used_units_go_first() {
        let mut c = UnitCache::default();
        c.put(key("a"), stamp(0, 1, 1), mails(MAX_KEPT / 2));
        c.put(key("b"), stamp(0, 1, 2), mails(MAX_KEPT / 2));
        assert!(c.get(&key("a"), stamp(0, 1, 1)).is_some());
        c.put(key("c"), stamp(0, 1, 3), mails(1));
        assert!(c.get(&key("b"), stamp(0, 1, 2)).is_none());
        assert!(c.get(&key("a"), stamp(0, 1, 1)).is_some());
        assert_eq!(c.kept, MAX_KEPT / 2 + 1);
        c.put(key("d"), stamp(0, 1, 4), mails(MAX_KEPT + 1));
        assert!(
            c.get(&key("d"), stamp(0, 1, 4)).is_none(),
            "too big to keep"
        );
    }
}
