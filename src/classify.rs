//! Classification: which document (推荐表, 统计表, 总结报告, photo…) and which
//! form (electronic, scan, media) a file is, from its content first (media
//! type, the table read out of it, a seal, a page image), then its name, then
//! the subject.
//!
//! An image is a scan or a photo by the words of its name first, then of the
//! folders and archives around it (`活动照片.zip/3.科学家精神进校园.jpg`), then by
//! what it shows: paper with text (see `extract::seal`) or a scene. Red in a
//! picture says nothing: banners, backdrops and clothes at these events are red.

use crate::config::FormDef;
use crate::extract::Extraction;
use crate::fold::name_key;
use crate::intake::FileEntry;
use crate::model::{Problem, ProblemCode};
use crate::types::{DocForm, DocumentKind};

/// Words that name a document kind in file names, subjects and titles.
fn kind_words(kind: DocumentKind) -> &'static [&'static str] {
    match kind {
        DocumentKind::RecommendationForm => &["推荐表", "推荐清单", "推荐名单", "推荐汇总"],
        DocumentKind::StatisticsForm => &["统计表", "情况统计", "统计", "数据表"],
        DocumentKind::SummaryReport => &["总结", "工作报告", "情况报告", "活动报告"],
        DocumentKind::MediaCoverage => &["报道", "新闻", "媒体", "宣传稿"],
        DocumentKind::Photo => &[
            "照片", "图片", "相片", "合影", "现场", "剪影", "风采", "掠影",
        ],
        DocumentKind::Video => &["视频", "录像"],
        DocumentKind::Other => &[],
    }
}

const SCAN_WORDS: &[&str] = &["扫描", "盖章", "签章", "公章", "pdf版"];

/// Screen captures: of a form they are that form, of anything else coverage.
const SCREENSHOT_WORDS: &[&str] = &["截图", "截屏", "屏幕截图", "screenshot", "snipaste"];

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

/// The documents a unit fills in and stamps.
fn is_form(kind: DocumentKind) -> bool {
    matches!(
        kind,
        DocumentKind::RecommendationForm
            | DocumentKind::StatisticsForm
            | DocumentKind::SummaryReport
    )
}

/// Forms whose table goes into the coordinators' summary sheet: only an
/// editable file is their 电子版.
fn is_tabular(kind: DocumentKind) -> bool {
    matches!(
        kind,
        DocumentKind::RecommendationForm | DocumentKind::StatisticsForm
    )
}

/// What the words of one name (a file's, or the folders' around it) say.
#[derive(Default)]
struct Words {
    form: Option<DocumentKind>,
    scan: bool,
    photo: bool,
    media: bool,
    screenshot: bool,
}

impl Words {
    fn of(text: &str, forms: &[FormDef]) -> Self {
        let key = name_key(text, &[]);
        let has = |words: &[&str]| words.iter().any(|w| key.contains(&name_key(w, &[])));
        let kind = kind_from_text(text, forms);
        Words {
            form: kind.filter(|k| is_form(*k)),
            scan: has(SCAN_WORDS),
            photo: has(kind_words(DocumentKind::Photo)),
            media: has(kind_words(DocumentKind::MediaCoverage)),
            screenshot: has(SCREENSHOT_WORDS),
        }
    }
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
        return classify_image(file, ex, by_subject, forms);
    }
    if mt == "application/pdf" {
        let by_text = kind_from_text(&ex.text, forms);
        let kind = by_name
            .or(by_text)
            .or(by_subject)
            .filter(|k| !matches!(k, DocumentKind::Photo | DocumentKind::Video))
            .unwrap_or(DocumentKind::Other);
        // Only page images or a seal make a PDF the stamped copy, whatever
        // its name says; without them a form's PDF is an export, which is
        // not its editable 电子版 either.
        let form = if ex.is_scan || ex.sealed == Some(true) {
            DocForm::Scan
        } else if is_tabular(kind) {
            DocForm::Other
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

/// A picture: the scan (or photo, or screenshot) of a form, a photo of the
/// event, or a capture of coverage. Names first, then what it shows.
fn classify_image(
    file: &FileEntry,
    ex: &Extraction,
    by_subject: Option<DocumentKind>,
    forms: &[FormDef],
) -> (DocumentKind, DocForm) {
    let name = Words::of(&file.filename, forms);
    let folders = file
        .path
        .rsplit_once('/')
        .map(|(dirs, _)| Words::of(dirs, forms))
        .unwrap_or_default();
    // A page, or a small picture that is a seal as a whole.
    let page = ex.is_scan || ex.sealed == Some(true);
    let form_kind = |own: Option<DocumentKind>| {
        own.or(folders.form)
            .or(by_subject.filter(|k| is_form(*k)))
            .unwrap_or(DocumentKind::Other)
    };
    let photo = (DocumentKind::Photo, DocForm::Media);
    if name.form.is_some() || name.scan {
        // "推荐表现场照片.jpg" names both: what it shows decides.
        if name.photo && !page {
            return photo;
        }
        return (form_kind(name.form), DocForm::Scan);
    }
    if name.photo {
        return photo;
    }
    if name.media {
        return (DocumentKind::MediaCoverage, DocForm::Media);
    }
    if folders.photo {
        return photo;
    }
    if name.screenshot {
        return if ex.is_scan && ex.ruled_table {
            (form_kind(None), DocForm::Scan)
        } else {
            (DocumentKind::MediaCoverage, DocForm::Media)
        };
    }
    if page {
        return (form_kind(None), DocForm::Scan);
    }
    photo
}

/// What is wrong with the form a file is sent as, once classified.
pub fn problems(
    file: &FileEntry,
    ex: &Extraction,
    kind: DocumentKind,
    form: DocForm,
) -> Vec<Problem> {
    let mut out = Vec::new();
    // Only a PDF that was read is known to be an export (no page image).
    if ex.read_as == Some("pdf") && form == DocForm::Other && is_tabular(kind) && !unread(ex) {
        out.push(Problem::new(
            ProblemCode::ElectronicNotEditable,
            format!(
                "《{}》是由Word/WPS导出的PDF，既不是可编辑的电子版，也不是盖章扫描件。电子版请发送可编辑的Word/Excel文件；扫描件需加盖公章。",
                file.filename
            ),
        ));
    }
    out
}

/// The file could not be read, so nothing is known of its pages.
fn unread(ex: &Extraction) -> bool {
    ex.problems.iter().any(|p| {
        matches!(
            p.code,
            ProblemCode::ScanUnreadable
                | ProblemCode::ScanTooLarge
                | ProblemCode::FileUnreadable
                | ProblemCode::FileTimeout
                | ProblemCode::FileEncrypted
        )
    })
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
    fn photo_word_in_the_zip_name_makes_a_photo() {
        let mut f = file("3.科学家精神进校园.jpg", "image/jpeg");
        f.path = "活动照片.zip/3.科学家精神进校园.jpg".into();
        let (k, form) = classify(&f, &Extraction::default(), "报送统计表", &[]);
        assert_eq!((k, form), (DocumentKind::Photo, DocForm::Media));
    }

    #[test]
    fn page_image_with_a_plain_name_is_a_scan_of_the_subjects_form() {
        let ex = Extraction {
            is_scan: true,
            sealed: Some(false),
            ..Default::default()
        };
        let (k, f) = classify(&file("IMG_0412.jpg", "image/jpeg"), &ex, "报送统计表", &[]);
        assert_eq!((k, f), (DocumentKind::StatisticsForm, DocForm::Scan));
    }

    #[test]
    fn screenshot_is_its_form_only_when_it_shows_a_ruled_table() {
        let page = Extraction {
            is_scan: true,
            sealed: Some(false),
            ..Default::default()
        };
        let table = Extraction {
            ruled_table: true,
            ..page.clone()
        };
        let shot = file("屏幕截图 2025-05-06 101010.png", "image/png");
        let subject = "推荐表";
        assert_eq!(
            classify(&shot, &table, subject, &[]),
            (DocumentKind::RecommendationForm, DocForm::Scan)
        );
        assert_eq!(
            classify(&shot, &page, subject, &[]),
            (DocumentKind::MediaCoverage, DocForm::Media)
        );
    }

    #[test]
    fn exported_pdf_of_a_form_is_not_its_electronic_copy() {
        let ex = Extraction {
            text: "2025年全国科技活动周推荐表".into(),
            read_as: Some("pdf"),
            ..Default::default()
        };
        // Named as the stamped copy, yet no page image and no seal.
        let f = file("推荐表盖章版.pdf", "application/pdf");
        let (k, form) = classify(&f, &ex, "", &[]);
        assert_eq!(
            (k, form),
            (DocumentKind::RecommendationForm, DocForm::Other)
        );
        let p = problems(&f, &ex, k, form);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].code, ProblemCode::ElectronicNotEditable);
        assert!(
            p[0].message.contains("推荐表盖章版.pdf"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn unreadable_pdf_is_not_called_an_export() {
        let ex = Extraction {
            read_as: Some("pdf"),
            problems: vec![Problem::new(ProblemCode::ScanUnreadable, "扫描件无法读取")],
            ..Default::default()
        };
        let f = file("统计表.pdf", "application/pdf");
        let (k, form) = classify(&f, &ex, "", &[]);
        assert!(problems(&f, &ex, k, form).is_empty());
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
