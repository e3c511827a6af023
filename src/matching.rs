//! Matching: which organisation sent a message (address, domain, then content),
//! which campaign and deadline it answers, and whether it came late.

use chrono::{DateTime, Utc};

use crate::config::{CampaignConfig, Config};
use crate::directory::{Directory, Organisation};
use crate::fold::name_key;
use crate::model::{MatchedBy, OrgMatch};
use crate::types::{DeadlineId, DocumentKind, MailboxName, OrgId};

/// Places to look for a unit's name, strongest first.
#[derive(Debug, Clone, Default)]
pub struct ContentEvidence {
    /// Unit cells of the forms (推荐单位 / 地方/部门).
    pub form_units: Vec<String>,
    /// What the attached documents say: a report from a personal address
    /// often names its unit only there (报送单位：…, a 落款 above the date).
    pub documents: Vec<DocumentText>,
    pub subject: String,
    pub filenames: Vec<String>,
    /// The sender's display name.
    pub from_name: String,
    /// The end of the body, where signatures are.
    pub signature: String,
}

/// The text read from one attached document (the start of it, as
/// `Extraction.text` keeps it).
#[derive(Debug, Clone, Default)]
pub struct DocumentText {
    /// Where it was found, e.g. `材料.zip/总结报告.docx`.
    pub path: String,
    pub text: String,
}

impl DocumentText {
    /// Lines that state who wrote the document: `报送单位：X`, `X（盖章）`,
    /// and the 落款 (the line above a date that stands alone).
    fn statements(&self) -> Vec<&str> {
        let lines: Vec<&str> = self
            .text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let sign_off = lines.get(i + 1).is_some_and(|next| is_date_line(next))
                && line.chars().count() <= 30
                && !line.ends_with('。');
            if sign_off || unit_statement(line) || names_its_seal(line) {
                out.push(*line);
            }
        }
        out
    }

    /// The title: the first two lines, past an `附件1` line.
    fn heading(&self) -> Vec<&str> {
        self.text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("附件"))
            .take(2)
            .collect()
    }
}

/// `报送单位：山西大学`, `填报单位:…`, `地方/部门（盖章）：…`: a short label about
/// the unit, then a value.
fn unit_statement(line: &str) -> bool {
    let Some((label, value)) = line.split_once(['：', ':']) else {
        return false;
    };
    let label = crate::fold::half_width(label);
    label.chars().count() <= 12
        && ["单位", "部门", "盖章"].iter().any(|w| label.contains(w))
        && !value.trim().is_empty()
}

/// `徐州市科学技术协会（盖章）`: the name the seal was put on.
fn names_its_seal(line: &str) -> bool {
    let l = crate::fold::half_width(line);
    ["(盖章)", "(公章)", "(签章)"]
        .iter()
        .any(|w| l.contains(w) && !l.starts_with(w))
}

/// `2025年6月18日`, `二〇二五年六月十八日`, `2025-06-18`: a date alone on its line.
fn is_date_line(line: &str) -> bool {
    let t: String = crate::fold::half_width(line)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let numeral = |c: char| c.is_ascii_digit() || "〇零一二三四五六七八九十".contains(c);
    let ymd = |t: &str| {
        let mut parts = t.split(['年', '月']);
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Some(d) = d.strip_suffix('日') else {
            return false;
        };
        [y, m, d]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(numeral))
            && y.chars().count() == 4
    };
    let dashed = |t: &str| {
        let parts: Vec<&str> = t.split(['-', '.', '/']).collect();
        parts.len() == 3
            && parts[0].len() == 4
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 4 && p.chars().all(|c| c.is_ascii_digit()))
    };
    ymd(&t) || dashed(&t)
}

/// Finds the organisation: a coordinator's assignment or learned address, the
/// directory's addresses, a domain only one organisation has, then names in
/// the content.
pub fn match_organisation(
    from: Option<&str>,
    content: &ContentEvidence,
    dir: &Directory,
    learned: &[(String, OrgId)],
    config: &Config,
) -> OrgMatch {
    let syn = &config.organisations.synonyms;
    if let Some(addr) = from.map(str::to_lowercase) {
        if let Some((_, id)) = learned.iter().find(|(a, _)| a.eq_ignore_ascii_case(&addr))
            && let Some(org) = dir.get(id)
        {
            return found(
                org,
                MatchedBy::Manual,
                format!("{addr} was assigned to {}", org.id),
            );
        }
        if let Some(org) = dir.by_email(&addr) {
            return found(
                org,
                MatchedBy::Address,
                format!("sender {addr} is listed for {}", org.id),
            );
        }
        let domain = addr.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let public = config
            .organisations
            .public_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain));
        if !public {
            let orgs = dir.by_domain(&addr);
            if orgs.len() == 1 {
                return found(
                    orgs[0],
                    MatchedBy::Domain,
                    format!("domain {domain} belongs to {}", orgs[0].id),
                );
            }
        }
    }
    // (where, text), strongest first: what a unit fills in or stamps, then
    // what the sender typed, then titles, then the sender's own name.
    let quoted = |path: &str, line: &str| {
        format!(
            "{} line “{}”",
            crate::fold::clean_line(path, 60),
            crate::fold::clean_line(line, 40)
        )
    };
    let mut places: Vec<(String, &str)> = Vec::new();
    places.extend(
        content
            .form_units
            .iter()
            .map(|u| ("form unit cell".to_owned(), u.as_str())),
    );
    for doc in &content.documents {
        places.extend(
            doc.statements()
                .into_iter()
                .map(|l| (quoted(&doc.path, l), l)),
        );
    }
    places.push(("subject".to_owned(), content.subject.as_str()));
    places.extend(
        content
            .filenames
            .iter()
            .map(|f| ("file name".to_owned(), f.as_str())),
    );
    for doc in &content.documents {
        places.extend(doc.heading().into_iter().map(|l| (quoted(&doc.path, l), l)));
    }
    places.push(("sender name".to_owned(), content.from_name.as_str()));
    places.push(("signature".to_owned(), content.signature.as_str()));
    for (place, text) in places {
        match find_named(text, dir, syn) {
            Named::One(org, name) => {
                return found(org, MatchedBy::Content, format!("{place} names {name}"));
            }
            Named::Several(ids) => {
                return OrgMatch {
                    id: None,
                    name: None,
                    matched_by: MatchedBy::None,
                    evidence: format!("{place} names several units: {}", ids.join(", ")),
                };
            }
            Named::None => {}
        }
    }
    OrgMatch {
        id: None,
        name: None,
        matched_by: MatchedBy::None,
        evidence: match from {
            Some(a) => format!("{a} is not in the directory and no unit is named"),
            None => "no sender address and no unit is named".into(),
        },
    }
}

fn found(org: &Organisation, by: MatchedBy, evidence: String) -> OrgMatch {
    OrgMatch {
        id: Some(org.id.clone()),
        name: Some(org.name.clone()),
        matched_by: by,
        evidence,
    }
}

enum Named<'a> {
    None,
    One(&'a Organisation, String),
    Several(Vec<String>),
}

/// The organisation whose name or alias appears in `text`; the longest name
/// wins, so 南京市科学技术协会 beats 南京市科学技术局's shorter alias.
fn find_named<'a>(text: &str, dir: &'a Directory, syn: &[(String, String)]) -> Named<'a> {
    let t = name_key(text, syn);
    if t.is_empty() {
        return Named::None;
    }
    let mut best: Vec<(&Organisation, usize, String)> = Vec::new();
    for (org, keys) in dir.all().iter().zip(dir.name_keys(syn).iter()) {
        let longest = org
            .names()
            .zip(keys)
            .filter_map(|(n, k)| {
                let len = k.chars().count();
                (len >= 3 && t.contains(k.as_str())).then_some((len, n))
            })
            .max_by_key(|(len, _)| *len);
        if let Some((len, name)) = longest {
            best.push((org, len, name.to_owned()));
        }
    }
    let Some(max) = best.iter().map(|(_, l, _)| *l).max() else {
        return Named::None;
    };
    // A name contained in a longer matched name is not a second candidate.
    let top: Vec<_> = best.into_iter().filter(|(_, l, _)| *l == max).collect();
    match top.len() {
        1 => {
            let (org, _, name) = top.into_iter().next().expect("one element");
            Named::One(org, name)
        }
        _ => Named::Several(top.iter().map(|(o, _, _)| o.id.to_string()).collect()),
    }
}

/// Finds the campaign: the mailbox it arrived in (or the addresses it was sent
/// to), then keywords, then the campaign whose next deadline is the nearest
/// when the mail arrived (or whose last one passed most recently).
pub fn match_campaign<'c>(
    config: &'c Config,
    mailbox: Option<&MailboxName>,
    recipients: &[String],
    text: &str,
    arrived: Option<DateTime<Utc>>,
) -> Option<&'c CampaignConfig> {
    let mut candidates: Vec<&CampaignConfig> = match mailbox {
        Some(m) => config
            .campaigns
            .iter()
            .filter(|c| c.mailboxes.contains(m))
            .collect(),
        None => {
            let boxes: Vec<&MailboxName> = config
                .mailboxes
                .iter()
                .filter(|mb| {
                    recipients
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(&mb.address))
                })
                .map(|mb| &mb.name)
                .collect();
            config
                .campaigns
                .iter()
                .filter(|c| c.mailboxes.iter().any(|m| boxes.contains(&m)))
                .collect()
        }
    };
    if candidates.is_empty() {
        candidates = config.campaigns.iter().collect();
    }
    if candidates.len() == 1 {
        return candidates.first().copied();
    }
    let t = name_key(text, &[]);
    let by_word: Vec<_> = candidates
        .iter()
        .copied()
        .filter(|c| c.keywords.iter().any(|k| t.contains(&name_key(k, &[]))))
        .collect();
    if by_word.len() == 1 {
        return by_word.first().copied();
    }
    let pool = if by_word.is_empty() {
        candidates
    } else {
        by_word
    };
    let at = arrived?;
    let dues = |c: &CampaignConfig| -> Vec<DateTime<Utc>> {
        c.deadlines.iter().map(|d| d.due_at).collect()
    };
    // Smaller is better: the soonest open deadline, else the latest passed one.
    let open: Vec<(i64, &CampaignConfig)> = pool
        .iter()
        .filter_map(|c| {
            let next = dues(c).into_iter().filter(|t| *t >= at).min()?;
            Some((next.timestamp(), *c))
        })
        .collect();
    let pick = if open.is_empty() {
        pool.iter()
            .filter_map(|c| Some((-dues(c).into_iter().max()?.timestamp(), *c)))
            .collect()
    } else {
        open
    };
    let best = pick.iter().map(|(k, _)| *k).min()?;
    let mut top = pick.into_iter().filter(|(k, _)| *k == best).map(|(_, c)| c);
    match (top.next(), top.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// Finds the deadline the documents answer; with no telling documents, the
/// first deadline not yet passed when the mail arrived (else the last one).
pub fn match_deadline(
    campaign: &CampaignConfig,
    kinds: &[DocumentKind],
    at: DateTime<Utc>,
) -> Option<DeadlineId> {
    let score = |d: &crate::config::DeadlineConfig| {
        d.requires
            .iter()
            .filter(|r| kinds.iter().any(|k| r.accepts(*k)))
            .count()
    };
    let best = campaign.deadlines.iter().map(score).max().unwrap_or(0);
    let pool: Vec<_> = campaign
        .deadlines
        .iter()
        .filter(|d| best == 0 || score(d) == best)
        .collect();
    if pool.len() == 1 {
        return Some(pool[0].id.clone());
    }
    let mut dated: Vec<_> = pool.into_iter().map(|d| (d.due_at, d)).collect();
    dated.sort_by_key(|(t, _)| *t);
    dated
        .iter()
        .find(|(t, _)| *t >= at)
        .or(dated.last())
        .map(|(_, d)| d.id.clone())
}

/// Late when the mail reached the mailbox after the deadline's instant.
pub fn is_late(
    campaign: &CampaignConfig,
    deadline: &DeadlineId,
    arrived: Option<DateTime<Utc>>,
) -> Option<bool> {
    let d = campaign.deadlines.iter().find(|d| &d.id == deadline)?;
    arrived.map(|a| a > d.due_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn setup() -> (Config, Directory) {
        let base = Path::new(env!("CARGO_MANIFEST_DIR"));
        let c = Config::example(base).unwrap();
        let d = Directory::load(&base.join("examples/organisations.csv")).unwrap();
        (c, d)
    }

    #[test]
    fn unknown_qq_sender_is_matched_by_subject() {
        let (c, d) = setup();
        let ev = ContentEvidence {
            subject: "报送：扬州市科技局2025年科技活动周推荐表".into(),
            ..Default::default()
        };
        let m = match_organisation(Some("12345@qq.com"), &ev, &d, &[], &c);
        assert_eq!(m.id.unwrap().as_str(), "yz-kjj");
        assert_eq!(m.matched_by, MatchedBy::Content);
    }

    #[test]
    fn form_unit_cell_beats_file_name() {
        let (c, d) = setup();
        let ev = ContentEvidence {
            form_units: vec!["南通市科学技术协会（盖章）".into()],
            filenames: vec!["南通市科技局推荐表.xlsx".into()],
            ..Default::default()
        };
        let m = match_organisation(Some("someone@163.com"), &ev, &d, &[], &c);
        assert_eq!(m.id.unwrap().as_str(), "nt-kx");
    }

    fn doc(path: &str, text: &str) -> DocumentText {
        DocumentText {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_report_from_a_personal_address_is_matched_by_the_unit_it_states() {
        let (c, d) = setup();
        let report = "2025年科技活动周活动总结\n报送单位：江苏省计算机学会\n一、主要做法。";
        let ev = ContentEvidence {
            documents: vec![doc("材料.zip/总结报告.docx", report)],
            subject: "科技活动周总结报告".into(),
            ..Default::default()
        };
        let m = match_organisation(Some("13912345678@139.com"), &ev, &d, &[], &c);
        assert_eq!(m.id.unwrap().as_str(), "js-jsjxh");
        assert_eq!(m.matched_by, MatchedBy::Content);
        assert_eq!(
            m.evidence,
            "材料.zip/总结报告.docx line “报送单位：江苏省计算机学会” names 江苏省计算机学会"
        );
    }

    #[test]
    fn the_sign_off_above_the_date_and_the_seal_line_name_the_unit() {
        let (c, d) = setup();
        let sign_off = "活动总结\n我们联合南京大学开展了活动。\n徐州市科学技术协会\n2025年6月18日";
        let seal = "活动总结\n一、做法。\n徐州市科学技术协会（盖章）\n";
        let chinese_date = "活动总结\n徐州市科学技术协会\n二〇二五年六月十八日";
        for text in [sign_off, seal, chinese_date] {
            let ev = ContentEvidence {
                documents: vec![doc("总结.docx", text)],
                ..Default::default()
            };
            let m = match_organisation(Some("x@qq.com"), &ev, &d, &[], &c);
            assert_eq!(
                m.id.map(|i| i.to_string()).as_deref(),
                Some("xz-kx"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_statement_beats_the_subject_and_the_heading_follows_file_names() {
        let (c, d) = setup();
        let ev = ContentEvidence {
            documents: vec![doc("总结.docx", "报送单位：南京大学科学技术协会")],
            subject: "东南大学科协材料".into(),
            ..Default::default()
        };
        let m = match_organisation(Some("x@qq.com"), &ev, &d, &[], &c);
        assert_eq!(m.id.unwrap().as_str(), "nju-kx");
        let ev = ContentEvidence {
            documents: vec![doc("总结.docx", "附件1\n南京大学科协2025年科技活动周总结")],
            filenames: vec!["东南大学科协总结.docx".into()],
            ..Default::default()
        };
        let m = match_organisation(Some("x@qq.com"), &ev, &d, &[], &c);
        assert_eq!(m.id.unwrap().as_str(), "seu-kx");
        let ev = ContentEvidence {
            documents: vec![doc("总结.docx", "附件1\n南京大学科协2025年科技活动周总结")],
            ..Default::default()
        };
        let m = match_organisation(Some("x@qq.com"), &ev, &d, &[], &c);
        assert_eq!(m.id.unwrap().as_str(), "nju-kx");
    }

    #[test]
    fn a_unit_only_mentioned_in_the_body_of_a_document_is_not_its_sender() {
        let (c, d) = setup();
        let ev = ContentEvidence {
            documents: vec![doc(
                "总结.docx",
                "科技活动周总结\n一、做法\n我们与南京大学科学技术协会联合开展了科普讲座。",
            )],
            ..Default::default()
        };
        let m = match_organisation(Some("x@qq.com"), &ev, &d, &[], &c);
        assert_eq!(m.matched_by, MatchedBy::None, "{}", m.evidence);
    }

    #[test]
    fn dates_alone_on_a_line_are_told_from_sentences() {
        for yes in [
            "2025年6月18日",
            "２０２５年６月１８日",
            "二〇二五年六月十八日",
            "2025-06-18",
            " 2025.6.18 ",
        ] {
            assert!(is_date_line(yes), "{yes}");
        }
        for no in [
            "2025年6月18日印发",
            "于2025年6月18日前报送",
            "6月18日",
            "2025年度总结",
        ] {
            assert!(!is_date_line(no), "{no}");
        }
    }

    #[test]
    fn address_beats_content_and_domain_needs_a_unique_owner() {
        let (c, d) = setup();
        let m = match_organisation(
            Some("kx@nju.edu.cn"),
            &ContentEvidence::default(),
            &d,
            &[],
            &c,
        );
        assert_eq!(m.matched_by, MatchedBy::Address);
        let m = match_organisation(
            Some("zhang@nju.edu.cn"),
            &ContentEvidence::default(),
            &d,
            &[],
            &c,
        );
        assert_eq!(
            (m.matched_by, m.id.unwrap().as_str()),
            (MatchedBy::Domain, "nju-kx")
        );
        let m = match_organisation(Some("x@163.com"), &ContentEvidence::default(), &d, &[], &c);
        assert_eq!(m.matched_by, MatchedBy::None);
    }

    #[test]
    fn campaign_without_keywords_follows_the_open_deadline() {
        let (c, _) = setup();
        let kpy_and_js: Vec<MailboxName> = vec!["kjt".into(), "kpy".into()];
        let mut c2 = c.clone();
        for camp in &mut c2.campaigns {
            camp.mailboxes = kpy_and_js.clone();
        }
        let may = "2025-05-01T00:00:00Z".parse().ok();
        let sept = "2025-09-20T00:00:00Z".parse().ok();
        let nov = "2025-11-20T00:00:00Z".parse().ok();
        let pick = |t| {
            match_campaign(&c2, Some(&"kjt".into()), &[], "推荐表", t).map(|c| c.id.to_string())
        };
        assert_eq!(pick(may).as_deref(), Some("js-2025"));
        assert_eq!(pick(sept).as_deref(), Some("kepuyue-2025"));
        assert_eq!(pick(nov).as_deref(), Some("kepuyue-2025"));
        assert_eq!(pick(None), None);
    }

    #[test]
    fn deadline_follows_the_documents_then_the_date() {
        let (c, _) = setup();
        let js = c.campaign(&"js-2025".into()).unwrap();
        let d = match_deadline(
            js,
            &[DocumentKind::StatisticsForm],
            "2025-05-01T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(d.as_str(), "summary");
        let may1 = "2025-05-01T00:00:00Z".parse().unwrap();
        assert_eq!(match_deadline(js, &[], may1).unwrap().as_str(), "recommend");
        let late = "2025-05-06T16:30:00Z".parse().ok();
        assert_eq!(is_late(js, &"recommend".into(), late), Some(true));
        let in_time = "2025-05-06T15:30:00Z".parse().ok();
        assert_eq!(is_late(js, &"recommend".into(), in_time), Some(false));
    }
}
