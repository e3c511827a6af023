//! Classification: which document (推荐表, 统计表, 总结报告, photo…) and which
//! form (electronic, scan, media) a file is, from its content first (media
//! type, the table read out of it, a seal, a page image), then its name, then
//! the subject.

use crate::config::FormDef;
use crate::extract::Extraction;
use crate::fold::name_key;
use crate::intake::FileEntry;
use crate::types::{DocForm, DocumentKind};

/// Words that name a document kind in file names, subjects and titles.
fn kind_words(kind: DocumentKind) -> &'static [&'static str] {
    match kind {
        DocumentKind::RecommendationForm => &["推荐表", "推荐清单", "推荐名单", "推荐汇总"],
        DocumentKind::StatisticsForm => &["统计表", "情况统计", "统计", "数据表"],
        DocumentKind::SummaryReport => &["总结", "工作报告", "情况报告", "活动报告"],
        DocumentKind::MediaCoverage => &["报道", "新闻", "媒体", "宣传稿", "截图"],
        DocumentKind::Photo => &["照片", "图片", "相片", "合影", "现场"],
        DocumentKind::Video => &["视频", "录像"],
        DocumentKind::Other => &[],
    }
}

const SCAN_WORDS: &[&str] = &["扫描", "盖章", "签章", "公章", "pdf版"];

/// The document kind a text names, most specific first (a 推荐表 is also a
/// kind of 统计, so 推荐表 is tried first).
pub fn kind_from_text(text: &str, forms: &[FormDef]) -> Option<DocumentKind> {
    let t = name_key(text, &[]);
    for f in forms {
        if f.keywords.iter().any(|k| t.contains(&name_key(k, &[]))) {
            return Some(f.kind);
        }
    }
    [
        DocumentKind::RecommendationForm,
        DocumentKind::StatisticsForm,
        DocumentKind::SummaryReport,
        DocumentKind::MediaCoverage,
        DocumentKind::Video,
        DocumentKind::Photo,
    ]
    .into_iter()
    .find(|k| kind_words(*k).iter().any(|w| t.contains(&name_key(w, &[]))))
}

fn is_office(media_type: &str) -> bool {
    media_type.contains("officedocument")
        || media_type.contains("opendocument")
        || media_type.contains("ms-excel")
        || media_type.contains("msword")
        || media_type.contains("ms-works")
        || media_type.contains("wps")
        || media_type.contains("kingsoft")
        || media_type == "application/rtf"
        || media_type.contains("macroenabled")
        || media_type.contains("encrypted")
}

/// Kind and form of one file.
pub fn classify(
    file: &FileEntry,
    ex: &Extraction,
    subject: &str,
    forms: &[FormDef],
) -> (DocumentKind, DocForm) {
    let mt = file.media_type.as_str();
    let by_name = kind_from_text(&file.filename, forms);
    let by_subject = kind_from_text(subject, forms);
    let name_norm = name_key(&file.filename, &[]);
    let says_scan = SCAN_WORDS.iter().any(|w| name_norm.contains(w));

    if let Some(table) = &ex.table {
        let kind = forms
            .iter()
            .find(|f| f.id == table.form_id)
            .map(|f| f.kind)
            .unwrap_or(DocumentKind::Other);
        return (kind, DocForm::Electronic);
    }
    if mt.starts_with("video/") {
        return (DocumentKind::Video, DocForm::Media);
    }
    if mt.starts_with("image/") {
        // A page photographed or scanned: a seal, or a name that says which form.
        let form_kind = by_name.filter(|k| {
            matches!(
                k,
                DocumentKind::RecommendationForm
                    | DocumentKind::StatisticsForm
                    | DocumentKind::SummaryReport
            )
        });
        if let Some(k) = form_kind {
            return (k, DocForm::Scan);
        }
        if ex.sealed == Some(true) || says_scan {
            let k = by_subject
                .filter(|k| {
                    matches!(
                        k,
                        DocumentKind::RecommendationForm
                            | DocumentKind::StatisticsForm
                            | DocumentKind::SummaryReport
                    )
                })
                .unwrap_or(DocumentKind::Other);
            return (k, DocForm::Scan);
        }
        if by_name == Some(DocumentKind::MediaCoverage) {
            return (DocumentKind::MediaCoverage, DocForm::Media);
        }
        return (DocumentKind::Photo, DocForm::Media);
    }
    if mt == "application/pdf" {
        let by_text = kind_from_text(&ex.text, forms);
        let kind = by_name
            .or(by_text)
            .or(by_subject)
            .filter(|k| !matches!(k, DocumentKind::Photo | DocumentKind::Video))
            .unwrap_or(DocumentKind::Other);
        let form = if ex.is_scan || ex.sealed == Some(true) || says_scan {
            DocForm::Scan
        } else {
            DocForm::Electronic
        };
        return (kind, form);
    }
    if is_office(mt) || mt.starts_with("text/") {
        // An Office file with no known form table: a report, a coverage list,
        // or a form laid out so that no table was found.
        let by_text = kind_from_text(&ex.text, forms);
        let kind = match by_name.or(by_text) {
            Some(DocumentKind::Photo | DocumentKind::Video) | None => {
                if by_subject == Some(DocumentKind::SummaryReport) {
                    DocumentKind::SummaryReport
                } else {
                    DocumentKind::Other
                }
            }
            Some(k) => k,
        };
        let form = if kind == DocumentKind::Other && !is_office(mt) {
            DocForm::Other
        } else {
            DocForm::Electronic
        };
        return (kind, form);
    }
    (DocumentKind::Other, DocForm::Other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Sha256;

    fn file(name: &str, mt: &str) -> FileEntry {
        FileEntry {
            filename: name.into(),
            path: name.into(),
            declared_type: None,
            media_type: mt.into(),
            data: Vec::new(),
            sha256: Sha256::of(b""),
            problems: Vec::new(),
        }
    }

    #[test]
    fn sealed_jpeg_named_after_the_form_is_its_scan() {
        let ex = Extraction {
            sealed: Some(true),
            is_scan: true,
            ..Default::default()
        };
        let (k, f) = classify(&file("推荐表（盖章）.jpg", "image/jpeg"), &ex, "", &[]);
        assert_eq!((k, f), (DocumentKind::RecommendationForm, DocForm::Scan));
    }

    #[test]
    fn unsealed_photo_is_media() {
        let (k, f) = classify(
            &file("IMG_2031.JPG", "image/jpeg"),
            &Extraction::default(),
            "活动照片",
            &[],
        );
        assert_eq!((k, f), (DocumentKind::Photo, DocForm::Media));
    }

    #[test]
    fn text_pdf_of_a_summary_is_electronic() {
        let ex = Extraction {
            text: "2025年科技活动周工作总结".into(),
            ..Default::default()
        };
        let (k, f) = classify(&file("材料.pdf", "application/pdf"), &ex, "", &[]);
        assert_eq!((k, f), (DocumentKind::SummaryReport, DocForm::Electronic));
    }

    #[test]
    fn scanned_pdf_takes_the_kind_from_its_name() {
        let ex = Extraction {
            is_scan: true,
            sealed: Some(true),
            ..Default::default()
        };
        let (k, f) = classify(&file("统计表盖章版.pdf", "application/pdf"), &ex, "", &[]);
        assert_eq!((k, f), (DocumentKind::StatisticsForm, DocForm::Scan));
    }
}
