//! The store: every message, submission, document, record, problem and
//! outgoing mail in SQL (SQLite by default, PostgreSQL for several
//! instances), plus the raw archive on disk ([`archive`]).
//!
//! One set of queries runs on both databases through the sqlx `Any` driver
//! (`$N` placeholders, `RETURNING`, `ON CONFLICT`); the schema is the same in
//! `migrations/sqlite` and `migrations/postgres`. Times are unix seconds,
//! booleans SMALLINT 0/1, because `Any` carries only integers, floats, text
//! and bytes.

pub mod archive;
mod coordination;
mod leases;
mod outbox;
mod query;
mod record;
mod units;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Row, SqlSafeStr, Transaction};

pub use archive::Archive;
pub use coordination::{FailedRow, LogEntry, Marked, ReceivedRow, UnreadableRow, Via};
pub use outbox::{AckCounts, Lease, NewOutbox, OutboxKind, OutboxRow, OutboxStatus};
pub use query::{
    Assigned, Assignment, AttentionRow, DocumentInfo, MessageDetail, MessageInfo, RecordRow,
    ReprocessItem, SubmissionInfo, SubmissionState,
};
pub use record::{AckVerdict, NEIGHBOURS_SQL_POSTGRES, Recorded};

use crate::types::{MailboxName, Uid};

macro_rules! row_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

row_id!(
    /// A stored message (`messages.id`); what `baosong show` and `assign` take.
    MessageId
);
row_id!(
    /// A submission: what one message delivered for one organisation.
    SubmissionId
);
row_id!(
    /// One file of a submission.
    DocumentId
);
row_id!(
    /// One outgoing mail.
    OutboxId
);

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}`: expected sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A write that would break a uniqueness rule the caller relies on.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A stored value this version cannot read back.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the same call may succeed later (busy database, lost
    /// connection, full disk); the caller then leaves the message on the
    /// server and tries again.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(e) => sqlx_is_transient(e),
            Self::Io { .. } => true,
            Self::Migrate(_)
            | Self::UnsupportedUrl(_)
            | Self::Conflict(_)
            | Self::NotFound(_)
            | Self::Corrupt(_) => false,
        }
    }
}

fn sqlx_is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Extended result codes: the low byte is BUSY (5) or LOCKED (6).
                code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
            } else {
                // PostgreSQL SQLSTATE: serialization failure, deadlock, lock not
                // available, too many connections, connection exceptions, shutdown.
                matches!(&*code, "40001" | "40P01" | "55P03" | "53300")
                    || code.starts_with("08")
                    || code.starts_with("57P")
            }
        }
        _ => false,
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The database. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where writes go. On SQLite a pool of one connection: writers in this
    /// process queue on it and go the moment the last one is done, instead
    /// of colliding on the file lock and sleeping in SQLite's busy handler
    /// (1, 2, 5 … 25 ms; 3,000 such sleeps per 1000 mails, mostly on the
    /// commit path). Other processes still meet `busy_timeout`. On
    /// PostgreSQL the same pool as reads.
    writer: AnyPool,
    backend: Backend,
    units: std::sync::Arc<std::sync::Mutex<units::UnitCache>>,
    /// SQLite: the writer connection is (or may be) at `synchronous =
    /// NORMAL`, because a [`Durability::Deferred`] write ran on it last. It
    /// is one connection, changed only by whoever holds it, so this is its
    /// state; set before the change to NORMAL and cleared after the one to
    /// FULL, it errs towards "maybe relaxed", and a synced write then sets
    /// FULL once more. A new connection starts at FULL.
    relaxed: Arc<AtomicBool>,
    /// A deferred commit may not be on disk yet; [`Store::sync`] has work
    /// to do.
    unsynced: Arc<AtomicBool>,
    /// One [`Store::sync`] at a time: a second caller that finds nothing
    /// unsynced must not return while the first one's commit is still on
    /// its way to disk.
    syncing: Arc<tokio::sync::Mutex<()>>,
}

/// Whether a write is on disk when its commit returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk at commit (SQLite `synchronous = FULL`): what every write
    /// that someone is told about, or that a mail server is flagged after,
    /// needs.
    Synced,
    /// Visible at commit, on disk at the next synced commit or
    /// [`Store::sync`] (SQLite `synchronous = NORMAL` in WAL mode: lost on
    /// power loss, never on a crash of the process, never corrupt). Lets
    /// the daemon write a group of messages with one WAL fsync instead of
    /// one each; it flags them and sends their acks only after
    /// [`Store::sync`]. On PostgreSQL a transaction commits with
    /// `synchronous_commit = off`, and a later synced commit flushes the
    /// WAL up through it; a single statement outside a transaction is
    /// synced there.
    Deferred,
}

const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens (for SQLite: creates) the database and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        if backend == Backend::Sqlite {
            prepare_sqlite(url).await?;
        }
        let options = || {
            AnyPoolOptions::new()
                // No ping before each use: it doubled the round trips of every
                // query outside a transaction. A connection that broke
                // meanwhile fails its statement instead, a transient error
                // that is retried like any other.
                .test_before_acquire(false)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL is a property of the file (set in prepare_sqlite); these are
                            // per connection. FULL: a commit is on disk before we flag the
                            // message on the server. A 256 KiB page cache, not 2 MiB: with five
                            // connections the caches were 6 MB of an idle daemon's 45 after a
                            // campaign into a 21,000-mail store, and the kernel's page cache
                            // serves the rest as fast (intake, status, digest and export timed
                            // the same).
                            sqlx::raw_sql(
                                "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                                 PRAGMA busy_timeout = 10000; PRAGMA cache_size = -256;",
                            )
                            .execute(conn)
                            .await?;
                        }
                        Ok(())
                    })
                })
        };
        let pool = options()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .connect(url)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        let writer = match backend {
            Backend::Sqlite => {
                options()
                    .max_connections(1)
                    .acquire_timeout(SQLITE_BUSY_TIMEOUT)
                    .connect(url)
                    .await?
            }
            Backend::Postgres => pool.clone(),
        };
        Ok(Store {
            pool,
            writer,
            backend,
            units: Default::default(),
            relaxed: Default::default(),
            unsynced: Default::default(),
            syncing: Default::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection; later calls fail with a non-retryable error.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// The writer connection, set for writes committed as `durability`
    /// says. Every write goes through here: the connection stays at the
    /// level the last writer needed, and [`Store::relaxed`] says which.
    async fn write_conn(&self, durability: Durability) -> Result<WriteConn> {
        let mut conn = self.writer.acquire().await?;
        if durability == Durability::Deferred {
            self.unsynced.store(true, Ordering::SeqCst);
        }
        if self.backend == Backend::Sqlite {
            // Not inside a transaction: SQLite refuses that.
            match durability {
                Durability::Deferred => {
                    if !self.relaxed.swap(true, Ordering::SeqCst) {
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                Durability::Synced if self.relaxed.load(Ordering::SeqCst) => {
                    sqlx::query("PRAGMA synchronous = FULL")
                        .execute(&mut *conn)
                        .await?;
                    self.relaxed.store(false, Ordering::SeqCst);
                }
                Durability::Synced => {}
            }
        }
        Ok(WriteConn {
            conn,
            backend: self.backend,
            durability,
        })
    }

    /// Puts every [`Durability::Deferred`] commit on disk: one synced
    /// commit, whose WAL flush covers everything written before it; none
    /// when nothing was written since the last.
    pub async fn sync(&self) -> Result<()> {
        self.sync_inner(false).await
    }

    /// [`Self::sync`] for the caller whose own deferred commits have all
    /// ended: always one synced commit, so they are on disk when it
    /// returns. The skip of [`Self::sync`] is not safe for that on
    /// PostgreSQL, where writes run on several connections: a sync that
    /// started while a commit on another one was under way may have ended
    /// before it, and left nothing marked to do.
    pub async fn sync_committed(&self) -> Result<()> {
        self.sync_inner(true).await
    }

    async fn sync_inner(&self, always: bool) -> Result<()> {
        let _one = self.syncing.lock().await;
        if !self.unsynced.swap(false, Ordering::SeqCst) && !always {
            return Ok(());
        }
        let synced = async {
            let mut tx = self.write_conn(Durability::Synced).await?.begin().await?;
            // A commit that changes nothing writes no WAL frame and syncs nothing.
            sqlx::query("UPDATE sync_point SET n = n + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if synced.is_err() {
            self.unsynced.store(true, Ordering::SeqCst);
        }
        synced
    }

    /// Where the IMAP poller stands: `(uidvalidity, last_uid)`.
    pub async fn mailbox_state(&self, mailbox: &MailboxName) -> Result<Option<(u32, Uid)>> {
        let row = sqlx::query("SELECT uidvalidity, last_uid FROM mailbox_state WHERE mailbox = $1")
            .bind(mailbox.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok((
                to_u32(get(&r, "uidvalidity")?)?,
                Uid(to_u32(get(&r, "last_uid")?)?),
            ))
        })
        .transpose()
    }

    /// Moves the poller past `uid` (for messages it skips without recording,
    /// and to note a new UIDVALIDITY).
    pub async fn advance_mailbox(
        &self,
        mailbox: &MailboxName,
        uidvalidity: u32,
        uid: Uid,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.write_conn(Durability::Synced).await?.begin().await?;
        advance_mailbox(&mut tx, mailbox, uidvalidity, uid, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The writer connection while one caller writes on it.
struct WriteConn {
    conn: PoolConnection<Any>,
    backend: Backend,
    durability: Durability,
}

impl WriteConn {
    fn conn(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }

    /// A write transaction. On SQLite it takes the write lock up front, so
    /// a writer of another process waits on `busy_timeout` instead of one
    /// failing on lock upgrade. Nothing inside may write outside it: on
    /// SQLite that would wait for the connection the transaction holds.
    async fn begin(self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => {
                Transaction::begin(self.conn, Some("BEGIN IMMEDIATE".into_sql_str())).await?
            }
            // For this transaction only: the connection goes back to the
            // pool synced. Sent with the BEGIN as one simple query, one
            // round trip where there were two.
            Backend::Postgres if self.durability == Durability::Deferred => {
                Transaction::begin(
                    self.conn,
                    Some("BEGIN; SET LOCAL synchronous_commit = off".into_sql_str()),
                )
                .await?
            }
            Backend::Postgres => Transaction::begin(self.conn, None).await?,
        })
    }
}

/// Creates the SQLite file (and its folder) and switches it to WAL once:
/// changing the journal mode needs an exclusive lock that `busy_timeout`
/// does not wait for, so pooled connections must not each try it.
async fn prepare_sqlite(url: &str) -> Result<()> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let file = options.get_filename();
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let conn = sqlx::SqliteConnection::connect_with(&options).await?;
    conn.close().await?;
    // SQLite creates its -wal and -shm files with the database's mode.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        file,
        std::fs::Permissions::from_mode(crate::types::FILE_MODE),
    )
    .map_err(|source| StoreError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Notes a change to stored submissions other than a new one (a reprocess,
/// an assignment), so that what was kept of them is read again.
async fn bump_revision(tx: &mut Transaction<'_, Any>) -> Result<()> {
    sqlx::query("UPDATE store_revision SET n = n + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Same UIDVALIDITY: keep the highest UID. A new UIDVALIDITY restarts the count.
async fn advance_mailbox(
    tx: &mut Transaction<'_, Any>,
    mailbox: &MailboxName,
    uidvalidity: u32,
    uid: Uid,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, updated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (mailbox) DO UPDATE SET \
           last_uid = CASE WHEN mailbox_state.uidvalidity = excluded.uidvalidity \
                           AND mailbox_state.last_uid > excluded.last_uid \
                      THEN mailbox_state.last_uid ELSE excluded.last_uid END, \
           uidvalidity = excluded.uidvalidity, \
           updated_at = excluded.updated_at",
    )
    .bind(mailbox.as_str())
    .bind(i64::from(uidvalidity))
    .bind(i64::from(uid.0))
    .bind(ts(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn from_ts(secs: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {secs} out of range")))
}

/// When a `messages` row's mail arrived, or when it was stored where that
/// is not known.
fn message_arrived_at(r: &AnyRow) -> Result<DateTime<Utc>> {
    match get::<Option<i64>>(r, "arrived_at")? {
        Some(t) => from_ts(t),
        None => from_ts(get(r, "stored_at")?),
    }
}

fn opt_from_ts(secs: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    secs.map(from_ts).transpose()
}

fn to_u32(n: i64) -> Result<u32> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{n} is not a 32-bit unsigned")))
}

fn bool_col(n: Option<i16>) -> Option<bool> {
    n.map(|v| v != 0)
}

fn bool_val(b: Option<bool>) -> Option<i16> {
    b.map(i16::from)
}

/// A typed column by name, with the column named in the error.
fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(column).map_err(StoreError::Database)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn level(store: &Store, durability: Durability) -> i64 {
        let mut writer = store.write_conn(durability).await.unwrap();
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(writer.conn())
            .await
            .unwrap()
    }

    async fn sync_points(store: &Store) -> i64 {
        sqlx::query_scalar("SELECT n FROM sync_point")
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_synced_write_finds_the_writer_at_full_after_a_deferred_one() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.unwrap();
        let (full, normal) = (2, 1);
        assert_eq!(level(&store, Durability::Synced).await, full);
        assert_eq!(level(&store, Durability::Deferred).await, normal);
        // Deferred writes in a row leave it relaxed: no pragma between them.
        assert_eq!(level(&store, Durability::Deferred).await, normal);
        assert_eq!(level(&store, Durability::Synced).await, full);

        // A deferred write is visible at once to every connection, and one
        // synced commit puts it on disk; with nothing deferred, sync is free.
        let mut tx = store
            .write_conn(Durability::Deferred)
            .await
            .unwrap()
            .begin()
            .await
            .unwrap();
        advance_mailbox(&mut tx, &MailboxName::from("kjt"), 7, Uid(42), Utc::now())
            .await
            .unwrap();
        // The connection goes back to the pool with the commit.
        tx.commit().await.unwrap();
        let seen = store
            .mailbox_state(&MailboxName::from("kjt"))
            .await
            .unwrap();
        assert_eq!(seen, Some((7, Uid(42))));
        let before = sync_points(&store).await;
        store.sync().await.unwrap();
        assert_eq!(sync_points(&store).await, before + 1);
        store.sync().await.unwrap();
        assert_eq!(sync_points(&store).await, before + 1);
        assert_eq!(level(&store, Durability::Synced).await, full);
    }
}
