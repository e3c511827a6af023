//! The store against real databases: every test runs on SQLite and on
//! PostgreSQL (see `tests/common/pg.rs` for how the server is found).

#[path = "common/pg.rs"]
mod pg;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use baosong::model::Header;
use baosong::model::{AckDecision, Analysis, Document, MatchedBy, OrgMatch, Problem, ProblemCode};
use baosong::model::{FieldValue, Table};
use baosong::model::{Origin, RawMessage};
use baosong::store::{
    AckVerdict, Archive, Durability, Lease, MessageId, NewOutbox, OutboxId, OutboxKind,
    OutboxStatus, Recorded, Store, StoreError, SubmissionState,
};
use baosong::types::{
    CampaignId, DeadlineId, DocForm, DocumentKind, FormId, MailAddress, MailboxName, OrgId, Sha256,
    Uid,
};

/// One store to run a test on; dropping it removes its database.
struct Db {
    label: &'static str,
    url: String,
    store: Store,
    _dir: tempfile::TempDir,
    _pg: Option<pg::PgSchema>,
}

/// A fresh SQLite store and a fresh PostgreSQL store.
async fn dbs() -> Vec<Db> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("db/baosong.db").display());
    let store = Store::open(&url).await.expect("open SQLite store");
    let mut out = vec![Db {
        label: "sqlite",
        url,
        store,
        _dir: dir,
        _pg: None,
    }];
    if let Some(schema) = pg::PgSchema::create().await {
        let store = Store::open(&schema.url)
            .await
            .expect("open PostgreSQL store");
        out.push(Db {
            label: "postgres",
            url: schema.url.clone(),
            store,
            _dir: tempfile::tempdir().expect("tempdir"),
            _pg: Some(schema),
        });
    }
    out
}

/// An ack decided before the message is recorded.
fn decided(row: Option<NewOutbox>) -> std::future::Ready<Result<AckVerdict, StoreError>> {
    std::future::ready(Ok(AckVerdict::from(row)))
}

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, day, hour, 0, 0).unwrap()
}

fn raw(tag: &str, origin: Origin) -> RawMessage {
    RawMessage::new(
        format!("From: unit@example.cn\r\nSubject: {tag}\r\n\r\n{tag}\r\n").into_bytes(),
        origin,
        None,
    )
}

fn imap(uidvalidity: u32, uid: u32) -> Origin {
    Origin::Imap {
        mailbox: MailboxName::from("kjt"),
        uidvalidity,
        uid: Uid(uid),
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn file(name: &str) -> Origin {
    Origin::File {
        path: PathBuf::from(name),
        index: None,
    }
}

fn analysis(
    from: &str,
    org: Option<&str>,
    arrived: DateTime<Utc>,
    docs: Vec<Document>,
) -> Analysis {
    Analysis {
        // The store hashes the raw bytes itself.
        sha256: Sha256(String::new()),
        size: 0,
        header: Header {
            from: Some(from.to_owned()),
            subject: Some("报送材料".to_owned()),
            message_id: Some(format!("<{}@example.cn>", arrived.timestamp())),
            ..Header::default()
        },
        auto_generated: None,
        organisation: OrgMatch {
            id: org.map(OrgId::from),
            name: None,
            matched_by: if org.is_some() {
                MatchedBy::Address
            } else {
                MatchedBy::None
            },
            evidence: "test".to_owned(),
        },
        campaign: Some(CampaignId::from("js-2025")),
        deadline: Some(DeadlineId::from("recommend")),
        arrived_at: Some(arrived),
        late: Some(false),
        documents: docs,
        problems: Vec::new(),
        ack: AckDecision {
            send: true,
            held: false,
            to: MailAddress::parse(from),
            to_name: None,
            from_mailbox: None,
            reason: "ok".to_owned(),
        },
        body_excerpt: String::new(),
        content_key: None,
        attention: None,
    }
}

fn doc(filename: &str, kind: DocumentKind, form: DocForm, table: Option<Table>) -> Document {
    Document {
        filename: filename.to_owned(),
        path: filename.to_owned(),
        media_type: "application/octet-stream".to_owned(),
        size: 100,
        sha256: Sha256::of(filename.as_bytes()),
        kind,
        form,
        sealed: (form == DocForm::Scan).then_some(true),
        seal_confidence: (form == DocForm::Scan).then_some(0.9),
        table,
        media: None,
        problems: Vec::new(),
    }
}

fn fv(value: serde_json::Value, text: &str) -> FieldValue {
    FieldValue {
        value,
        text: text.to_owned(),
    }
}

/// A 推荐表 with one row per activity name.
fn recommendation(names: &[&str]) -> Table {
    Table {
        form_id: FormId::from("tuijianbiao"),
        form: "推荐表".to_owned(),
        rows: Some(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    BTreeMap::from([
                        (
                            "seq".to_owned(),
                            fv(serde_json::json!(i + 1), &(i + 1).to_string()),
                        ),
                        ("name".to_owned(), fv(serde_json::json!(n), n)),
                    ])
                })
                .collect(),
        ),
        fields: None,
    }
}

fn ack_for(raw: &RawMessage, to: &str) -> NewOutbox {
    let sha = Sha256::of(&raw.bytes);
    NewOutbox {
        kind: OutboxKind::Ack,
        message_id: format!("<ack.{sha}@baosong.example>"),
        to: vec![to.to_owned()],
        subject: "回执".to_owned(),
        envelope_from: "baosong@example.cn".to_owned(),
        raw: b"Subject: ack\r\nAuto-Submitted: auto-replied\r\n\r\n\xe5\xb7\xb2\xe6\x94\xb6\xe5\x88\xb0\r\n".to_vec(),
        related_message: None,
        dedupe_key: format!("ack:{sha}"),
        not_before: None,
    }
}

fn mail(key: &str) -> NewOutbox {
    NewOutbox {
        kind: OutboxKind::Reminder,
        message_id: format!("<{key}@baosong.example>"),
        to: vec!["unit@example.cn".to_owned()],
        subject: "提醒".to_owned(),
        envelope_from: "baosong@example.cn".to_owned(),
        raw: format!("Subject: {key}\r\n\r\nplease\r\n").into_bytes(),
        related_message: None,
        dedupe_key: key.to_owned(),
        not_before: None,
    }
}

fn far_future() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::days(365)
}

#[tokio::test]
async fn same_bytes_twice_is_stored_once() {
    for db in dbs().await {
        let s = &db.store;
        let first = raw("a", file("a.eml"));
        let a = analysis("unit@example.cn", Some("nj-kjj"), at(5, 9), Vec::new());
        let r1 = s
            .record(&first, &a, Some(ack_for(&first, "unit@example.cn")), now())
            .await
            .unwrap();
        let Recorded::New { message_id, .. } = r1 else {
            panic!("{}: first record is new: {r1:?}", db.label)
        };

        // Same bytes from elsewhere, with an ack of another key: still nothing new.
        let again = RawMessage::new(
            first.bytes.clone(),
            file("copy-of-a.eml"),
            first.received_at,
        );
        let mut second_ack = ack_for(&again, "unit@example.cn");
        second_ack.dedupe_key = "ack:other".to_owned();
        second_ack.message_id = "<other@baosong.example>".to_owned();
        let r2 = s.record(&again, &a, Some(second_ack), now()).await.unwrap();
        assert_eq!(r2, Recorded::Duplicate { message_id }, "{}", db.label);

        assert_eq!(
            s.messages_for_reprocess().await.unwrap().len(),
            1,
            "{}",
            db.label
        );
        let claimed = s
            .claim_outbox("w", Duration::from_secs(60), far_future(), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{}: one ack only", db.label);
        assert_eq!(claimed[0].related_message, Some(message_id), "{}", db.label);
    }
}

#[tokio::test]
async fn same_imap_uid_after_restart_is_a_duplicate() {
    for db in dbs().await {
        let first = raw("m5", imap(7, 5));
        let a = analysis("unit@example.cn", Some("nj-kjj"), at(5, 9), Vec::new());
        let r1 = db
            .store
            .record(&first, &a, Some(ack_for(&first, "unit@example.cn")), now())
            .await
            .unwrap();
        db.store.close().await;

        // A restart: a new pool on the same database sees the same message.
        let store = Store::open(&db.url).await.unwrap();
        let kjt = MailboxName::from("kjt");
        assert_eq!(
            store.mailbox_state(&kjt).await.unwrap(),
            Some((7, Uid(5))),
            "{}",
            db.label
        );
        // Bytes may differ on a re-fetch (a server adding a header): the origin decides.
        let refetched = raw("m5 refetched", imap(7, 5));
        let r2 = store
            .record(
                &refetched,
                &a,
                Some(ack_for(&refetched, "unit@example.cn")),
                now(),
            )
            .await
            .unwrap();
        assert_eq!(
            r2,
            Recorded::Duplicate {
                message_id: r1.message_id()
            },
            "{}",
            db.label
        );

        // An older UID never moves the poller back.
        let older = raw("m3", imap(7, 3));
        store.record(&older, &a, None, now()).await.unwrap();
        assert_eq!(
            store.mailbox_state(&kjt).await.unwrap(),
            Some((7, Uid(5))),
            "{}",
            db.label
        );

        let acks = store
            .claim_outbox("w", Duration::from_secs(60), far_future(), 10)
            .await
            .unwrap();
        assert_eq!(acks.len(), 1, "{}: no second ack", db.label);
    }
}

#[tokio::test]
async fn uidvalidity_reset_does_not_duplicate_messages() {
    for db in dbs().await {
        let s = &db.store;
        let a = analysis("unit@example.cn", Some("nj-kjj"), at(5, 9), Vec::new());
        let before = raw("same message", imap(7, 41));
        let r1 = s
            .record(
                &before,
                &a,
                Some(ack_for(&before, "unit@example.cn")),
                now(),
            )
            .await
            .unwrap();

        // The server renumbered its mailbox: same bytes, new UIDVALIDITY and UID.
        let after = raw("same message", imap(8, 1));
        let r2 = s
            .record(&after, &a, Some(ack_for(&after, "unit@example.cn")), now())
            .await
            .unwrap();
        assert_eq!(
            r2,
            Recorded::Duplicate {
                message_id: r1.message_id()
            },
            "{}",
            db.label
        );
        assert_eq!(
            s.mailbox_state(&MailboxName::from("kjt")).await.unwrap(),
            Some((8, Uid(1))),
            "{}: the poller follows the new UIDVALIDITY",
            db.label
        );
        assert_eq!(
            s.messages_for_reprocess().await.unwrap().len(),
            1,
            "{}",
            db.label
        );
        let acks = s
            .claim_outbox("w", Duration::from_secs(60), far_future(), 10)
            .await
            .unwrap();
        assert_eq!(acks.len(), 1, "{}", db.label);
    }
}

#[tokio::test]
async fn record_is_one_transaction() {
    for db in dbs().await {
        let s = &db.store;
        let campaign = CampaignId::from("js-2025");
        let deadline = DeadlineId::from("recommend");
        let msg = raw("with an ack that clashes", imap(7, 9));
        let mut a = analysis(
            "unit@example.cn",
            Some("nj-kjj"),
            at(5, 9),
            vec![doc(
                "推荐表.xlsx",
                DocumentKind::RecommendationForm,
                DocForm::Electronic,
                Some(recommendation(&["科普进社区"])),
            )],
        );
        a.problems
            .push(Problem::new(ProblemCode::NoAttachment, "未收到盖章扫描件"));

        // The ack's key is taken already: the last write of record() fails.
        let ack = ack_for(&msg, "unit@example.cn");
        let mut squatter = mail(&ack.dedupe_key);
        squatter.message_id = "<squatter@baosong.example>".to_owned();
        s.enqueue(squatter, now()).await.unwrap().expect("enqueued");

        let err = s
            .record(&msg, &a, Some(ack.clone()), now())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(_)),
            "{}: {err}",
            db.label
        );
        assert!(!err.is_transient(), "{}", db.label);

        // Nothing of the message is left, not even the mailbox position.
        assert!(
            s.messages_for_reprocess().await.unwrap().is_empty(),
            "{}",
            db.label
        );
        assert!(
            s.submissions_for(&campaign, &deadline)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        assert!(
            s.records_for_form(&campaign, &deadline, &FormId::from("tuijianbiao"))
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        assert_eq!(
            s.mailbox_state(&MailboxName::from("kjt")).await.unwrap(),
            None,
            "{}",
            db.label
        );

        // Without the clash the same call stores everything.
        let mut ack = ack;
        ack.dedupe_key = "ack:retry".to_owned();
        let r = s.record(&msg, &a, Some(ack), now()).await.unwrap();
        let detail = s.show_message(r.message_id()).await.unwrap().unwrap();
        let sub = detail.submission.expect("submission");
        assert_eq!(sub.documents.len(), 1, "{}", db.label);
        assert_eq!(sub.problems.len(), 1, "{}", db.label);
        assert_eq!(detail.records.len(), 2, "{}", db.label);
        assert_eq!(detail.outbox.len(), 1, "{}", db.label);

        // A closed pool fails the call; it does not half-write.
        s.close().await;
        let other = raw("after close", imap(7, 10));
        assert!(
            s.record(&other, &a, None, now()).await.is_err(),
            "{}",
            db.label
        );
        let reopened = Store::open(&db.url).await.unwrap();
        assert_eq!(
            reopened.messages_for_reprocess().await.unwrap().len(),
            1,
            "{}",
            db.label
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_row_is_claimed_by_one_worker_only() {
    for db in dbs().await {
        for i in 0..200 {
            db.store
                .enqueue(mail(&format!("reminder:{i}")), now())
                .await
                .unwrap()
                .expect("new row");
        }
        let now = Utc::now() + chrono::Duration::seconds(1);
        let workers = ["worker-a", "worker-b"].map(|owner| {
            let store = db.store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let rows = store
                        .claim_outbox(owner, Duration::from_secs(600), now, 7)
                        .await
                        .unwrap();
                    if rows.is_empty() {
                        return ids;
                    }
                    for r in rows {
                        assert_eq!(r.lease_owner.as_deref(), Some(owner));
                        assert_eq!(r.attempts, 1);
                        ids.push(r.id);
                    }
                    tokio::task::yield_now().await;
                }
            })
        });
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.unwrap());
        }
        let distinct: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 200, "{}: every row claimed", db.label);
        assert_eq!(distinct.len(), 200, "{}: no row claimed twice", db.label);
    }
}

#[tokio::test]
async fn expired_lease_is_reclaimed() {
    for db in dbs().await {
        let s = &db.store;
        s.enqueue(mail("reminder:x"), now()).await.unwrap().unwrap();
        let t0 = Utc::now() + chrono::Duration::seconds(1);
        let lease = Duration::from_secs(60);

        let a = s.claim_outbox("a", lease, t0, 10).await.unwrap();
        assert_eq!(a.len(), 1, "{}", db.label);
        let half = t0 + chrono::Duration::seconds(30);
        assert!(
            s.claim_outbox("b", lease, half, 10)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );

        // Worker a died: once its lease ran out, b takes the row.
        let later = t0 + chrono::Duration::seconds(61);
        let b = s.claim_outbox("b", lease, later, 10).await.unwrap();
        assert_eq!(b.len(), 1, "{}", db.label);
        assert_eq!(b[0].id, a[0].id, "{}", db.label);
        assert_eq!(b[0].attempts, 2, "{}", db.label);
        assert_eq!(
            b[0].message_id, a[0].message_id,
            "{}: same Message-ID",
            db.label
        );

        assert!(
            s.mark_sent(&[(a[0].id, now())], "a").await.unwrap() == 0,
            "{}: a lost its lease",
            db.label
        );
        assert!(
            s.mark_sent(&[(b[0].id, now())], "b").await.unwrap() == 1,
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn marking_a_send_can_claim_the_next_rows_in_the_same_commit() {
    for db in dbs().await {
        let s = &db.store;
        let lease = Duration::from_secs(60);
        let first = s.enqueue(mail("ack:1"), now()).await.unwrap().unwrap();
        let t = Utc::now() + chrono::Duration::seconds(1);
        let rows = s.claim_outbox("w", lease, t, 10).await.unwrap();
        assert_eq!(rows.len(), 1, "{}", db.label);
        // Two more arrive while the first is being sent.
        let second = s.enqueue(mail("ack:2"), now()).await.unwrap().unwrap();
        let third = s.enqueue(mail("ack:3"), now()).await.unwrap().unwrap();

        let (marked, next) = s
            .mark_sent_and_claim(&[(first, t)], "w", lease, t, 10)
            .await
            .unwrap();
        assert_eq!(marked, 1, "{}", db.label);
        let ids: Vec<_> = next.iter().map(|r| r.id).collect();
        assert_eq!(ids, [second, third], "{}", db.label);
        assert_eq!(
            s.outbox_row(first).await.unwrap().status,
            OutboxStatus::Sent,
            "{}",
            db.label
        );
        // Claimed: no other worker gets them.
        assert!(
            s.claim_outbox("other", lease, t, 10)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        // A mark by a worker that lost the lease says so, and claims all the same.
        let (marked, next) = s
            .mark_sent_and_claim(&[(second, t)], "other", lease, t, 10)
            .await
            .unwrap();
        assert!(marked == 0 && next.is_empty(), "{}", db.label);
        assert_eq!(
            s.outbox_row(second).await.unwrap().status,
            OutboxStatus::Sending,
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn sent_row_is_never_claimed_again() {
    for db in dbs().await {
        let s = &db.store;
        let id = s
            .enqueue(mail("digest:2025-05-05"), now())
            .await
            .unwrap()
            .unwrap();
        let later = Utc::now() + chrono::Duration::seconds(1);
        let rows = s
            .claim_outbox("w", Duration::from_secs(1), later, 10)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{}", db.label);
        assert_eq!(
            s.mark_sent(&[(id, now())], "w").await.unwrap(),
            1,
            "{}",
            db.label
        );

        assert!(
            s.claim_outbox("w", Duration::from_secs(1), far_future(), 10)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        assert!(
            !s.mark_retry(id, "w", later, "late error").await.unwrap(),
            "{}",
            db.label
        );
        assert_eq!(
            s.enqueue(mail("digest:2025-05-05"), now()).await.unwrap(),
            None,
            "{}",
            db.label
        );
        let row = s.outbox_row(id).await.unwrap();
        assert!(row.sent_at.is_some(), "{}", db.label);
        assert!(s.outbox_failed().await.unwrap().is_empty(), "{}", db.label);
    }
}

#[tokio::test]
async fn sends_marked_together_keep_each_its_own_time_and_skip_a_lost_lease() {
    for db in dbs().await {
        let s = &db.store;
        let mut ids = Vec::new();
        for n in 1..=3 {
            ids.push(
                s.enqueue(mail(&format!("ack:{n}")), now())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        let later = Utc::now() + chrono::Duration::seconds(1);
        let rows = s
            .claim_outbox("w", Duration::from_secs(60), later, 10)
            .await
            .unwrap();
        assert_eq!(rows.len(), 3, "{}", db.label);
        let t = |secs| at(4, 10) + chrono::Duration::seconds(secs);
        // The third was given back meanwhile: no longer this worker's.
        s.release_leases("w").await.unwrap();
        let again = s
            .claim_outbox("w", Duration::from_secs(60), later, 2)
            .await
            .unwrap();
        assert_eq!(again.len(), 2, "{}", db.label);
        let (mine, lost): (Vec<OutboxId>, Vec<OutboxId>) = ids
            .iter()
            .partition(|id| again.iter().any(|r| r.id == **id));
        let sent = [(mine[0], t(1)), (mine[1], t(2)), (lost[0], t(3))];
        assert_eq!(s.mark_sent(&sent, "w").await.unwrap(), 2, "{}", db.label);
        for (id, when) in &sent[..2] {
            let row = s.outbox_row(*id).await.unwrap();
            assert_eq!(row.status, OutboxStatus::Sent, "{}", db.label);
            assert_eq!(row.sent_at, Some(*when), "{}", db.label);
        }
        assert_eq!(
            s.outbox_row(lost[0]).await.unwrap().status,
            OutboxStatus::Pending,
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn failed_row_is_listed_and_retry_waits() {
    for db in dbs().await {
        let s = &db.store;
        let id = s
            .enqueue(mail("reminder:retry"), now())
            .await
            .unwrap()
            .unwrap();
        let now = Utc::now() + chrono::Duration::seconds(1);
        s.claim_outbox("w", Duration::from_secs(60), now, 10)
            .await
            .unwrap();
        let next = now + chrono::Duration::seconds(300);
        assert!(s.mark_retry(id, "w", next, "421 try later").await.unwrap());
        assert!(
            s.claim_outbox("w", Duration::from_secs(60), now, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let rows = s
            .claim_outbox("w", Duration::from_secs(60), next, 10)
            .await
            .unwrap();
        assert_eq!(
            rows[0].last_error.as_deref(),
            Some("421 try later"),
            "{}",
            db.label
        );
        assert!(s.mark_failed(id, "w", "550 no such user").await.unwrap());
        let failed = s.outbox_failed().await.unwrap();
        assert_eq!(failed.len(), 1, "{}", db.label);
        assert_eq!(failed[0].attempts, 2, "{}", db.label);
    }
}

#[tokio::test]
async fn an_ack_recorded_with_a_lease_comes_back_as_the_outbox_keeps_it() {
    let t =
        Utc.with_ymd_and_hms(2026, 5, 6, 10, 0, 0).unwrap() + chrono::Duration::milliseconds(700);
    for db in dbs().await {
        let s = &db.store;
        let m = raw("leased", file("leased.eml"));
        let a = analysis("unit@example.cn", Some("nj-kjj"), at(5, 9), Vec::new());
        // Recipients as composed: the row keeps them trimmed and in lower case.
        let ack = ack_for(&m, " Unit@Example.cn ");
        let lease = Lease {
            owner: "here".to_owned(),
            until: t + chrono::Duration::seconds(30),
        };
        let (recorded, row) = s
            .record_leasing_ack(
                &m,
                &a,
                decided(Some(ack)),
                Some(&lease),
                Durability::Synced,
                t,
            )
            .await
            .unwrap();
        let row = row.unwrap_or_else(|| panic!("{}: the ack comes back", db.label));
        assert!(matches!(recorded, Recorded::New { .. }), "{}", db.label);
        assert_eq!(row, s.outbox_row(row.id).await.unwrap(), "{}", db.label);
        assert_eq!(row.status, OutboxStatus::Sending, "{}", db.label);
        assert_eq!(row.attempts, 1, "{}", db.label);
        assert_eq!(row.to, ["unit@example.cn"], "{}", db.label);
        // Nobody else claims it while the lease runs, anyone may after.
        let other = |at| s.claim_outbox("there", Duration::from_secs(30), at, 10);
        assert!(
            other(t + chrono::Duration::seconds(29))
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        let taken = other(t + chrono::Duration::seconds(31)).await.unwrap();
        assert_eq!(taken.len(), 1, "{}", db.label);
        assert_eq!(taken[0].attempts, 2, "{}", db.label);
        // Without a lease it is stored pending, and nothing comes back.
        let m2 = raw("pending", file("pending.eml"));
        let (_, none) = s
            .record_leasing_ack(
                &m2,
                &a,
                decided(Some(ack_for(&m2, "unit@example.cn"))),
                None,
                Durability::Deferred,
                t,
            )
            .await
            .unwrap();
        assert!(none.is_none(), "{}", db.label);
        let claimed = other(t).await.unwrap();
        assert_eq!(claimed.len(), 1, "{}", db.label);
        assert_eq!(claimed[0].attempts, 1, "{}", db.label);
    }
}

#[tokio::test]
async fn ack_rate_counts_acks_to_one_address() {
    for db in dbs().await {
        let s = &db.store;
        for i in 0..3 {
            let m = raw(&format!("m{i}"), file(&format!("{i}.eml")));
            let a = analysis("unit@example.cn", Some("nj-kjj"), at(5, 9 + i), Vec::new());
            s.record(&m, &a, Some(ack_for(&m, "Unit@Example.cn")), now())
                .await
                .unwrap();
        }
        s.enqueue(mail("reminder:not-an-ack"), now()).await.unwrap();
        let hour_ago = Utc::now() - chrono::Duration::hours(1);
        assert_eq!(
            s.ack_counts("unit@example.cn", hour_ago, 10)
                .await
                .unwrap()
                .to_address,
            3,
            "{}",
            db.label
        );
        assert_eq!(
            s.ack_counts("other@example.cn", hour_ago, 10)
                .await
                .unwrap()
                .to_address,
            0,
            "{}",
            db.label
        );
        assert_eq!(
            s.ack_counts("unit@example.cn", far_future(), 10)
                .await
                .unwrap()
                .to_address,
            0,
            "{}",
            db.label
        );
        // Everyone's acks; the count to one address stops at its cap.
        assert_eq!(
            s.ack_counts("other@example.cn", hour_ago, 10)
                .await
                .unwrap()
                .to_anyone,
            3,
            "{}",
            db.label
        );
        assert_eq!(
            s.ack_counts("unit@example.cn", hour_ago, 2)
                .await
                .unwrap()
                .to_address,
            2,
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn acks_in_the_last_hour_are_counted_to_the_second() {
    // Acks queued at these seconds past 10:00; the count is kept per
    // minute, so a window that starts inside a minute must still be exact.
    let base = Utc.with_ymd_and_hms(2026, 5, 6, 10, 0, 0).unwrap();
    let queued = [5, 59, 60, 61, 119, 600, 3599, 3600, 3605];
    for db in dbs().await {
        let s = &db.store;
        for (i, &sec) in queued.iter().enumerate() {
            let m = raw(&format!("q{i}"), file(&format!("q{i}.eml")));
            let a = analysis("unit@example.cn", Some("nj-kjj"), base, Vec::new());
            let when = base + chrono::Duration::seconds(sec);
            s.record(&m, &a, Some(ack_for(&m, "unit@example.cn")), when)
                .await
                .unwrap();
        }
        // A reminder queued meanwhile is not an ack.
        s.enqueue(mail("reminder:q"), base + chrono::Duration::seconds(61))
            .await
            .unwrap();
        for since in [0, 5, 6, 59, 60, 61, 62, 119, 120, 3599, 3600, 3606] {
            let expected = queued.iter().filter(|&&q| q >= since).count() as u32;
            assert_eq!(
                s.ack_counts(
                    "unit@example.cn",
                    base + chrono::Duration::seconds(since),
                    10
                )
                .await
                .unwrap()
                .to_anyone,
                expected,
                "since 10:00 + {since} s, {}",
                db.label
            );
        }
    }
}

#[tokio::test]
async fn ack_counters_older_than_two_hours_are_dropped() {
    let base = Utc.with_ymd_and_hms(2026, 5, 6, 10, 0, 0).unwrap();
    for db in dbs().await {
        let s = &db.store;
        for (i, sec) in [0, 60, 3 * 3600].into_iter().enumerate() {
            let m = raw(&format!("p{i}"), file(&format!("p{i}.eml")));
            let a = analysis("unit@example.cn", Some("nj-kjj"), base, Vec::new());
            let when = base + chrono::Duration::seconds(sec);
            s.record(&m, &a, Some(ack_for(&m, "unit@example.cn")), when)
                .await
                .unwrap();
        }
        // A window reaching back past the counters kept sees only what is
        // kept; the hourly cap never asks for one.
        let count = s
            .ack_counts("unit@example.cn", base - chrono::Duration::seconds(60), 10)
            .await
            .unwrap()
            .to_anyone;
        assert_eq!(count, 1, "{}", db.label);
        let last_hour = s
            .ack_counts(
                "unit@example.cn",
                base + chrono::Duration::seconds(2 * 3600),
                10,
            )
            .await
            .unwrap()
            .to_anyone;
        assert_eq!(last_hour, 1, "{}", db.label);
    }
}

#[tokio::test]
async fn the_supersede_chain_is_the_same_whatever_order_mail_is_recorded_in() {
    use DocumentKind::{RecommendationForm as R, StatisticsForm as S, SummaryReport as Y};
    // (day, hour, kinds): two pairs arrive at the same time (the id breaks
    // the tie) and one mail carries no document at all.
    let mails: [(u32, u32, &[DocumentKind]); 12] = [
        (1, 9, &[R]),
        (2, 9, &[S]),
        (3, 9, &[R, S]),
        (3, 9, &[R]),
        (4, 9, &[Y]),
        (5, 9, &[]),
        (6, 9, &[S, Y]),
        (7, 9, &[R]),
        (7, 9, &[S]),
        (8, 9, &[Y]),
        (9, 9, &[R, Y]),
        (10, 9, &[S]),
    ];
    let orders: [[usize; 12]; 4] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
        [5, 0, 11, 3, 8, 1, 10, 6, 2, 9, 4, 7],
        [3, 2, 8, 7, 0, 11, 1, 6, 4, 10, 9, 5],
    ];
    for (n, order) in orders.iter().enumerate() {
        for db in dbs().await {
            let s = &db.store;
            let org = format!("org-{n}");
            for (step, &i) in order.iter().enumerate() {
                let (day, hour, kinds) = mails[i];
                let docs = kinds
                    .iter()
                    .map(|&k| doc(&format!("{i}-{k:?}.pdf"), k, DocForm::Scan, None))
                    .collect();
                let m = raw(&format!("chain{n}-{i}"), file(&format!("{n}-{i}.eml")));
                let a = analysis("unit@example.cn", Some(&org), at(day, hour), docs);
                s.record(&m, &a, None, now()).await.unwrap();

                let context = format!("{}: order {n}, after {} mails", db.label, step + 1);
                assert_eq!(assert_chain(s, &org, &context).await, step + 1);
            }
        }
    }
}

/// PostgreSQL keeps a connection's plan, and one made while the tables are
/// empty must still find a unit's earlier and later submissions by index:
/// an EXISTS planned then hashed every document for each mail (1.1 ms a
/// mail, growing, in a 1000-mail run into an empty database); "arrived
/// later" tested with an OR, and a new mail without documents, walked all
/// of the unit's submissions.
#[tokio::test]
async fn postgres_finds_a_units_neighbouring_mail_by_index_on_empty_tables() {
    use sqlx::{Connection, Executor};
    let Some(schema) = pg::PgSchema::create().await else {
        return;
    };
    let store = Store::open(&schema.url)
        .await
        .expect("open PostgreSQL store");
    let mut conn = sqlx::PgConnection::connect(&schema.url).await.unwrap();
    conn.execute("SET plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "PREPARE neighbours(bigint, text, text, text) AS {}",
        baosong::store::NEIGHBOURS_SQL_POSTGRES
    )))
    .await
    .unwrap();
    let plan: Vec<String> =
        sqlx::query_scalar("EXPLAIN EXECUTE neighbours(1, 'org', 'js-2025', 'recommend')")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let plan = plan.join("\n");
    assert!(!plan.contains("Seq Scan on documents"), "{plan}");
    assert!(plan.contains("documents_submission"), "{plan}");
    // "Arrived after the new one" bounds the index scan, not a filter on it.
    assert!(
        plan.lines()
            .any(|l| l.contains("Index Cond") && l.contains("ROW(arrived_at, id) > ROW($")),
        "{plan}"
    );
    // A new mail without documents is not compared with each of its unit's.
    assert!(plan.contains("One-Time Filter"), "{plan}");
    store.close().await;
}

/// Checks a unit's supersede chain against a brute force: each submission
/// points to the latest earlier one sharing a kind, and those pointed to
/// are superseded. Returns how many submissions the unit has.
async fn assert_chain(s: &Store, org: &str, context: &str) -> usize {
    let mut subs: Vec<_> = s
        .submissions_for(&CampaignId::from("js-2025"), &DeadlineId::from("recommend"))
        .await
        .unwrap()
        .into_iter()
        .filter(|x| x.org.as_ref().is_some_and(|o| o.as_str() == org))
        .collect();
    subs.sort_by_key(|x| (x.arrived_at, x.id.0));
    let kinds_of = |x: &baosong::store::SubmissionInfo| -> HashSet<DocumentKind> {
        x.documents.iter().map(|d| d.kind).collect()
    };
    let expected: Vec<_> = (0..subs.len())
        .map(|j| {
            subs[..j]
                .iter()
                .rev()
                .find(|e| !kinds_of(e).is_disjoint(&kinds_of(&subs[j])))
                .map(|e| e.id)
        })
        .collect();
    for (j, sub) in subs.iter().enumerate() {
        let pointed = expected.contains(&Some(sub.id));
        assert_eq!(
            (sub.supersedes, sub.state),
            (
                expected[j],
                if pointed {
                    SubmissionState::Superseded
                } else {
                    SubmissionState::Current
                }
            ),
            "{context}, submission {j}",
        );
    }
    subs.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_recording_one_units_mail_at_once_keep_its_chain() {
    // Two stores on one database, as two instances are: one reads the
    // unit's mail to one mailbox, the other its mail to another.
    for db in dbs().await {
        let other = Store::open(&db.url).await.unwrap();
        let record = |s: Store, side: u32| async move {
            for i in 0..30u32 {
                let kind = if i % 3 == 0 {
                    DocumentKind::StatisticsForm
                } else {
                    DocumentKind::RecommendationForm
                };
                let docs = vec![doc(&format!("{side}-{i}.pdf"), kind, DocForm::Scan, None)];
                let m = raw(
                    &format!("race{side}-{i}"),
                    file(&format!("race{side}-{i}.eml")),
                );
                // Interleaved arrival times, so each side's mail falls
                // between the other's.
                let arrived = at(1, 0) + chrono::Duration::minutes(i64::from(2 * i + side));
                let a = analysis("unit@example.cn", Some("nj-kjj"), arrived, docs);
                s.record(&m, &a, None, now()).await.unwrap();
            }
        };
        let (a, b) = tokio::join!(
            tokio::spawn(record(db.store.clone(), 0)),
            tokio::spawn(record(other, 1))
        );
        a.unwrap();
        b.unwrap();
        assert_eq!(assert_chain(&db.store, "nj-kjj", db.label).await, 60);
    }
}

#[tokio::test]
async fn superseding_submission_points_to_earlier() {
    for db in dbs().await {
        let s = &db.store;
        let campaign = CampaignId::from("js-2025");
        let deadline = DeadlineId::from("recommend");
        let rec = |names: &[&str]| {
            vec![doc(
                &format!("推荐表{}.xlsx", names.len()),
                DocumentKind::RecommendationForm,
                DocForm::Electronic,
                Some(recommendation(names)),
            )]
        };
        let first = raw("first", file("1.eml"));
        let stats = raw("stats", file("2.eml"));
        let second = raw("second", file("3.eml"));
        let a_first = analysis(
            "unit@example.cn",
            Some("nj-kjj"),
            at(3, 9),
            rec(&["旧活动"]),
        );
        let a_stats = analysis(
            "unit@example.cn",
            Some("nj-kjj"),
            at(4, 9),
            vec![doc(
                "统计表.pdf",
                DocumentKind::StatisticsForm,
                DocForm::Scan,
                None,
            )],
        );
        let a_second = analysis(
            "unit@example.cn",
            Some("nj-kjj"),
            at(5, 9),
            rec(&["新活动甲", "新活动乙"]),
        );

        // Recorded out of order: the correction first, as a slow mailbox might.
        let r_second = s.record(&second, &a_second, None, now()).await.unwrap();
        let r_first = s.record(&first, &a_first, None, now()).await.unwrap();
        let r_stats = s.record(&stats, &a_stats, None, now()).await.unwrap();

        let subs = s.submissions_for(&campaign, &deadline).await.unwrap();
        let by_message = |m: MessageId| subs.iter().find(|x| x.message == m).unwrap();
        let (first_sub, stats_sub, second_sub) = (
            by_message(r_first.message_id()),
            by_message(r_stats.message_id()),
            by_message(r_second.message_id()),
        );
        assert_eq!(second_sub.supersedes, Some(first_sub.id), "{}", db.label);
        assert_eq!(stats_sub.supersedes, None, "{}: another kind", db.label);
        assert_eq!(first_sub.state, SubmissionState::Superseded, "{}", db.label);
        assert_eq!(second_sub.state, SubmissionState::Current, "{}", db.label);
        assert_eq!(stats_sub.state, SubmissionState::Current, "{}", db.label);

        let names: Vec<String> = s
            .records_for_form(&campaign, &deadline, &FormId::from("tuijianbiao"))
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.key == "name")
            .map(|r| r.value.text)
            .collect();
        assert_eq!(
            names,
            ["新活动甲", "新活动乙"],
            "{}: only the latest form",
            db.label
        );

        let mut unit = (*s
            .unit_sent(&campaign, &deadline, &OrgId::from("nj-kjj"))
            .await
            .unwrap())
        .clone();
        unit.sort_by_key(|u| u.arrived_at);
        let forms: Vec<Option<usize>> = unit
            .iter()
            .flat_map(|u| &u.documents)
            .filter(|d| d.kind == DocumentKind::RecommendationForm)
            .map(|d| d.items)
            .collect();
        assert_eq!(
            forms,
            [Some(1), Some(2)],
            "{}: oldest first, rows counted",
            db.label
        );
        let scan = unit
            .iter()
            .flat_map(|u| &u.documents)
            .find(|d| d.form == DocForm::Scan)
            .unwrap();
        assert_eq!(
            (scan.sealed, scan.items),
            (Some(true), None),
            "{}",
            db.label
        );
    }
}

/// What `s` says of each mail's submission: (supersedes which mail, state).
async fn chain(s: &Store, mails: &[MessageId]) -> Vec<(Option<usize>, SubmissionState)> {
    let subs = s
        .submissions_for(&CampaignId::from("js-2025"), &DeadlineId::from("recommend"))
        .await
        .unwrap();
    let of = |m: MessageId| subs.iter().find(|x| x.message == m).unwrap();
    mails
        .iter()
        .map(|&m| {
            let sub = of(m);
            let earlier = sub
                .supersedes
                .map(|id| mails.iter().position(|&e| of(e).id == id).unwrap());
            (earlier, sub.state)
        })
        .collect()
}

#[tokio::test]
async fn supersedes_are_the_same_whatever_order_mails_are_recorded_in() {
    let kinds: [&[DocumentKind]; 6] = [
        &[DocumentKind::RecommendationForm],
        &[DocumentKind::StatisticsForm],
        &[DocumentKind::RecommendationForm, DocumentKind::Photo],
        &[],
        &[DocumentKind::Photo],
        &[
            DocumentKind::StatisticsForm,
            DocumentKind::RecommendationForm,
        ],
    ];
    let mail = |i: usize| {
        let docs = kinds[i]
            .iter()
            .map(|&k| doc(&format!("{i}-{k:?}.pdf"), k, DocForm::Scan, None))
            .collect();
        let raw = raw(&format!("mail {i}"), file(&format!("{i}.eml")));
        let a = analysis("unit@example.cn", Some("nj-kjj"), at(3, 9 + i as u32), docs);
        (raw, a)
    };
    let expected = vec![
        (None, SubmissionState::Superseded),
        // Mail 5 has a statistics form too, but supersedes only the latest
        // mail it shares a kind with (2).
        (None, SubmissionState::Current),
        (Some(0), SubmissionState::Superseded),
        (None, SubmissionState::Current),
        (Some(2), SubmissionState::Current),
        (Some(2), SubmissionState::Current),
    ];
    for order in [[0, 1, 2, 3, 4, 5], [5, 3, 1, 0, 4, 2], [2, 0, 1, 5, 4, 3]] {
        for db in dbs().await {
            let s = &db.store;
            let mut ids = vec![MessageId(0); kinds.len()];
            for &i in &order {
                let (raw, a) = mail(i);
                ids[i] = s.record(&raw, &a, None, now()).await.unwrap().message_id();
            }
            assert_eq!(
                chain(s, &ids).await,
                expected,
                "{}: recorded in order {order:?}",
                db.label
            );
        }
    }
}

#[tokio::test]
async fn a_units_kept_mails_follow_new_mails_reprocessing_and_assignment() {
    for db in dbs().await {
        let s = &db.store;
        let (c, d) = (CampaignId::from("js-2025"), DeadlineId::from("recommend"));
        let (nj, sz) = (OrgId::from("nj-kjj"), OrgId::from("sz-kjj"));
        let kinds = |sent: &[baosong::status::Sent]| {
            let mut k: Vec<(i64, Vec<DocumentKind>)> = sent
                .iter()
                .map(|m| {
                    (
                        m.arrived_at.timestamp(),
                        m.documents.iter().map(|d| d.kind).collect(),
                    )
                })
                .collect();
            k.sort();
            k
        };
        let scan = |name: &str, kind| vec![doc(name, kind, DocForm::Scan, None)];
        let photo = DocumentKind::Photo;
        assert!(s.unit_sent(&c, &d, &nj).await.unwrap().is_empty());

        let one = raw("one", file("1.eml"));
        let a_one = analysis(
            "unit@example.cn",
            Some("nj-kjj"),
            at(3, 9),
            scan("1.jpg", photo),
        );
        let one_id = s
            .record(&one, &a_one, None, now())
            .await
            .unwrap()
            .message_id();
        assert_eq!(
            s.unit_sent(&c, &d, &nj).await.unwrap().len(),
            1,
            "{}",
            db.label
        );

        let two = raw("two", file("2.eml"));
        let a_two = analysis(
            "unit@example.cn",
            Some("nj-kjj"),
            at(4, 9),
            scan("2.jpg", photo),
        );
        s.record(&two, &a_two, None, now()).await.unwrap();
        assert_eq!(
            kinds(&s.unit_sent(&c, &d, &nj).await.unwrap()),
            [
                (at(3, 9).timestamp(), vec![photo]),
                (at(4, 9).timestamp(), vec![photo])
            ],
            "{}: the newer mail is added",
            db.label
        );

        // Read again: the first mail is now a statistics form.
        let stats = DocumentKind::StatisticsForm;
        let a_one = analysis(
            "unit@example.cn",
            Some("nj-kjj"),
            at(3, 9),
            scan("统计表.pdf", stats),
        );
        s.update_analysis(one_id, &a_one).await.unwrap();
        assert_eq!(
            kinds(&s.unit_sent(&c, &d, &nj).await.unwrap()),
            [
                (at(3, 9).timestamp(), vec![stats]),
                (at(4, 9).timestamp(), vec![photo])
            ],
            "{}: a reprocessed mail is read again",
            db.label
        );

        // A coordinator says the first mail came from another unit.
        assert!(s.unit_sent(&c, &d, &sz).await.unwrap().is_empty());
        s.assign(one_id, &sz, "coordinator", now()).await.unwrap();
        assert_eq!(
            kinds(&s.unit_sent(&c, &d, &nj).await.unwrap()),
            [(at(4, 9).timestamp(), vec![photo])],
            "{}: an assigned mail leaves its old unit",
            db.label
        );
        assert_eq!(
            kinds(&s.unit_sent(&c, &d, &sz).await.unwrap()),
            [(at(3, 9).timestamp(), vec![stats])],
            "{}: and joins its new one",
            db.label
        );
    }
}

/// `unit_tallies` (kept by triggers) against a count of the submissions.
async fn assert_tallies(url: &str, context: &str) {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let tallied: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT campaign, deadline, org_id, n, max_id FROM unit_tallies \
         WHERE n > 0 ORDER BY campaign, deadline, org_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let counted: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT campaign, deadline, org_id, COUNT(*), MAX(id) FROM submissions \
         WHERE campaign IS NOT NULL AND deadline IS NOT NULL AND org_id IS NOT NULL \
         GROUP BY campaign, deadline, org_id ORDER BY campaign, deadline, org_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(tallied, counted, "{context}");
}

#[tokio::test]
async fn unit_tallies_follow_mail_recorded_reprocessed_and_assigned() {
    for db in dbs().await {
        let s = &db.store;
        let scan = |name: &str| {
            vec![doc(
                name,
                DocumentKind::RecommendationForm,
                DocForm::Scan,
                None,
            )]
        };
        let mut ids = Vec::new();
        for (i, org) in [Some("nj-kjj"), Some("nj-kjj"), Some("sz-kjj"), None]
            .into_iter()
            .enumerate()
        {
            let m = raw(&format!("tally{i}"), file(&format!("t{i}.eml")));
            let a = analysis("unit@example.cn", org, at(3, 9 + i as u32), scan("1.pdf"));
            ids.push(s.record(&m, &a, None, now()).await.unwrap().message_id());
        }
        assert_tallies(&db.url, &format!("{}: recorded", db.label)).await;

        // Reprocessed: the newest of nj-kjj's mails now reads as unmatched,
        // and the unmatched one as sz-kjj's.
        let a = analysis("unit@example.cn", None, at(3, 10), scan("1.pdf"));
        s.update_analysis(ids[1], &a).await.unwrap();
        let a = analysis("unit@example.cn", Some("sz-kjj"), at(3, 12), scan("1.pdf"));
        s.update_analysis(ids[3], &a).await.unwrap();
        assert_tallies(&db.url, &format!("{}: reprocessed", db.label)).await;

        // Assigned: nj-kjj's last mail goes to sz-kjj, so nj-kjj has none.
        s.assign(ids[0], &OrgId::from("sz-kjj"), "coordinator", now())
            .await
            .unwrap();
        assert_tallies(&db.url, &format!("{}: assigned", db.label)).await;
        let sz = s
            .unit_sent(
                &CampaignId::from("js-2025"),
                &DeadlineId::from("recommend"),
                &OrgId::from("sz-kjj"),
            )
            .await
            .unwrap();
        assert_eq!(sz.len(), 3, "{}", db.label);
    }
}

#[tokio::test]
async fn a_units_kept_mails_are_what_the_database_reads_back() {
    for db in dbs().await {
        let s = &db.store;
        let (c, d, nj) = (
            CampaignId::from("js-2025"),
            DeadlineId::from("recommend"),
            OrgId::from("nj-kjj"),
        );
        let sorted = |sent: &[baosong::status::Sent]| {
            let mut v: Vec<String> = sent.iter().map(|m| format!("{m:?}")).collect();
            v.sort();
            v
        };
        let mut table = recommendation(&["活动一", "活动二"]);
        table.rows.as_mut().unwrap().push(BTreeMap::new());
        let mut with_table = doc(
            "推荐表.xlsx",
            DocumentKind::RecommendationForm,
            DocForm::Electronic,
            Some(table),
        );
        with_table
            .problems
            .push(Problem::new(ProblemCode::FieldMissing, "第2项\0缺少联系人"));
        let mut empty_rows = recommendation(&[]);
        empty_rows.rows = Some(Vec::new());
        let mails = [
            (
                at(3, 9) + chrono::Duration::milliseconds(750),
                vec![with_table],
            ),
            (
                at(4, 9),
                vec![doc(
                    "空表.xlsx",
                    DocumentKind::RecommendationForm,
                    DocForm::Electronic,
                    Some(empty_rows),
                )],
            ),
            (at(5, 9), Vec::new()),
        ];
        for (i, (arrived, docs)) in mails.into_iter().enumerate() {
            // As an ack does: the unit is read (and kept) before each mail.
            s.unit_sent(&c, &d, &nj).await.unwrap();
            let mut a = analysis("unit@example.cn", Some("nj-kjj"), arrived, docs);
            a.problems
                .push(Problem::new(ProblemCode::NoAttachment, "未见\0附件"));
            s.record(
                &raw(&format!("m{i}"), file(&format!("{i}.eml"))),
                &a,
                None,
                now(),
            )
            .await
            .unwrap();
            let kept = s.unit_sent(&c, &d, &nj).await.unwrap();
            let fresh = Store::open(&db.url).await.unwrap();
            let read = fresh.unit_sent(&c, &d, &nj).await.unwrap();
            assert_eq!(kept.len(), i + 1, "{}", db.label);
            assert_eq!(sorted(&kept), sorted(&read), "{}: after mail {i}", db.label);
        }
    }
}

#[tokio::test]
async fn assign_learns_the_address() {
    for db in dbs().await {
        let s = &db.store;
        let msg = raw("from a personal address", file("q.eml"));
        let a = analysis("Zhang@QQ.com", None, at(5, 9), Vec::new());
        let id = s.record(&msg, &a, None, now()).await.unwrap().message_id();
        assert_eq!(
            s.unmatched_messages().await.unwrap().len(),
            1,
            "{}",
            db.label
        );

        let org = OrgId::from("nj-kjj");
        s.assign(id, &org, "coordinator", now()).await.unwrap();

        assert!(
            s.unmatched_messages().await.unwrap().is_empty(),
            "{}",
            db.label
        );
        assert_eq!(
            s.learned_addresses().await.unwrap(),
            vec![("zhang@qq.com".to_owned(), org.clone())],
            "{}",
            db.label
        );
        let detail = s.show_message(id).await.unwrap().unwrap();
        let sub = detail.submission.unwrap();
        assert_eq!(sub.org.as_ref(), Some(&org), "{}", db.label);
        assert_eq!(sub.matched_by, MatchedBy::Manual, "{}", db.label);
        assert_eq!(detail.assignments.len(), 1, "{}", db.label);
        assert_eq!(detail.assignments[0].by, "coordinator", "{}", db.label);

        // Reprocessing keeps the coordinator's word and sends nothing.
        s.update_analysis(id, &a).await.unwrap();
        let detail = s.show_message(id).await.unwrap().unwrap();
        assert_eq!(detail.submission.unwrap().org, Some(org), "{}", db.label);
        assert!(detail.outbox.is_empty(), "{}", db.label);

        assert!(matches!(
            s.assign(MessageId(9999), &OrgId::from("x"), "c", now())
                .await,
            Err(StoreError::NotFound(_))
        ));
    }
}

#[tokio::test]
async fn records_keep_original_text() {
    for db in dbs().await {
        let s = &db.store;
        let stats = Table {
            form_id: FormId::from("tongjibiao"),
            form: "统计表".to_owned(),
            rows: None,
            fields: Some(BTreeMap::from([
                (
                    "fund_central".to_owned(),
                    fv(serde_json::json!(12.5), "１２.５万元"),
                ),
                (
                    "public_offline".to_owned(),
                    fv(serde_json::json!(1200), "1,200人次"),
                ),
                ("events".to_owned(), fv(serde_json::json!(500), "约500")),
                ("fund_other".to_owned(), fv(serde_json::Value::Null, "无")),
                (
                    "unit".to_owned(),
                    fv(
                        serde_json::json!("南京市科学技术局"),
                        "南京市科学技术局（盖章）",
                    ),
                ),
            ])),
        };
        let mut a = analysis(
            "unit@example.cn",
            Some("nj-kjj"),
            at(5, 9),
            vec![doc(
                "统计表.xlsx",
                DocumentKind::StatisticsForm,
                DocForm::Electronic,
                Some(stats),
            )],
        );
        a.documents[0].problems.push(Problem::new(
            ProblemCode::ValueApproximate,
            "开展次数“约500”不是确数",
        ));
        let msg = raw("stats", file("s.eml"));
        s.record(&msg, &a, None, now()).await.unwrap();

        let records = s
            .records_for_form(
                &CampaignId::from("js-2025"),
                &DeadlineId::from("recommend"),
                &FormId::from("tongjibiao"),
            )
            .await
            .unwrap();
        let got: BTreeMap<String, FieldValue> = records
            .iter()
            .map(|r| (r.key.clone(), r.value.clone()))
            .collect();
        assert_eq!(got.len(), 5, "{}", db.label);
        assert_eq!(
            got["fund_central"],
            fv(serde_json::json!(12.5), "１２.５万元"),
            "{}",
            db.label
        );
        assert_eq!(
            got["public_offline"].value.as_f64(),
            Some(1200.0),
            "{}",
            db.label
        );
        assert_eq!(got["public_offline"].text, "1,200人次", "{}", db.label);
        assert_eq!(got["events"].text, "约500", "{}", db.label);
        assert_eq!(
            got["fund_other"],
            fv(serde_json::Value::Null, "无"),
            "{}",
            db.label
        );
        assert_eq!(
            got["unit"],
            fv(
                serde_json::json!("南京市科学技术局"),
                "南京市科学技术局（盖章）"
            ),
            "{}",
            db.label
        );
        assert!(
            records.iter().all(|r| r.row.is_none()),
            "{}: a fields form",
            db.label
        );

        let sub = s
            .submissions_for(&CampaignId::from("js-2025"), &DeadlineId::from("recommend"))
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(sub.documents[0].problems.len(), 1, "{}", db.label);
        assert_eq!(
            sub.documents[0].form_name.as_deref(),
            Some("统计表"),
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn reminder_pauses_are_kept() {
    for db in dbs().await {
        let s = &db.store;
        let org = OrgId::from("nj-kjj");
        s.pause_reminders(&org, now()).await.unwrap();
        s.pause_reminders(&org, now()).await.unwrap();
        assert_eq!(
            s.paused_orgs().await.unwrap(),
            vec![org.clone()],
            "{}",
            db.label
        );
        s.resume_reminders(&org).await.unwrap();
        assert!(s.paused_orgs().await.unwrap().is_empty(), "{}", db.label);
    }
}

/// A message of these bytes, for the archive tests.
fn message(bytes: &[u8]) -> RawMessage {
    RawMessage::new(bytes.to_vec(), file("put.eml"), None)
}

#[tokio::test]
async fn archive_write_is_durable_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::new(dir.path().join("archive"));
    let bytes = b"From: a@b.cn\r\nSubject: x\r\n\r\nbody\r\n".to_vec();

    let sha = archive
        .put(&message(&bytes), Durability::Synced)
        .await
        .unwrap();
    assert_eq!(sha, Sha256::of(&bytes));
    let path = archive.path_of(&sha);
    let s = sha.as_str();
    assert_eq!(
        path,
        dir.path()
            .join("archive")
            .join(&s[0..2])
            .join(format!("{s}.eml"))
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();

    let msg = message(&bytes);
    let put = |durability| archive.put(&msg, durability);
    // Again: same answer, the file is not rewritten, no temp file is left.
    assert_eq!(put(Durability::Synced).await.unwrap(), sha);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified
    );
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, [std::ffi::OsString::from(format!("{s}.eml"))]);
    assert_eq!(archive.read(&sha).await.unwrap(), bytes);

    // Two writers of the same message at once both succeed.
    let other = message(b"another message");
    let (x, y) = tokio::join!(
        archive.put(&other, Durability::Synced),
        archive.put(&other, Durability::Deferred)
    );
    assert_eq!(x.unwrap(), y.unwrap());

    // A file that does not hold the bytes its name says, as a power cut
    // leaves a deferred put (empty, short, or zeros of the right size), is
    // written again when the message comes again.
    for torn in [Vec::new(), b"short".to_vec(), vec![0; bytes.len()]] {
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(put(Durability::Deferred).await.unwrap(), sha);
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
    // A big one whose last byte differs, past the first chunk compared.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut bad = big.clone();
    *bad.last_mut().unwrap() ^= 1;
    let big_path = archive.path_of(&Sha256::of(&big));
    std::fs::create_dir_all(big_path.parent().unwrap()).unwrap();
    std::fs::write(&big_path, &bad).unwrap();
    archive
        .put(&message(&big), Durability::Deferred)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&big_path).unwrap(), big);
    archive.sync().await.unwrap();
    // Reading one whose content no longer matches its name fails.
    let mut flipped = bytes.clone();
    flipped[0] ^= 1;
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(
        archive.read(&sha).await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn a_failed_archive_sync_is_tried_again_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let archive = Archive::new(&root);
    // Nothing deferred: nothing to sync, even with no archive at all.
    archive.sync().await.unwrap();
    archive
        .put(&message(b"deferred"), Durability::Deferred)
        .await
        .unwrap();
    let away = dir.path().join("away");
    std::fs::rename(&root, &away).unwrap();
    assert!(archive.sync().await.is_err());
    // Still owed: a second try fails the same way rather than passing.
    assert!(archive.sync().await.is_err());
    std::fs::rename(&away, &root).unwrap();
    archive.sync().await.unwrap();
    std::fs::rename(&root, &away).unwrap();
    archive.sync().await.unwrap();
}

#[tokio::test]
async fn messages_archived_in_the_two_level_layout_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::new(dir.path().join("archive"));
    let bytes = b"From: a@b.cn\r\nSubject: old\r\n\r\nkept before 2026-11\r\n".to_vec();
    let sha = Sha256::of(&bytes);
    let s = sha.as_str();
    let old = dir.path().join("archive").join(&s[0..2]).join(&s[2..4]);
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join(format!("{s}.eml")), &bytes).unwrap();

    assert_eq!(archive.read(&sha).await.unwrap(), bytes);
    // A copy in the current layout is the one read once it exists.
    assert_eq!(
        archive
            .put(&message(&bytes), Durability::Synced)
            .await
            .unwrap(),
        sha
    );
    std::fs::remove_dir_all(&old).unwrap();
    assert_eq!(archive.read(&sha).await.unwrap(), bytes);
    // Neither there: the error names the current place.
    std::fs::remove_file(archive.path_of(&sha)).unwrap();
    match archive.read(&sha).await {
        Err(StoreError::Io { path, .. }) => assert_eq!(path, archive.path_of(&sha)),
        other => panic!("expected a missing file, got {other:?}"),
    }
}

#[tokio::test]
async fn reprocess_replaces_the_analysis_and_sends_nothing() {
    for db in dbs().await {
        let s = &db.store;
        let msg = raw("to reprocess", file("r.eml"));
        let mut before = analysis(
            "unit@example.cn",
            None,
            at(5, 9),
            vec![doc("附件.bin", DocumentKind::Other, DocForm::Other, None)],
        );
        before
            .problems
            .push(Problem::new(ProblemCode::FileUnreadable, "附件无法读取"));
        let id = s
            .record(&msg, &before, Some(ack_for(&msg, "unit@example.cn")), now())
            .await
            .unwrap()
            .message_id();

        // A better reader finds the form inside and the unit.
        let after = analysis(
            "unit@example.cn",
            Some("nj-kjj"),
            at(5, 9),
            vec![doc(
                "推荐表.xlsx",
                DocumentKind::RecommendationForm,
                DocForm::Electronic,
                Some(recommendation(&["科普讲座", "科普展览"])),
            )],
        );
        s.update_analysis(id, &after).await.unwrap();

        let detail = s.show_message(id).await.unwrap().unwrap();
        let sub = detail.submission.unwrap();
        assert_eq!(sub.org, Some(OrgId::from("nj-kjj")), "{}", db.label);
        assert_eq!(sub.documents.len(), 1, "{}", db.label);
        assert_eq!(
            sub.documents[0].kind,
            DocumentKind::RecommendationForm,
            "{}",
            db.label
        );
        assert!(sub.problems.is_empty(), "{}", db.label);
        assert_eq!(detail.message.parse_status, "ok", "{}", db.label);
        assert_eq!(detail.records.len(), 4, "{}", db.label);
        assert_eq!(detail.outbox.len(), 1, "{}: still the one ack", db.label);
        let items = s.messages_for_reprocess().await.unwrap();
        assert_eq!(items.len(), 1, "{}", db.label);
        assert_eq!(items[0].origin, file("r.eml"), "{}", db.label);
        assert_eq!(items[0].sha256, Sha256::of(&msg.bytes), "{}", db.label);

        assert!(matches!(
            s.update_analysis(MessageId(9999), &after).await,
            Err(StoreError::NotFound(_))
        ));
    }
}

/// SQLite only: two processes sharing one database file is the case where
/// the database is busy; the caller must then retry, not drop the message.
#[tokio::test]
async fn busy_database_is_retryable() {
    use sqlx::Connection;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("baosong.db").display());
    let store = Store::open(&url).await.unwrap();
    let mut other_process = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut other_process)
        .await
        .unwrap();

    // Waits out busy_timeout, then gives up with a retryable error.
    let err = store
        .enqueue(mail("reminder:busy"), now())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut other_process)
        .await
        .unwrap();
    assert!(
        store
            .enqueue(mail("reminder:busy"), now())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn nul_in_cell_text_and_problems_is_stored_without_it() {
    for db in dbs().await {
        let s = &db.store;
        let mut d = doc(
            "推荐表.xlsx",
            DocumentKind::RecommendationForm,
            DocForm::Electronic,
            Some(recommendation(&["活动\0甲"])),
        );
        d.problems.push(Problem::new(
            ProblemCode::SummaryTooLong,
            "第1项“活动\0甲”简介过长",
        ));
        let a = analysis("unit@example.cn", Some("nj-kjj"), at(3, 9), vec![d]);
        let msg = raw("nul", file("nul.eml"));
        s.record(&msg, &a, None, now()).await.unwrap();
        let names: Vec<String> = s
            .records_for_form(
                &CampaignId::from("js-2025"),
                &DeadlineId::from("recommend"),
                &FormId::from("tuijianbiao"),
            )
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.key == "name")
            .map(|r| r.value.text)
            .collect();
        assert_eq!(names, ["活动甲"], "{}", db.label);
    }
}

/// The synced commits [`Store::sync`] has made, read on a connection of its own.
async fn sync_points(url: &str) -> i64 {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT n FROM sync_point")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn a_sync_for_commits_already_ended_always_commits_synced() {
    for db in dbs().await {
        let s = &db.store;
        let points = || sync_points(&db.url);
        s.sync().await.unwrap();
        let before = points().await;
        // Nothing is marked unsynced, as when another caller's sync took
        // the mark while a commit on another connection was still going.
        s.sync().await.unwrap();
        assert_eq!(points().await, before, "{}: skipped", db.label);
        s.sync_committed().await.unwrap();
        assert_eq!(points().await, before + 1, "{}: committed", db.label);
    }
}

#[tokio::test]
async fn every_problem_of_a_message_is_stored_in_order_past_one_statements_rows() {
    for db in dbs().await {
        let s = &db.store;
        let mut d = doc(
            "推荐表.xlsx",
            DocumentKind::RecommendationForm,
            DocForm::Electronic,
            Some(recommendation(&["活动甲"])),
        );
        // More than one multi-row INSERT takes (64).
        let said: Vec<String> = (1..=70).map(|i| format!("第{i}项简介过长")).collect();
        for text in &said {
            d.problems
                .push(Problem::new(ProblemCode::SummaryTooLong, text.clone()));
        }
        let mut a = analysis("unit@example.cn", Some("nj-kjj"), at(3, 9), vec![d]);
        a.problems
            .push(Problem::new(ProblemCode::SummaryTooLong, "邮件本身的问题"));
        let msg = raw("many problems", file("many.eml"));
        let Recorded::New { message_id, .. } = s.record(&msg, &a, None, now()).await.unwrap()
        else {
            panic!("{}: not new", db.label);
        };
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let rows: Vec<(Option<i64>, String)> = sqlx::query_as(
            "SELECT document_id, message FROM problems WHERE message_id = $1 ORDER BY id",
        )
        .bind(message_id.0)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        let of_document: Vec<&str> = rows
            .iter()
            .filter(|(doc, _)| doc.is_some())
            .map(|(_, m)| m.as_str())
            .collect();
        assert_eq!(of_document, said, "{}", db.label);
        let own: Vec<&str> = rows
            .iter()
            .filter(|(doc, _)| doc.is_none())
            .map(|(_, m)| m.as_str())
            .collect();
        assert_eq!(own, ["邮件本身的问题"], "{}", db.label);
    }
}

#[tokio::test]
async fn a_deferred_record_is_seen_at_once_and_one_sync_puts_the_group_on_disk() {
    for db in dbs().await {
        let s = &db.store;
        let a = analysis("unit@example.cn", Some("nj-kjj"), at(5, 9), Vec::new());
        let points = || sync_points(&db.url);
        let before = points().await;
        for tag in ["d1", "d2", "d3"] {
            let m = raw(tag, file(&format!("{tag}.eml")));
            let (recorded, _) = s
                .record_leasing_ack(&m, &a, decided(None), None, Durability::Deferred, at(5, 10))
                .await
                .unwrap();
            assert!(matches!(recorded, Recorded::New { .. }), "{}", db.label);
        }
        let seen = s
            .submissions_for(&CampaignId::from("js-2025"), &DeadlineId::from("recommend"))
            .await
            .unwrap();
        assert_eq!(seen.len(), 3, "{}: visible before the sync", db.label);
        s.sync().await.unwrap();
        assert_eq!(points().await, before + 1, "{}: one commit", db.label);
        s.sync().await.unwrap();
        assert_eq!(points().await, before + 1, "{}: nothing left", db.label);
    }
}
