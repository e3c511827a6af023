//! Schedule: when reminders and digests are due. Pure time arithmetic; the
//! daemon calls these at the cron fire times and enqueues what they return.

use chrono::{DateTime, Duration, Utc};

use crate::config::{Config, CronLine, ScheduleConfig};
use crate::types::{CampaignId, DeadlineId};

/// A reminder round due now: every unit still missing something for this
/// deadline gets one, once per `days_before`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderRound {
    pub campaign: CampaignId,
    pub deadline: DeadlineId,
    pub due: DateTime<Utc>,
    /// The configured offset whose window `now` falls in.
    pub days_before: u32,
}

/// The reminder rounds due at `now`. Offset k owns the window from k days
/// before the deadline up to the next smaller offset's start, so a daemon that
/// was down on the 3-day mark sends the 1-day reminder only, never both.
pub fn reminder_rounds(config: &Config, now: DateTime<Utc>) -> Vec<ReminderRound> {
    let mut offsets = config.schedule.reminder_days_before.clone();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    offsets.dedup();
    let mut out = Vec::new();
    for c in &config.campaigns {
        for d in &c.deadlines {
            let due = d.due_at;
            if now >= due {
                continue;
            }
            let window = offsets.iter().enumerate().find(|(i, k)| {
                let start = due - Duration::days(i64::from(**k));
                let end = offsets
                    .get(i + 1)
                    .map(|next| due - Duration::days(i64::from(*next)))
                    .unwrap_or(due);
                now >= start && now < end
            });
            if let Some((_, k)) = window {
                out.push(ReminderRound {
                    campaign: c.id.clone(),
                    deadline: d.id.clone(),
                    due,
                    days_before: *k,
                });
            }
        }
    }
    out
}

/// The first fire time of `line` strictly after `after`, the line read in
/// the `[schedule]` time zone.
pub fn next_fire(
    schedule: &ScheduleConfig,
    line: &CronLine,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    line.schedule
        .after(&after.with_timezone(&schedule.timezone.0))
        .next()
        .map(|t| t.with_timezone(&Utc))
}

/// The last fire time of `line` at or before `at`.
pub fn last_fire(
    schedule: &ScheduleConfig,
    line: &CronLine,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let just_after = at + Duration::seconds(1);
    line.schedule
        .after(&just_after.with_timezone(&schedule.timezone.0))
        .next_back()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> Config {
        Config::example(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn three_day_reminder_window_opens_three_days_before() {
        let c = config();
        // recommend is due 2025-05-06 23:59:59 +08:00.
        let r = reminder_rounds(&c, at("2025-05-04T09:00:00+08:00"));
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].deadline.as_str(), r[0].days_before), ("recommend", 3));
        let r = reminder_rounds(&c, at("2025-05-06T09:00:00+08:00"));
        assert_eq!(r[0].days_before, 1);
    }

    #[test]
    fn no_reminder_long_before_or_after_a_deadline() {
        let c = config();
        assert!(reminder_rounds(&c, at("2025-04-20T09:00:00+08:00")).is_empty());
        let after = reminder_rounds(&c, at("2025-05-07T09:00:00+08:00"));
        assert!(after.iter().all(|r| r.deadline.as_str() != "recommend"));
    }

    #[test]
    fn cron_fires_in_the_schedule_time_zone() {
        let c = config();
        let s = &c.schedule;
        let next = next_fire(s, &s.reminder_cron, at("2025-05-04T08:00:00+08:00")).unwrap();
        assert_eq!(next, at("2025-05-04T09:00:00+08:00"));
        let last = last_fire(s, &s.reminder_cron, at("2025-05-04T09:00:00+08:00")).unwrap();
        assert_eq!(last, at("2025-05-04T09:00:00+08:00"));
        let last = last_fire(s, &s.reminder_cron, at("2025-05-04T08:59:59+08:00")).unwrap();
        assert_eq!(last, at("2025-05-03T09:00:00+08:00"));
    }
}
