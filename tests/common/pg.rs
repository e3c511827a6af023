//! PostgreSQL for the tests: a fresh schema per test, dropped when the test
//! ends (also when it panics).
//!
//! The server comes from `BAOSONG_TEST_PG` (a URL); if that is unset the
//! tests run `scripts/pg-test-setup` (as root it starts the local cluster
//! and creates the `baosong` role and `baosong_test` database). With no
//! PostgreSQL at all they fail, unless `BAOSONG_SKIP_PG=1`.

use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection};

/// The server's URL, or None when PostgreSQL tests are skipped on purpose.
pub fn base_url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        if std::env::var("BAOSONG_SKIP_PG").as_deref() == Ok("1") {
            return None;
        }
        if let Ok(url) = std::env::var("BAOSONG_TEST_PG")
            && !url.trim().is_empty()
        {
            return Some(url.trim().to_owned());
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-test-setup");
        let out = Command::new(script).output().unwrap_or_else(|e| {
            panic!(
                "PostgreSQL tests: BAOSONG_TEST_PG is unset and {script} did not run ({e}); \
                 export BAOSONG_TEST_PG=postgres://… or BAOSONG_SKIP_PG=1"
            )
        });
        assert!(
            out.status.success(),
            "PostgreSQL tests: BAOSONG_TEST_PG is unset and {script} failed: {}\n\
             export BAOSONG_TEST_PG=postgres://… or BAOSONG_SKIP_PG=1",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout.lines().last().unwrap_or_default().trim().to_owned();
        assert!(
            url.starts_with("postgres"),
            "{script} printed no URL: {stdout}"
        );
        Some(url)
    })
    .clone()
}

/// A schema of its own for one test; its URL puts it first on the search path.
pub struct PgSchema {
    base: String,
    name: String,
    pub url: String,
}

impl PgSchema {
    /// None when PostgreSQL tests are skipped (`BAOSONG_SKIP_PG=1`).
    pub async fn create() -> Option<PgSchema> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let base = base_url()?;
        let mut conn = PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL tests: cannot connect to {base}: {e}"));
        drop_stale_schemas(&mut conn).await;
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL tests: CREATE SCHEMA {name}: {e}"));
        let sep = if base.contains('?') { '&' } else { '?' };
        // The application name lets Drop end this test's connections.
        let url = format!("{base}{sep}options%5Bsearch_path%5D={name}&application_name={name}");
        Some(PgSchema { base, name, url })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which must not block: use a
        // thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&base).await {
                    // A test that failed or returned mid-transaction may leave a
                    // connection holding locks that DROP SCHEMA would wait for.
                    let _ = sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(&name)
                    .execute(&mut conn)
                    .await;
                    let _ = conn
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS {name} CASCADE"
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Schemas left by test processes that were killed before they could drop them.
async fn drop_stale_schemas(conn: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\\_%\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if pid.is_some() && !alive {
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE"
                )))
                .await;
        }
    }
}
