//! Outbound mail: what each mail says ([`data`], built from the analysis and
//! the status view), the templates that turn it into Chinese text and HTML,
//! RFC 5322 composition, and the transports (SMTP or .eml files).
//!
//! Pure data in, mail out: nothing here touches the database. A mail is
//! composed when it is enqueued, its bytes and Message-ID stored, and later
//! those exact bytes go to a [`transport::MailSender`].
//!
//! Times are `DateTime<FixedOffset>` already in the campaign's zone: the
//! templates print the wall-clock time they are given.

pub mod compose;
pub mod data;
pub mod templates;
pub mod transport;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

pub use crate::status::CellState;
use crate::types::MailAddress;
pub use compose::{Outgoing, new_message_id, to_bytes};
pub use templates::{Rendered, TemplateError, Templates};
pub use transport::{SendError, Transport};

/// Which of our mails a Message-ID belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    Ack,
    Reminder,
    Digest,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ack => "ack",
            Self::Reminder => "reminder",
            Self::Digest => "digest",
        }
    }
}

/// The acknowledgement (回执) of one received message.
#[derive(Debug, Clone, Serialize)]
pub struct AckData {
    /// Where the ack goes: the sender's Reply-To, else From.
    pub to: MailAddress,
    /// The sender's display name, if the mail had one.
    pub to_name: Option<String>,
    /// The matched unit; `None` when it could not be told.
    pub org_name: Option<String>,
    pub campaign_name: Option<String>,
    pub deadline_name: Option<String>,
    pub deadline_due: Option<DateTime<FixedOffset>>,
    /// When the message reached the mailbox.
    pub received_at: DateTime<FixedOffset>,
    pub late: bool,
    pub files: Vec<AckFile>,
    /// Problems with the message as a whole (no attachment, unreadable, …)
    /// and with what the unit sent so far (too few photos, too many items).
    pub problems: Vec<String>,
    /// What the deadline still needs from this unit, e.g. `推荐表盖章扫描件`.
    pub missing: Vec<String>,
    /// What the unit sent but must send again, fixed.
    pub redo: Vec<String>,
    /// Everything the deadline asks of this unit is in, with nothing to fix.
    pub complete: bool,
    /// The sender's unit could not be determined: ask for its full name.
    pub unknown_sender: bool,
    pub original_subject: String,
    /// Message-ID of the mail being acknowledged, with or without `<>`.
    pub original_message_id: Option<String>,
    /// Its `References`, oldest first.
    pub original_references: Vec<String>,
}

/// One file of an acknowledged message.
#[derive(Debug, Clone, Serialize)]
pub struct AckFile {
    pub name: String,
    /// Where it was found, e.g. `材料.zip/推荐表.xlsx`; equal to `name` for a plain attachment.
    pub path: String,
    /// The document, e.g. `推荐表`.
    pub kind_label: String,
    /// `电子版`, `盖章扫描件`, `影像资料`.
    pub form_label: String,
    /// For scans: whether a red seal was seen.
    pub sealed: Option<bool>,
    /// What was read, e.g. `读取3项活动`.
    pub read: Option<String>,
    pub problems: Vec<String>,
}

/// A reminder to one unit that still misses something for a deadline.
#[derive(Debug, Clone, Serialize)]
pub struct ReminderData {
    pub to: Vec<MailAddress>,
    pub org_name: String,
    pub campaign_name: String,
    pub deadline_name: String,
    pub due: DateTime<FixedOffset>,
    /// Whole days from now to `due` (0 = due today).
    pub days_left: i64,
    pub missing: Vec<String>,
    pub received: Vec<String>,
}

/// The coordinators' status digest.
#[derive(Debug, Clone, Serialize)]
pub struct DigestData {
    pub to: Vec<MailAddress>,
    pub generated_at: DateTime<FixedOffset>,
    /// 需人工处理: mail from unknown senders, acks held back, mail that
    /// could not be read or recorded, oldest first.
    pub attention: Vec<AttentionItem>,
    pub campaigns: Vec<DigestCampaign>,
    /// Outgoing mail that could not be delivered.
    pub failed_sends: Vec<FailedSend>,
}

/// A stored mail a coordinator must look at.
#[derive(Debug, Clone, Serialize)]
pub struct AttentionItem {
    /// The message number (`baosong show 42`).
    pub number: i64,
    pub from: String,
    pub subject: String,
    pub received_at: DateTime<FixedOffset>,
    /// Why, e.g. `未能确认单位`, `回执未发送：…`, `邮件无法处理：…`.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DigestCampaign {
    pub name: String,
    pub deadlines: Vec<DigestDeadline>,
}

/// One deadline's status matrix: units × requirements.
#[derive(Debug, Clone, Serialize)]
pub struct DigestDeadline {
    pub name: String,
    pub due: DateTime<FixedOffset>,
    /// Requirement labels, e.g. `推荐表电子版`, `推荐表盖章扫描件`.
    pub columns: Vec<String>,
    pub rows: Vec<DigestRow>,
    pub counts: DigestCounts,
    /// Sums across units of the numeric fields (统计表), e.g. `开展次数（次）` → `152`.
    pub totals: Vec<Total>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DigestRow {
    pub org_name: String,
    /// One per column, in column order.
    pub cells: Vec<Cell>,
    /// Everything this unit has been told to fix.
    pub problems: Vec<String>,
    pub complete: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub state: CellState,
    pub sealed: Option<bool>,
    /// Short detail shown in the cell, e.g. `5月5日` or `简介超字数`; may be empty.
    pub text: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DigestCounts {
    pub orgs: usize,
    pub complete: usize,
    pub partial: usize,
    pub none: usize,
    pub late: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Total {
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedSend {
    pub to: String,
    pub subject: String,
    pub error: String,
}

/// Example data: validates templates at startup and fills `templates/README.md`'s examples.
pub mod sample {
    use chrono::{DateTime, FixedOffset, TimeZone};

    use super::*;

    fn addr(s: &str) -> MailAddress {
        MailAddress::parse(s).expect("a valid sample address")
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<FixedOffset> {
        let cst = FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
        cst.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("fixed offsets are unambiguous")
    }

    pub fn ack() -> AckData {
        AckData {
            to: addr("njkjjrcc@nanjing.gov.cn"),
            to_name: Some("王明".into()),
            org_name: Some("南京市科学技术局".into()),
            campaign_name: Some("2025年江苏省全国科技活动周和全国科技工作者日".into()),
            deadline_name: Some("特色群众性主题实践活动推荐表".into()),
            deadline_due: Some(at(2025, 5, 6, 23, 59, 59)),
            received_at: at(2025, 5, 5, 14, 3, 0),
            late: false,
            files: vec![
                AckFile {
                    name: "南京市推荐表.xlsx".into(),
                    path: "南京市推荐表.xlsx".into(),
                    kind_label: "推荐表".into(),
                    form_label: "电子版".into(),
                    sealed: None,
                    read: Some("读取3项活动".into()),
                    problems: vec!["第3项活动简介126字，超过100字".into()],
                },
                AckFile {
                    name: "附件2.pdf".into(),
                    path: "材料.zip/附件2.pdf".into(),
                    kind_label: "推荐表".into(),
                    form_label: "盖章扫描件".into(),
                    sealed: Some(false),
                    read: None,
                    problems: vec![],
                },
            ],
            problems: vec![],
            missing: vec![],
            redo: vec!["推荐表电子版".into(), "推荐表盖章扫描件".into()],
            complete: false,
            unknown_sender: false,
            original_subject: "南京市科技活动周推荐表".into(),
            original_message_id: Some("<abc123@nanjing.gov.cn>".into()),
            original_references: vec![],
        }
    }

    pub fn reminder() -> ReminderData {
        ReminderData {
            to: vec![addr("xzkx@xz.gov.cn")],
            org_name: "徐州市科学技术协会".into(),
            campaign_name: "2025年江苏省全国科技活动周和全国科技工作者日".into(),
            deadline_name: "特色群众性主题实践活动推荐表".into(),
            due: at(2025, 5, 6, 23, 59, 59),
            days_left: 3,
            missing: vec!["推荐表盖章扫描件".into()],
            received: vec!["推荐表电子版".into()],
        }
    }

    pub fn digest() -> DigestData {
        let cell = |state, sealed, text: &str| Cell {
            state,
            sealed,
            text: text.into(),
        };
        DigestData {
            to: vec![addr("kjtrcc83236071@163.com")],
            generated_at: at(2025, 6, 20, 8, 30, 0),
            campaigns: vec![DigestCampaign {
                name: "2025年江苏省全国科技活动周和全国科技工作者日".into(),
                deadlines: vec![DigestDeadline {
                    name: "活动总结报告和开展情况统计表".into(),
                    due: at(2025, 6, 22, 23, 59, 59),
                    columns: vec![
                        "总结报告".into(),
                        "统计表电子版".into(),
                        "统计表盖章扫描件".into(),
                    ],
                    rows: vec![
                        DigestRow {
                            org_name: "南京市科学技术局".into(),
                            cells: vec![
                                cell(CellState::Received, None, "6月18日"),
                                cell(CellState::Received, None, "6月18日"),
                                cell(CellState::Received, Some(true), "6月18日"),
                            ],
                            problems: vec![],
                            complete: true,
                        },
                        DigestRow {
                            org_name: "无锡市科学技术协会".into(),
                            cells: vec![
                                cell(CellState::Received, None, "6月19日"),
                                cell(CellState::Problem, None, "经费单位不明"),
                                cell(CellState::Missing, None, ""),
                            ],
                            problems: vec![
                                "《统计表.xlsx》：经费投入“约5”单位不明，请填写万元数".into(),
                            ],
                            complete: false,
                        },
                        DigestRow {
                            org_name: "徐州市科学技术局".into(),
                            cells: vec![
                                cell(CellState::Missing, None, ""),
                                cell(CellState::Missing, None, ""),
                                cell(CellState::Missing, None, ""),
                            ],
                            problems: vec![],
                            complete: false,
                        },
                    ],
                    counts: DigestCounts {
                        orgs: 3,
                        complete: 1,
                        partial: 1,
                        none: 1,
                        late: 0,
                    },
                    totals: vec![
                        Total {
                            label: "开展次数（次）".into(),
                            value: "152".into(),
                        },
                        Total {
                            label: "线下活动群众参与数量（人次）".into(),
                            value: "120500".into(),
                        },
                    ],
                }],
            }],
            attention: vec![AttentionItem {
                number: 42,
                from: "someone@qq.com".into(),
                subject: "材料".into(),
                received_at: at(2025, 6, 19, 16, 12, 0),
                reason: "未能确认单位".into(),
            }],
            failed_sends: vec![],
        }
    }
}
