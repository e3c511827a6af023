//! Domain types shared by every stage: identifiers and document kinds.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

/// Mail is personal data: files baosong writes (archive, database, .eml)
/// are for the service and its group only, whatever the umask.
pub const FILE_MODE: u32 = 0o640;
pub const DIR_MODE: u32 = 0o750;

id_type!(
    /// An organisation (unit) of the directory, e.g. `nj-kjj`.
    OrgId
);
id_type!(
    /// A campaign (one notice), e.g. `js-2025`.
    CampaignId
);
id_type!(
    /// A deadline inside a campaign, e.g. `recommend`.
    DeadlineId
);
id_type!(
    /// A form definition, e.g. `tuijianbiao`.
    FormId
);
id_type!(
    /// A configured mailbox, e.g. `kjt`.
    MailboxName
);

/// IMAP UID of a message in one mailbox under one UIDVALIDITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Uid(pub u32);

/// Lower-case hex SHA-256 of some bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha256(pub String);

impl Sha256 {
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which document of a notice a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// 推荐表
    RecommendationForm,
    /// 统计表
    StatisticsForm,
    /// 总结报告 / 活动总结
    SummaryReport,
    Photo,
    Video,
    /// 媒体报道 (screenshots, links, clippings)
    MediaCoverage,
    Other,
}

impl DocumentKind {
    pub const ALL: [DocumentKind; 7] = [
        Self::RecommendationForm,
        Self::StatisticsForm,
        Self::SummaryReport,
        Self::Photo,
        Self::Video,
        Self::MediaCoverage,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecommendationForm => "recommendation_form",
            Self::StatisticsForm => "statistics_form",
            Self::SummaryReport => "summary_report",
            Self::Photo => "photo",
            Self::Video => "video",
            Self::MediaCoverage => "media_coverage",
            Self::Other => "other",
        }
    }

    /// The name a unit contact knows the document by.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::RecommendationForm => "推荐表",
            Self::StatisticsForm => "统计表",
            Self::SummaryReport => "总结报告",
            Self::Photo => "活动照片",
            Self::Video => "视频",
            Self::MediaCoverage => "媒体报道",
            Self::Other => "其他材料",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// In which form a document arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocForm {
    /// 电子版: an editable Office/WPS/ODF file (or a PDF with a text layer and no seal).
    Electronic,
    /// 盖章扫描件: a scan or photo of the printed, stamped form.
    Scan,
    /// Photos and videos.
    Media,
    Other,
}

impl DocForm {
    pub const ALL: [DocForm; 4] = [Self::Electronic, Self::Scan, Self::Media, Self::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Electronic => "electronic",
            Self::Scan => "scan",
            Self::Media => "media",
            Self::Other => "other",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Electronic => "电子版",
            Self::Scan => "盖章扫描件",
            Self::Media => "影像资料",
            Self::Other => "其他",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for DocForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bare address in a `Name <addr>` string, lower case.
pub fn bare_address(s: &str) -> Option<String> {
    let addr = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    let addr = addr.trim();
    addr.contains('@').then(|| addr.to_lowercase())
}

/// An address an outgoing mail can be sent to: one `@`, a dot-atom local
/// part (no spaces, quotes or control characters), the domain in ASCII with
/// an internationalised one as punycode. What a sender's header says is only
/// a candidate until it parses as this.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MailAddress(String);

impl MailAddress {
    /// Reads `addr` (bare, or in angle brackets); None when no mail server
    /// would accept it as a recipient.
    pub fn parse(addr: &str) -> Option<Self> {
        let addr = addr.trim();
        let addr = addr
            .strip_prefix('<')
            .and_then(|a| a.strip_suffix('>'))
            .unwrap_or(addr);
        let (local, domain) = addr.rsplit_once('@')?;
        const SPECIALS: &str = "\"(),:;<>@[\\] ";
        let atom_ok = |c: char| c.is_ascii_graphic() && !SPECIALS.contains(c);
        if local.is_empty()
            || local.len() > 64
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
            || !local.chars().all(|c| c == '.' || atom_ok(c))
        {
            return None;
        }
        let domain = idna::domain_to_ascii(domain.trim_end_matches('.')).ok()?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(label_ok) {
            return None;
        }
        // lettre builds the envelope and headers: make sure it agrees.
        lettre::Address::new(local, &domain).ok()?;
        Some(Self(format!("{local}@{domain}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain, lower case.
    pub fn domain(&self) -> String {
        self.0
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

impl fmt::Display for MailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_a_mail_server_accepts() {
        let ok = |s: &str| MailAddress::parse(s).map(|a| a.0);
        assert_eq!(ok("<a.b@example.cn>").as_deref(), Some("a.b@example.cn"));
        assert_eq!(
            ok("x@测试.中国").as_deref(),
            Some("x@xn--0zwm56d.xn--fiqs8s")
        );
        assert_eq!(ok("wang wu@example.com"), None);
        assert_eq!(ok("no-at-sign"), None);
        assert_eq!(ok("<<>>@@"), None);
        assert_eq!(ok("a@b@c.cn"), None);
        assert_eq!(ok("a\r\nBcc: x@y.cn"), None);
        assert_eq!(ok("\"quoted\"@example.cn"), None);
        assert_eq!(ok(""), None);
    }
}
