//! Mailbox leases: which instance reads which mailbox when several share one
//! database, and which instances are alive.

use chrono::{DateTime, Utc};

use super::{Durability, Result, Store, to_u32, ts};
use crate::types::MailboxName;

impl Store {
    /// Says `instance` is alive at `now`.
    pub async fn instance_alive(&self, instance: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO instances (name, seen_at) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(instance)
        .bind(ts(now))
        .execute(self.write_conn(Durability::Synced).await?.conn())
        .await?;
        Ok(())
    }

    /// Instances seen since `since`.
    pub async fn instances_alive(&self, since: DateTime<Utc>) -> Result<u32> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE seen_at >= $1")
            .bind(ts(since))
            .fetch_one(&self.pool)
            .await?;
        to_u32(n)
    }

    /// Takes or renews the lease on `mailbox` until `until`: true when
    /// `owner` holds it now (it was free, expired at `now`, or already its).
    pub async fn lease_mailbox(
        &self,
        mailbox: &MailboxName,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let got: Option<String> = sqlx::query_scalar(
            "INSERT INTO mailbox_leases (mailbox, owner, lease_until) VALUES ($1, $2, $3) \
             ON CONFLICT (mailbox) DO UPDATE SET owner = excluded.owner, \
               lease_until = excluded.lease_until \
             WHERE mailbox_leases.owner = excluded.owner OR mailbox_leases.lease_until < $4 \
             RETURNING owner",
        )
        .bind(mailbox.as_str())
        .bind(owner)
        .bind(ts(until))
        .bind(ts(now))
        .fetch_optional(self.write_conn(Durability::Synced).await?.conn())
        .await?;
        Ok(got.as_deref() == Some(owner))
    }

    /// Gives `mailbox` up, if `owner` holds it.
    pub async fn release_mailbox(&self, mailbox: &MailboxName, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM mailbox_leases WHERE mailbox = $1 AND owner = $2")
            .bind(mailbox.as_str())
            .bind(owner)
            .execute(self.write_conn(Durability::Synced).await?.conn())
            .await?;
        Ok(())
    }

    /// Mailboxes `owner` holds unexpired leases on at `now`.
    pub async fn mailboxes_leased(&self, owner: &str, now: DateTime<Utc>) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mailbox_leases WHERE owner = $1 AND lease_until >= $2",
        )
        .bind(owner)
        .bind(ts(now))
        .fetch_one(&self.pool)
        .await?;
        to_u32(n)
    }
}
