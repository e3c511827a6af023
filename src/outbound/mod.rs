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
    /// The answer to a coordinator's command reply.
    Reply,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ack => "ack",
            Self::Reminder => "reminder",
            Self::Digest => "digest",
            Self::Reply => "reply",
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

/// The coordinators' status digest: what needs a person first, then what
/// changed since the last digest, then the matrix of the deadlines that
/// matter now.
#[derive(Debug, Clone, Serialize)]
pub struct DigestData {
    pub to: Vec<MailAddress>,
    pub generated_at: DateTime<FixedOffset>,
    /// 需处理: mail from unknown senders, acks held back, unreadable mail
    /// and files, mail we could not send; oldest first, each numbered.
    pub attention: Vec<AttentionItem>,
    /// What changed since the last digest; None for the first one.
    pub changes: Option<DigestChanges>,
    pub campaigns: Vec<DigestCampaign>,
}

/// Whether an item of 需处理 is a stored message or a mail we could not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    Message,
    Send,
}

/// Something a coordinator must look at.
#[derive(Debug, Clone, Serialize)]
pub struct AttentionItem {
    /// What to reply with: `#42` (a stored message, `baosong show 42`) or
    /// `#S3` (a mail we could not send).
    pub number: String,
    pub kind: AttentionKind,
    /// The sender of the message; for a failed send, its recipients.
    pub who: String,
    pub subject: String,
    /// When the message arrived, or the failed mail was queued.
    pub at: DateTime<FixedOffset>,
    /// Why, e.g. `未能确认单位`, `附件无法读取：…`, `发送失败：550 …`.
    pub reason: String,
    /// Not listed in the last digest.
    pub new: bool,
}

/// What happened since the last digest.
#[derive(Debug, Clone, Serialize)]
pub struct DigestChanges {
    /// When the last digest was made.
    pub since: DateTime<FixedOffset>,
    /// Mail that reached a unit's record since then (received or assigned).
    pub received: Vec<ReceivedItem>,
    /// Units that have everything a deadline asks now and had not then.
    pub completed: Vec<UnitChange>,
    /// Units with problems they did not have then.
    pub problems: Vec<UnitChange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReceivedItem {
    /// The message number.
    pub number: i64,
    pub org_name: String,
    pub deadline_name: String,
    pub at: DateTime<FixedOffset>,
    /// What it carried, e.g. `推荐表电子版`.
    pub files: Vec<String>,
    pub late: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitChange {
    pub org_name: String,
    pub deadline_name: String,
    /// The new problems (empty for a unit that became complete).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DigestCampaign {
    pub name: String,
    /// Deadlines still open or closed within the last
    /// [`data::RECENT_DAYS`] days, each with its matrix.
    pub deadlines: Vec<DigestDeadline>,
    /// Deadlines closed before that: one line each.
    pub earlier: Vec<DeadlineLine>,
}

/// A deadline closed a while ago, as one line.
#[derive(Debug, Clone, Serialize)]
pub struct DeadlineLine {
    pub name: String,
    pub due: DateTime<FixedOffset>,
    pub counts: DigestCounts,
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
    /// Nothing received yet (counted in `counts.none`).
    pub nothing: bool,
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

/// The answer to a coordinator's command reply.
#[derive(Debug, Clone, Serialize)]
pub struct ReplyData {
    pub to: MailAddress,
    pub generated_at: DateTime<FixedOffset>,
    /// One per command, in the order written.
    pub results: Vec<CommandResult>,
    /// The commands are explained: asked for (`帮助`), or a line could not be read.
    pub help: bool,
    /// The consolidated spreadsheet is attached (`汇总表`).
    pub spreadsheet: bool,
    pub original_subject: String,
    /// Message-ID of the coordinator's mail, with or without `<>`.
    pub original_message_id: Option<String>,
    pub original_references: Vec<String>,
}

/// What became of one command.
#[derive(Debug, Clone, Serialize)]
pub struct CommandResult {
    /// The line as the coordinator wrote it.
    pub command: String,
    /// It was done (or there was nothing to do).
    pub ok: bool,
    /// What was done, or why not, in a sentence.
    pub said: String,
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
            attention: vec![
                AttentionItem {
                    number: "#42".into(),
                    kind: AttentionKind::Message,
                    who: "wangwu1987@qq.com".into(),
                    subject: "材料".into(),
                    at: at(2025, 6, 19, 16, 12, 0),
                    reason: "未能确认单位；发件人不在单位名录中，回执暂未发送，确认单位后发出"
                        .into(),
                    new: true,
                },
                AttentionItem {
                    number: "#S3".into(),
                    kind: AttentionKind::Send,
                    who: "xzkjjrc@xz.gov.cn".into(),
                    subject: "提醒：请于2025年6月22日24:00前报送活动总结报告和开展情况统计表"
                        .into(),
                    at: at(2025, 6, 19, 9, 0, 0),
                    reason: "发送失败：550 Mailbox not found".into(),
                    new: false,
                },
            ],
            changes: Some(DigestChanges {
                since: at(2025, 6, 19, 8, 30, 0),
                received: vec![ReceivedItem {
                    number: 57,
                    org_name: "南京市科学技术局".into(),
                    deadline_name: "活动总结报告和开展情况统计表".into(),
                    at: at(2025, 6, 19, 15, 2, 0),
                    files: vec![
                        "总结报告".into(),
                        "统计表电子版".into(),
                        "统计表盖章扫描件".into(),
                    ],
                    late: false,
                }],
                completed: vec![UnitChange {
                    org_name: "南京市科学技术局".into(),
                    deadline_name: "活动总结报告和开展情况统计表".into(),
                    problems: vec![],
                }],
                problems: vec![UnitChange {
                    org_name: "无锡市科学技术协会".into(),
                    deadline_name: "活动总结报告和开展情况统计表".into(),
                    problems: vec!["《统计表.xlsx》：经费投入“约5”单位不明，请填写万元数".into()],
                }],
            }),
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
                                cell(CellState::Received, None, "6月19日"),
                                cell(CellState::Received, None, "6月19日"),
                                cell(CellState::Received, Some(true), "6月19日"),
                            ],
                            problems: vec![],
                            complete: true,
                            nothing: false,
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
                            nothing: false,
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
                            nothing: true,
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
                earlier: vec![DeadlineLine {
                    name: "特色群众性主题实践活动推荐表".into(),
                    due: at(2025, 5, 6, 23, 59, 59),
                    counts: DigestCounts {
                        orgs: 3,
                        complete: 2,
                        partial: 1,
                        none: 0,
                        late: 1,
                    },
                }],
            }],
        }
    }

    pub fn reply() -> ReplyData {
        let result = |command: &str, ok, said: &str| CommandResult {
            command: command.into(),
            ok,
            said: said.into(),
        };
        ReplyData {
            to: addr("kjtrcc83236071@163.com"),
            generated_at: at(2025, 6, 20, 9, 5, 0),
            results: vec![
                result(
                    "指派 #42 南京市科技局",
                    true,
                    "#42 已指派给南京市科学技术局，已记住发件地址 wangwu1987@qq.com，回执已发出",
                ),
                result(
                    "暂停提醒 南通市科协",
                    true,
                    "已暂停给南通市科学技术协会的提醒",
                ),
                result("忽略 #43", false, "没有编号为 #43 的邮件"),
                result("汇总表", true, "汇总表见附件"),
            ],
            help: false,
            spreadsheet: true,
            original_subject: "回复：报送情况汇总（截至2025年6月20日 08:30）".into(),
            original_message_id: Some("<tencent_1A2B3C@qq.com>".into()),
            original_references: vec![
                "<20250620.k3j9x2m4q8r7t6y5.digest@baosong.kjt.example.cn>".into(),
            ],
        }
    }
}
