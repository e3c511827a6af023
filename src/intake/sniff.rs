//! What a file really is, from its bytes (magic numbers, the zip's
//! `[Content_Types].xml`, the OLE2 stream names), and what is wrong with it:
//! a password, macros, an executable, nothing inside.

use std::io::{Cursor, Read};

use crate::model::{Problem, ProblemCode};

pub const PDF: &str = "application/pdf";
pub const ZIP: &str = "application/zip";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
pub const XLSM: &str = "application/vnd.ms-excel.sheet.macroEnabled.12";
pub const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
pub const DOCM: &str = "application/vnd.ms-word.document.macroEnabled.12";
pub const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
pub const PPTM: &str = "application/vnd.ms-powerpoint.presentation.macroEnabled.12";
pub const ODS: &str = "application/vnd.oasis.opendocument.spreadsheet";
pub const ODT: &str = "application/vnd.oasis.opendocument.text";
pub const ODP: &str = "application/vnd.oasis.opendocument.presentation";
pub const XLS: &str = "application/vnd.ms-excel";
pub const DOC: &str = "application/msword";
pub const PPT: &str = "application/vnd.ms-powerpoint";
/// An OLE2 file holding an encrypted OOXML package (a password-protected .xlsx/.docx).
pub const ENCRYPTED_OOXML: &str = "application/x-ooxml-encrypted";
pub const OLE: &str = "application/x-ole-storage";
pub const RAR: &str = "application/vnd.rar";
pub const SEVEN_Z: &str = "application/x-7z-compressed";
pub const GZIP: &str = "application/gzip";
pub const EXE: &str = "application/x-msdownload";
pub const ELF: &str = "application/x-executable";
pub const SCRIPT: &str = "application/x-script";
pub const SHORTCUT: &str = "application/x-ms-shortcut";
pub const TNEF: &str = "application/ms-tnef";
pub const OCTET: &str = "application/octet-stream";

/// Media type of `data`, from its content; the file name only decides between
/// look-alikes (scripts, text flavours) and when the bytes say nothing.
pub fn sniff(data: &[u8], filename: &str) -> &'static str {
    let ext = extension(filename);
    let head = &data[..data.len().min(64)];
    let starts = |m: &[u8]| head.starts_with(m);
    if is_script_ext(&ext) {
        return if ext == "lnk" { SHORTCUT } else { SCRIPT };
    }
    if data.is_empty() {
        return by_extension(&ext);
    }
    if data[..data.len().min(1024)]
        .windows(5)
        .any(|w| w == b"%PDF-")
    {
        return PDF;
    }
    if starts(b"\xFF\xD8\xFF") {
        return "image/jpeg";
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return "image/png";
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return "image/gif";
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return "image/tiff";
    }
    if starts(b"BM") && head.len() >= 14 && head[6..10] == [0, 0, 0, 0] {
        return "image/bmp";
    }
    if starts(b"RIFF") && head.len() >= 12 {
        match &head[8..12] {
            b"WEBP" => return "image/webp",
            b"AVI " => return "video/x-msvideo",
            b"WAVE" => return "audio/wav",
            _ => {}
        }
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return match &head[8..12] {
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => {
                "image/heic"
            }
            b"qt  " => "video/quicktime",
            b"3gp4" | b"3gp5" | b"3gp6" | b"3gg6" => "video/3gpp",
            _ => "video/mp4",
        };
    }
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        return zip_kind(data).0;
    }
    if starts(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        return ole_kind(data).kind;
    }
    if starts(b"Rar!\x1A\x07") {
        return RAR;
    }
    if starts(b"7z\xBC\xAF\x27\x1C") {
        return SEVEN_Z;
    }
    if starts(b"\x1F\x8B") {
        return GZIP;
    }
    if starts(b"\x78\x9F\x3E\x22") {
        return TNEF;
    }
    if starts(b"MZ") {
        return EXE;
    }
    if starts(b"\x7FELF") {
        return ELF;
    }
    if starts(b"{\\rtf") {
        return "application/rtf";
    }
    text_kind(data, &ext).unwrap_or_else(|| by_extension(&ext))
}

fn text_kind(data: &[u8], ext: &str) -> Option<&'static str> {
    let sample = &data[..data.len().min(4096)];
    let sample = sample.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(sample);
    // Binary if control characters other than white space show up.
    if sample
        .iter()
        .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C))
    {
        return None;
    }
    let lower = String::from_utf8_lossy(&sample[..sample.len().min(1024)]).to_ascii_lowercase();
    let trimmed = lower.trim_start();
    if trimmed.starts_with("<!doctype html")
        || trimmed.starts_with("<html")
        || trimmed.starts_with("<head")
        || trimmed.starts_with("<table")
        || lower.contains("<html")
    {
        return Some("text/html");
    }
    if trimmed.starts_with("<?xml") {
        return Some("application/xml");
    }
    if trimmed.starts_with("mime-version:") {
        return Some("message/rfc822");
    }
    Some(match ext {
        "csv" => "text/csv",
        "eml" => "message/rfc822",
        _ => "text/plain",
    })
}

fn is_script_ext(ext: &str) -> bool {
    matches!(
        ext,
        "bat"
            | "cmd"
            | "vbs"
            | "vbe"
            | "js"
            | "jse"
            | "ps1"
            | "scr"
            | "lnk"
            | "wsf"
            | "hta"
            | "pif"
            | "com"
            | "msi"
            | "jar"
            | "sh"
    )
}

/// The lower-case extension of a file name, without the dot.
pub(crate) fn extension(filename: &str) -> String {
    filename
        .rsplit_once('.')
        .map(|(_, e)| e.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The Office, ODF or WPS type an extension names.
pub(crate) fn office_type(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "xlsx" | "xltx" => XLSX,
        "xlsm" | "xltm" => XLSM,
        "xls" | "xlt" | "et" | "ett" => XLS,
        "docx" | "dotx" => DOCX,
        "docm" | "dotm" => DOCM,
        "doc" | "dot" | "wps" | "wpt" => DOC,
        "pptx" | "ppsx" | "potx" => PPTX,
        "pptm" | "ppsm" | "potm" => PPTM,
        "ppt" | "pps" | "pot" | "dps" => PPT,
        "ods" | "ots" => ODS,
        "odt" | "ott" => ODT,
        "odp" | "otp" => ODP,
        _ => return None,
    })
}

fn by_extension(ext: &str) -> &'static str {
    if let Some(office) = office_type(ext) {
        return office;
    }
    match ext {
        "pdf" => PDF,
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "zip" => ZIP,
        "rar" => RAR,
        "7z" => SEVEN_Z,
        "txt" => "text/plain",
        "exe" => EXE,
        _ => OCTET,
    }
}

/// The Office/ODF type of a zip, and whether it carries a VBA project.
fn zip_kind(data: &[u8]) -> (&'static str, bool) {
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(data)) else {
        return (ZIP, false);
    };
    let has = |z: &zip::ZipArchive<Cursor<&[u8]>>, name: &str| z.index_for_name(name).is_some();
    let vba = zip.file_names_raw().any(|n| n.ends_with(b"vbaProject.bin"));
    let small_text = |zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str| -> Option<String> {
        let mut f = zip.by_name(name).ok()?;
        let mut buf = Vec::new();
        f.by_ref().take(64 * 1024).read_to_end(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    };
    if let Some(ct) = small_text(&mut zip, "[Content_Types].xml") {
        let kind = if ct.contains("ms-excel.sheet.macroEnabled") {
            XLSM
        } else if ct.contains("spreadsheetml.sheet.main")
            || ct.contains("spreadsheetml.template.main")
        {
            XLSX
        } else if ct.contains("ms-word.document.macroEnabled") {
            DOCM
        } else if ct.contains("wordprocessingml.document.main")
            || ct.contains("wordprocessingml.template.main")
        {
            DOCX
        } else if ct.contains("ms-powerpoint.presentation.macroEnabled") {
            PPTM
        } else if ct.contains("presentationml.presentation.main")
            || ct.contains("presentationml.slideshow.main")
        {
            PPTX
        } else if has(&zip, "xl/workbook.xml") {
            XLSX
        } else if has(&zip, "word/document.xml") {
            DOCX
        } else if has(&zip, "ppt/presentation.xml") {
            PPTX
        } else {
            ZIP
        };
        return (kind, vba);
    }
    if let Some(mt) = small_text(&mut zip, "mimetype") {
        let kind = match mt.trim() {
            "application/vnd.oasis.opendocument.spreadsheet" => ODS,
            "application/vnd.oasis.opendocument.text" => ODT,
            "application/vnd.oasis.opendocument.presentation" => ODP,
            _ => ZIP,
        };
        return (kind, vba);
    }
    (ZIP, vba)
}

struct OleKind {
    kind: &'static str,
    encrypted: bool,
    macros: bool,
}

/// Reads the OLE2 directory: `Workbook`/`Book` is Excel (and WPS .et),
/// `WordDocument` is Word (and WPS .wps), `EncryptedPackage` a protected OOXML.
fn ole_kind(data: &[u8]) -> OleKind {
    let unknown = OleKind {
        kind: OLE,
        encrypted: false,
        macros: false,
    };
    // The cfb crate asserts on some malformed directories; a panic there must
    // not take the message down, so it is contained here (no unsafe involved).
    let result = std::panic::catch_unwind(|| ole_kind_inner(data));
    result.ok().flatten().unwrap_or(unknown)
}

fn ole_kind_inner(data: &[u8]) -> Option<OleKind> {
    let mut cf = cfb::CompoundFile::open(Cursor::new(data)).ok()?;
    let names: Vec<String> = cf
        .walk()
        .map(|e| e.path().to_string_lossy().into_owned())
        .collect();
    let has = |n: &str| names.iter().any(|p| p.trim_start_matches('/') == n);
    let macros = names
        .iter()
        .any(|p| p.contains("_VBA_PROJECT_CUR") || p.starts_with("/Macros") || p.contains("/VBA/"));
    if has("EncryptedPackage") {
        return Some(OleKind {
            kind: ENCRYPTED_OOXML,
            encrypted: true,
            macros,
        });
    }
    let read_head = |cf: &mut cfb::CompoundFile<Cursor<&[u8]>>, name: &str, n: u64| {
        let mut buf = Vec::new();
        cf.open_stream(name)
            .ok()?
            .take(n)
            .read_to_end(&mut buf)
            .ok()?;
        Some(buf)
    };
    if has("Workbook") || has("Book") {
        let stream = if has("Workbook") {
            "/Workbook"
        } else {
            "/Book"
        };
        let head = read_head(&mut cf, stream, 64 * 1024).unwrap_or_default();
        return Some(OleKind {
            kind: XLS,
            encrypted: biff_has_filepass(&head),
            macros,
        });
    }
    if has("WordDocument") {
        let fib = read_head(&mut cf, "/WordDocument", 32).unwrap_or_default();
        // FIB base: flags word at offset 0x0A, bit 8 = fEncrypted.
        let encrypted = fib.len() >= 12 && u16::from_le_bytes([fib[10], fib[11]]) & 0x0100 != 0;
        return Some(OleKind {
            kind: DOC,
            encrypted,
            macros,
        });
    }
    if has("PowerPoint Document") {
        return Some(OleKind {
            kind: PPT,
            encrypted: has("EncryptedSummary"),
            macros,
        });
    }
    Some(OleKind {
        kind: OLE,
        encrypted: false,
        macros,
    })
}

/// Walks the BIFF records at the start of a workbook stream: a FILEPASS
/// record (0x002F) before the first sheet means the workbook has a password.
fn biff_has_filepass(stream: &[u8]) -> bool {
    let mut pos = 0;
    while pos + 4 <= stream.len() {
        let id = u16::from_le_bytes([stream[pos], stream[pos + 1]]);
        let len = u16::from_le_bytes([stream[pos + 2], stream[pos + 3]]) as usize;
        match id {
            0x002F => return true,
            // BOUNDSHEET or EOF of the globals: past where FILEPASS may be.
            0x0085 | 0x000A => return false,
            _ => pos += 4 + len,
        }
    }
    false
}

/// Problems a file has by itself: empty, password, macros, executable.
pub(crate) fn file_problems(data: &[u8], filename: &str, media_type: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    if data.is_empty() {
        problems.push(Problem::new(
            ProblemCode::EmptyFile,
            format!("文件《{filename}》是空文件（0字节），请重新添加附件后发送"),
        ));
        return problems;
    }
    let (encrypted, macros) = match media_type {
        XLSM | DOCM | PPTM => (false, true),
        XLSX | DOCX | PPTX => (false, zip_kind(data).1),
        ENCRYPTED_OOXML | XLS | DOC | PPT | OLE => {
            let k = ole_kind(data);
            (k.encrypted, k.macros)
        }
        _ => (false, false),
    };
    if encrypted {
        problems.push(Problem::new(
            ProblemCode::EncryptedFile,
            format!("文件《{filename}》设置了密码，无法读取，请去掉密码后重新发送"),
        ));
    }
    if macros {
        problems.push(Problem::new(
            ProblemCode::MacroFile,
            format!("文件《{filename}》含有宏，出于安全原因未运行宏，请另存为不含宏的 .xlsx 或 .docx 后发送"),
        ));
    }
    if matches!(media_type, EXE | ELF | SCRIPT | SHORTCUT) {
        problems.push(Problem::new(
            ProblemCode::Executable,
            format!("文件《{filename}》是可执行程序或脚本，出于安全原因未打开，请只发送表格、文档或扫描件"),
        ));
    }
    if media_type == TNEF {
        problems.push(Problem::new(
            ProblemCode::WinmailDat,
            format!("附件《{filename}》是 Outlook 专用格式，无法读取，请在 Outlook 中改用 HTML 或纯文本格式重新发送"),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn magic_bytes_win_over_extension() {
        assert_eq!(sniff(b"%PDF-1.4\n...", "推荐表.xls"), PDF);
        assert_eq!(
            sniff(b"\xFF\xD8\xFF\xE0\0\x10JFIF", "scan.pdf"),
            "image/jpeg"
        );
        assert_eq!(sniff(b"<html><body><table>", "统计表.xls"), "text/html");
        assert_eq!(sniff(b"Rar!\x1A\x07\x01\x00", "材料.zip"), RAR);
        assert_eq!(
            sniff(b"\0\0\0\x18ftypheic\0\0\0\0", "IMG_1.HEIC"),
            "image/heic"
        );
        assert_eq!(sniff(b"MZ\x90\0", "推荐表.pdf"), EXE);
    }

    #[test]
    fn ooxml_is_told_apart_by_content_types() {
        let ct = br#"<Types><Override ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#;
        let xlsx = zip_with(&[("[Content_Types].xml", ct), ("xl/workbook.xml", b"<w/>")]);
        assert_eq!(sniff(&xlsx, "a.zip"), XLSX);
        let ct = br#"<Types><Override ContentType="application/vnd.ms-excel.sheet.macroEnabled.main+xml"/></Types>"#;
        let xlsm = zip_with(&[("[Content_Types].xml", ct), ("xl/vbaProject.bin", b"x")]);
        assert_eq!(sniff(&xlsm, "a.xlsx"), XLSM);
        assert_eq!(
            file_problems(&xlsm, "a.xlsx", XLSM)[0].code.as_str(),
            "macro_file"
        );
        let odt = zip_with(&[("mimetype", b"application/vnd.oasis.opendocument.text")]);
        assert_eq!(sniff(&odt, "a.odt"), ODT);
        assert_eq!(sniff(&zip_with(&[("a.txt", b"x")]), "a.xlsx"), ZIP);
    }

    #[test]
    fn scripts_are_executables_by_name() {
        assert_eq!(sniff(b"@echo off", "setup.bat"), SCRIPT);
        assert_eq!(
            file_problems(b"@echo off", "setup.bat", SCRIPT)[0]
                .code
                .as_str(),
            "executable"
        );
    }

    #[test]
    fn empty_file_is_a_problem() {
        assert_eq!(
            file_problems(b"", "推荐表.xlsx", XLSX)[0].code.as_str(),
            "empty_file"
        );
    }

    #[test]
    fn biff_filepass_means_password() {
        // BOF, FILEPASS
        let stream = [0x09, 0x08, 0x02, 0x00, 0x00, 0x06, 0x2F, 0x00, 0x00, 0x00];
        assert!(biff_has_filepass(&stream));
        let stream = [0x09, 0x08, 0x02, 0x00, 0x00, 0x06, 0x85, 0x00, 0x00, 0x00];
        assert!(!biff_has_filepass(&stream));
    }

    #[test]
    fn garbage_ole_header_does_not_panic() {
        let mut data = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec();
        data.extend_from_slice(&[0xFF; 600]);
        assert_eq!(sniff(&data, "x.xls"), OLE);
    }
}
