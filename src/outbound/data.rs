//! What each mail says, built from the analysis and the status view: pure
//! functions, no store and no clock. The ack, the reminder and the digest
//! read the same [`UnitStatus`], so they cannot disagree about a unit.
//!
//! Sender text (subjects, file names) is quoted shortened: an ack is not a
//! place to repeat whatever a stranger wrote.

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;

use serde::{Deserialize, Serialize};

use super::{
    AckData, AckFile, AttentionItem, Cell, DeadlineLine, DigestCampaign, DigestChanges,
    DigestCounts, DigestData, DigestDeadline, DigestRow, ReminderData, Total, UnitChange,
};
use crate::config::{CampaignConfig, Config, DeadlineConfig, FieldType, Layout};
use crate::directory::{Directory, Organisation};
use crate::fold::clean_line;
use crate::model::{Analysis, FieldValue};
use crate::status::{CellState, DeadlineStatus, UnitState, UnitStatus, wants_scan};
use crate::types::{CampaignId, DeadlineId, FormId, MailAddress, OrgId};

/// Longest quote of a sender's subject or file name.
pub const QUOTE_CHARS: usize = 60;
/// Most problems listed for one file; the rest are counted.
pub const PROBLEMS_PER_FILE: usize = 20;

/// `t` as people read it where the campaign is (or the schedule's zone).
pub fn local(tz: Tz, t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&tz).fixed_offset()
}

/// The zone of a campaign, else the schedule's.
pub fn zone(config: &Config, campaign: Option<&CampaignConfig>) -> Tz {
    campaign.map_or(config.schedule.timezone.0, CampaignConfig::tz)
}

/// The acknowledgement of `a`. `deadline` is what it was matched to;
/// `unit` is where the unit stands counting this mail.
pub fn ack(
    config: &Config,
    a: &Analysis,
    to: MailAddress,
    deadline: Option<(&CampaignConfig, &DeadlineConfig)>,
    unit: Option<&UnitStatus>,
    now: DateTime<Utc>,
) -> AckData {
    let tz = zone(config, deadline.map(|(c, _)| c));
    let files: Vec<AckFile> = a
        .documents
        .iter()
        .map(|d| AckFile {
            name: clean_line(&d.filename, QUOTE_CHARS),
            path: clean_line(&d.path, QUOTE_CHARS),
            kind_label: d.kind.label_zh().to_owned(),
            form_label: d.form.label_zh().to_owned(),
            // “未见公章” only where the notice asks for a stamped scan.
            sealed: d
                .sealed
                .filter(|s| *s || wants_scan(deadline.map(|(c, _)| c), d.kind)),
            read: d.table.as_ref().and_then(|t| match (&t.rows, &t.fields) {
                (Some(r), _) => Some(format!("读取{}项{}", r.len(), t.form)),
                (_, Some(f)) => Some(format!("读取{}个数据项", f.len())),
                _ => None,
            }),
            problems: capped(d.problems.iter().map(|p| p.message.clone())),
        })
        .collect();
    // The mail's own problems, then what the unit's whole record adds
    // (too few photos over several mails): each said once.
    let mut problems: Vec<String> = a.problems.iter().map(|p| p.message.clone()).collect();
    if let Some(u) = unit {
        for p in &u.problems {
            let told = problems.contains(&p.message)
                || files.iter().any(|f| f.problems.contains(&p.message));
            if !told {
                problems.push(p.message.clone());
            }
        }
    }
    AckData {
        to,
        to_name: a.ack.to_name.clone(),
        org_name: a.organisation.name.clone(),
        campaign_name: deadline.map(|(c, _)| c.name.clone()),
        deadline_name: deadline.map(|(_, d)| d.display_name()),
        deadline_due: deadline.map(|(_, d)| local(tz, d.due_at)),
        received_at: local(tz, a.arrived_at.unwrap_or(now)),
        late: a.late == Some(true),
        files,
        problems: capped(problems.into_iter()),
        missing: unit.map(|u| u.missing.clone()).unwrap_or_default(),
        redo: unit.map(|u| u.redo.clone()).unwrap_or_default(),
        complete: unit.is_some_and(UnitStatus::is_complete),
        unknown_sender: a.organisation.id.is_none(),
        original_subject: clean_line(a.header.subject.as_deref().unwrap_or_default(), QUOTE_CHARS),
        original_message_id: a.header.message_id.clone(),
        original_references: a.header.references.clone(),
    }
}

/// At most [`PROBLEMS_PER_FILE`] lines, then one that counts the rest.
fn capped(lines: impl Iterator<Item = String>) -> Vec<String> {
    let all: Vec<String> = lines.collect();
    if all.len() <= PROBLEMS_PER_FILE {
        return all;
    }
    let rest = all.len() - PROBLEMS_PER_FILE;
    let mut out: Vec<String> = all.into_iter().take(PROBLEMS_PER_FILE).collect();
    out.push(format!(
        "另有{rest}处问题，请对照以上说明检查全表后重新发送。"
    ));
    out
}

/// A reminder to `org`, or None when it has nothing to send or redo or no
/// address a mail can go to.
pub fn reminder(
    campaign: &CampaignConfig,
    deadline: &DeadlineConfig,
    org: &Organisation,
    unit: &UnitStatus,
    now: DateTime<Utc>,
) -> Option<ReminderData> {
    if unit.is_complete() {
        return None;
    }
    let to: Vec<MailAddress> = org
        .emails
        .iter()
        .filter_map(|e| MailAddress::parse(e))
        .collect();
    if to.is_empty() {
        return None;
    }
    let mut missing = unit.missing.clone();
    missing.extend(unit.redo.iter().map(|r| format!("{r}（需修改后重新发送）")));
    let received = unit
        .cells
        .iter()
        .zip(crate::status::columns(deadline))
        .filter(|(c, _)| c.state.is_met())
        .map(|(_, col)| col.label)
        .collect();
    Some(ReminderData {
        to,
        org_name: org.name.clone(),
        campaign_name: campaign.name.clone(),
        deadline_name: deadline.display_name(),
        due: local(campaign.tz(), deadline.due_at),
        days_left: (deadline.due_at - now).num_days().max(0),
        missing,
        received,
    })
}

/// One deadline's table for the digest, `status` and the export.
pub fn deadline_table(
    campaign: &CampaignConfig,
    deadline: &DeadlineConfig,
    status: &DeadlineStatus,
    directory: &Directory,
    totals: Vec<Total>,
) -> DigestDeadline {
    let tz = campaign.tz();
    let rows = status
        .units
        .iter()
        .map(|u| DigestRow {
            org_name: directory
                .get(&u.org)
                .map_or_else(|| u.org.to_string(), |o| o.name.clone()),
            cells: u
                .cells
                .iter()
                .map(|c| {
                    let day = c
                        .arrived_at
                        .filter(|_| c.state != CellState::Missing)
                        .map(|t| local(tz, t).format("%-m月%-d日").to_string())
                        .unwrap_or_default();
                    Cell {
                        state: c.state,
                        sealed: c.sealed,
                        // A late copy to fix shows as to fix; say it is late too.
                        text: if c.late && c.state == CellState::Problem {
                            format!("{day} 逾期")
                        } else {
                            day
                        },
                    }
                })
                .collect(),
            problems: u.problems.iter().map(|p| p.message.clone()).collect(),
            complete: u.is_complete(),
            nothing: u.state == UnitState::None,
        })
        .collect();
    let c = &status.counts;
    DigestDeadline {
        name: deadline.display_name(),
        due: local(tz, deadline.due_at),
        columns: status.columns.iter().map(|c| c.label.clone()).collect(),
        rows,
        counts: DigestCounts {
            orgs: c.orgs,
            complete: c.complete,
            partial: c.partial,
            none: c.none,
            late: c.late,
        },
        totals,
    }
}

/// Sums over units of the numeric fields of each `fields` form (统计表) a
/// deadline requires; `values` gives a form's (key, value) pairs, one per
/// unit's latest form.
pub fn totals(
    config: &Config,
    deadline: &DeadlineConfig,
    values: impl Fn(&FormId) -> Vec<(String, FieldValue)>,
) -> Vec<Total> {
    let mut out = Vec::new();
    for form in config
        .forms
        .iter()
        .filter(|f| f.layout == Layout::Fields)
        .filter(|f| deadline.requires.iter().any(|r| r.accepts(f.kind)))
    {
        let records = values(&form.id);
        for field in &form.fields {
            if !matches!(field.ty, FieldType::Integer | FieldType::Decimal) {
                continue;
            }
            let nums: Vec<f64> = records
                .iter()
                .filter(|(k, _)| *k == field.key)
                .filter_map(|(_, v)| v.value.as_f64())
                .collect();
            if nums.is_empty() {
                continue;
            }
            // Summing from +0.0: an f64 sum starts at -0.0 and would print "-0".
            let sum = nums.iter().fold(0.0, |a, b| a + b);
            let unit = field.unit.as_deref().unwrap_or("");
            let value = if sum.fract() == 0.0 {
                format!("{sum:.0}{unit}")
            } else {
                format!("{}{unit}", (sum * 100.0).round() / 100.0)
            };
            out.push(Total {
                label: field.display_name().to_owned(),
                value,
            });
        }
    }
    out
}

/// A deadline closed this many days ago or less keeps its matrix in the
/// digest; an older one is one line.
pub const RECENT_DAYS: i64 = 7;

/// Whether `deadline` gets its matrix in a digest made at `now`.
pub fn is_recent(deadline: &DeadlineConfig, now: DateTime<Utc>) -> bool {
    deadline.due_at > now - chrono::Duration::days(RECENT_DAYS)
}

/// A deadline's table as one line.
pub fn deadline_line(table: &DigestDeadline) -> DeadlineLine {
    DeadlineLine {
        name: table.name.clone(),
        due: table.due,
        counts: table.counts.clone(),
    }
}

/// What a digest said, kept so the next one can say what changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub units: Vec<UnitSnapshot>,
    /// The numbers of its 需处理 items (`#42`, `#S3`).
    pub attention: Vec<String>,
}

/// One unit's state for one deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitSnapshot {
    pub campaign: CampaignId,
    pub deadline: DeadlineId,
    pub org: OrgId,
    pub complete: bool,
    pub problems: Vec<String>,
}

/// Every unit of one deadline's status, for a [`Snapshot`].
pub fn unit_snapshots(
    campaign: &CampaignConfig,
    deadline: &DeadlineConfig,
    status: &DeadlineStatus,
) -> Vec<UnitSnapshot> {
    status
        .units
        .iter()
        .map(|u| UnitSnapshot {
            campaign: campaign.id.clone(),
            deadline: deadline.id.clone(),
            org: u.org.clone(),
            complete: u.is_complete(),
            problems: u.problems.iter().map(|p| p.message.clone()).collect(),
        })
        .collect()
}

/// Units that became complete, and units with problems they did not have,
/// from `before` to `now`. A unit `before` does not list had nothing.
pub fn unit_changes(
    before: &Snapshot,
    now: &Snapshot,
    config: &Config,
    directory: &Directory,
) -> (Vec<UnitChange>, Vec<UnitChange>) {
    let mut completed = Vec::new();
    let mut problems = Vec::new();
    for u in &now.units {
        let was = before
            .units
            .iter()
            .find(|b| b.org == u.org && b.campaign == u.campaign && b.deadline == u.deadline);
        let change = |problems: Vec<String>| UnitChange {
            org_name: directory
                .get(&u.org)
                .map_or_else(|| u.org.to_string(), |o| o.name.clone()),
            deadline_name: config
                .campaign(&u.campaign)
                .and_then(|c| c.deadline(&u.deadline))
                .map_or_else(|| u.deadline.to_string(), DeadlineConfig::display_name),
            problems,
        };
        if u.complete && !was.is_some_and(|w| w.complete) {
            completed.push(change(Vec::new()));
        }
        let new: Vec<String> = u
            .problems
            .iter()
            .filter(|p| !was.is_some_and(|w| w.problems.contains(p)))
            .cloned()
            .collect();
        if !new.is_empty() {
            problems.push(change(new));
        }
    }
    (completed, problems)
}

/// The coordinators' digest.
pub fn digest(
    config: &Config,
    campaigns: Vec<DigestCampaign>,
    attention: Vec<AttentionItem>,
    changes: Option<DigestChanges>,
    now: DateTime<Utc>,
) -> DigestData {
    DigestData {
        to: config
            .schedule
            .coordinators
            .iter()
            .filter_map(|a| MailAddress::parse(a))
            .collect(),
        generated_at: local(config.schedule.timezone.0, now),
        attention,
        changes,
        campaigns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::Config;
    use crate::status::{Sent, SentDoc, unit_status};
    use crate::types::{DocForm, DocumentKind, OrgId, Sha256};

    fn setup() -> (Config, Directory) {
        let c = Config::example(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        (c, Directory::example())
    }

    fn rec(form: DocForm) -> SentDoc {
        SentDoc {
            path: "推荐表.xlsx".into(),
            kind: DocumentKind::RecommendationForm,
            form,
            sha256: Sha256::of(form.as_str().as_bytes()),
            sealed: None,
            items: None,
            problems: Vec::new(),
        }
    }

    #[test]
    fn a_complete_unit_gets_no_reminder_and_a_partial_one_hears_what_is_missing() {
        let (c, dir) = setup();
        let (camp, dl) = (&c.campaigns[0], &c.campaigns[0].deadlines[0]);
        let org = dir.get(&OrgId::from("nj-kjj")).unwrap();
        let now = dl.due_at - chrono::Duration::days(2);
        let mail = |docs| Sent {
            arrived_at: now,
            late: false,
            documents: docs,
            problems: Vec::new(),
        };
        let done = unit_status(
            dl,
            &org.id,
            &[mail(vec![rec(DocForm::Scan), rec(DocForm::Electronic)])],
        );
        assert!(reminder(camp, dl, org, &done, now).is_none());
        let half = unit_status(dl, &org.id, &[mail(vec![rec(DocForm::Electronic)])]);
        let r = reminder(camp, dl, org, &half, now).unwrap();
        assert_eq!(r.missing, ["推荐表盖章扫描件"]);
        assert_eq!(r.received, ["推荐表电子版"]);
        assert_eq!(r.days_left, 2);
        assert_eq!(r.to[0].as_str(), "njkjjrcc@nanjing.gov.cn");
    }

    #[test]
    fn a_unit_that_became_complete_and_new_problems_are_changes() {
        let (c, dir) = setup();
        let unit = |org: &str, complete, problems: &[&str]| UnitSnapshot {
            campaign: c.campaigns[0].id.clone(),
            deadline: c.campaigns[0].deadlines[0].id.clone(),
            org: OrgId::from(org),
            complete,
            problems: problems.iter().map(|p| (*p).to_owned()).collect(),
        };
        let before = Snapshot {
            units: vec![
                unit("nj-kjj", false, &[]),
                unit("wx-kx", false, &["旧问题"]),
            ],
            attention: vec![],
        };
        let now = Snapshot {
            units: vec![
                unit("nj-kjj", true, &[]),
                unit("wx-kx", false, &["旧问题", "新问题"]),
                unit("xz-kjj", true, &[]),
            ],
            attention: vec![],
        };
        let (completed, problems) = unit_changes(&before, &now, &c, &dir);
        let names: Vec<&str> = completed.iter().map(|u| u.org_name.as_str()).collect();
        assert_eq!(names, ["南京市科学技术局", "徐州市科学技术局"]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].org_name, "无锡市科学技术协会");
        assert_eq!(problems[0].problems, ["新问题"]);
        let (completed, problems) = unit_changes(&now, &now, &c, &dir);
        assert!(completed.is_empty() && problems.is_empty());
    }

    #[test]
    fn long_problem_lists_are_cut_and_counted() {
        let lines = capped((0..25).map(|i| format!("第{i}项")));
        assert_eq!(lines.len(), PROBLEMS_PER_FILE + 1);
        assert!(lines.last().unwrap().starts_with("另有5处问题"));
        assert_eq!(capped((0..3).map(|i| i.to_string())).len(), 3);
    }
}
