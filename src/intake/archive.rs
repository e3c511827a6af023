//! Files into the flat list: each file is sniffed and checked, and .zip archives
//! are opened (nested ones too) under the limits, which are enforced while
//! streaming, whatever sizes the archive declares. Entry names are only names:
//! nothing is ever written to disk.

use std::io::{Cursor, Read};

use super::FileEntry;
use super::charset::{Declared, decode_8bit};
use super::clean;
use super::sniff::{self, GZIP, RAR, SEVEN_Z, ZIP};
use crate::config::Limits;
use crate::model::{Problem, ProblemCode};
use crate::types::Sha256;

/// Collects the files of one message under its limits.
pub(crate) struct Collector<'l> {
    limits: &'l Limits,
    /// Bytes unpacked from archives so far in this message.
    unpacked: u64,
    /// Files not taken because the message had too many.
    skipped: u32,
    pub(crate) files: Vec<FileEntry>,
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

impl<'l> Collector<'l> {
    pub(crate) fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            unpacked: 0,
            skipped: 0,
            files: Vec::new(),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        self.limits
    }

    /// Whether the message already has as many files as it may.
    fn full(&mut self) -> bool {
        if self.files.len() as u64 >= u64::from(self.limits.max_attachments) {
            self.skipped += 1;
            true
        } else {
            false
        }
    }

    /// The message-level problem for files left out, if any.
    pub(crate) fn finish(self) -> (Vec<FileEntry>, Option<Problem>) {
        let problem = (self.skipped > 0).then(|| {
            Problem::new(
                ProblemCode::TooManyAttachments,
                format!(
                    "邮件中的文件超过{}个，其余{}个未读取，请分几封邮件发送",
                    self.limits.max_attachments, self.skipped
                ),
            )
        });
        (self.files, problem)
    }

    fn push(
        &mut self,
        filename: &str,
        path: String,
        declared: Option<String>,
        data: Vec<u8>,
        media_type: &'static str,
        problems: Vec<Problem>,
    ) {
        self.files.push(FileEntry {
            filename: filename.to_owned(),
            path,
            declared_type: declared,
            media_type: media_type.to_owned(),
            sha256: Sha256::of(&data),
            data,
            problems,
        });
    }

    /// Adds one file found at `path` (its last component is `filename`);
    /// `depth` counts the archives and forwarded mails it sits in.
    pub(crate) fn add_file(
        &mut self,
        filename: &str,
        path: String,
        declared: Option<String>,
        data: Vec<u8>,
        depth: u32,
    ) {
        if self.full() {
            return;
        }
        let mut media_type = sniff::sniff(&data, filename);
        if data.len() as u64 > self.limits.max_file_bytes {
            let problem = too_large(filename, data.len() as u64, self.limits.max_file_bytes);
            self.push(
                filename,
                path,
                declared,
                Vec::new(),
                media_type,
                vec![problem],
            );
            return;
        }
        let mut problems = sniff::file_problems(&data, filename, media_type);
        match media_type {
            ZIP if !data.is_empty() => match zip::ZipArchive::new(Cursor::new(data.as_slice())) {
                Err(_) => match sniff::office_type(&sniff::extension(filename)) {
                    // A spreadsheet or document cut short, not an archive:
                    // named as what it claims to be, so it still counts as
                    // that form, and the sender is told it does not open.
                    Some(office) => {
                        media_type = office;
                        problems.push(damaged(filename));
                    }
                    None => problems.push(corrupt(filename)),
                },
                Ok(_) if depth >= self.limits.max_archive_depth => {
                    problems.push(too_deep(filename))
                }
                Ok(archive) => match self.unzip(filename, &path, archive, depth + 1) {
                    Some(p) => problems.push(p),
                    // Fully read: its entries stand for it.
                    None => return,
                },
            },
            RAR | SEVEN_Z | GZIP => problems.push(Problem::new(
                ProblemCode::ArchiveUnsupported,
                format!("压缩包《{filename}》的格式无法自动解开，请将附件改为 .zip 格式重新发送"),
            )),
            _ => {}
        }
        self.push(filename, path, declared, data, media_type, problems);
    }

    /// Reads a zip's entries into the list. Returns the problem that stopped
    /// it from reading the whole archive, if any (the zip is then kept as a file).
    fn unzip(
        &mut self,
        zip_name: &str,
        zip_path: &str,
        mut archive: zip::ZipArchive<Cursor<&[u8]>>,
        depth: u32,
    ) -> Option<Problem> {
        let limits = self.limits;
        let mut entries = 0u32;
        let mut stop = None;
        for i in 0..archive.len() {
            let (raw_name, is_dir, encrypted, size, packed, utf8) = match archive.by_index_raw(i) {
                Ok(e) => (
                    e.name_raw().to_vec(),
                    e.is_dir(),
                    e.encrypted(),
                    e.size(),
                    e.compressed_size(),
                    e.flags().as_u16() & 0x800 != 0,
                ),
                Err(_) => {
                    stop = Some(corrupt(zip_name));
                    break;
                }
            };
            let name = entry_name(&raw_name, utf8);
            let Some((folders, file)) = safe_path(&name) else {
                continue;
            };
            if is_dir || is_junk(&folders, &file) {
                continue;
            }
            entries += 1;
            if entries > limits.max_archive_entries {
                stop = Some(Problem::new(
                    ProblemCode::ArchiveTooManyEntries,
                    format!(
                        "压缩包《{zip_name}》中的文件超过{}个，其余未读取，请分成几个压缩包发送",
                        limits.max_archive_entries
                    ),
                ));
                break;
            }
            let inner_path = if folders.is_empty() {
                format!("{zip_path}/{file}")
            } else {
                format!("{zip_path}/{folders}/{file}")
            };
            if encrypted {
                if self.full() {
                    continue;
                }
                let problem = Problem::new(
                    ProblemCode::ArchiveEncrypted,
                    format!(
                        "压缩包《{zip_name}》中的《{file}》设置了密码，无法读取，请去掉密码后重新发送"
                    ),
                );
                let media = sniff::sniff(&[], &file);
                self.push(&file, inner_path, None, Vec::new(), media, vec![problem]);
                continue;
            }
            // The cap is the smallest of: the per-file limit, what is left of
            // the message's budget, and the ratio limit on the packed size.
            let budget_left = limits.max_unpacked_bytes.saturating_sub(self.unpacked);
            let ratio_cap = packed
                .max(1)
                .saturating_mul(u64::from(limits.max_compression_ratio));
            let cap = limits.max_file_bytes.min(budget_left).min(ratio_cap);
            let mut buf = Vec::new();
            if size <= cap {
                let read = archive
                    .by_index(i)
                    .map_err(|_| ())
                    .and_then(|f| f.take(cap + 1).read_to_end(&mut buf).map_err(|_| ()));
                if read.is_err() {
                    stop = Some(corrupt(zip_name));
                    break;
                }
            }
            let actual = (buf.len() as u64).max(size);
            if size > cap || buf.len() as u64 > cap {
                let problem = if actual > limits.max_file_bytes && cap == limits.max_file_bytes {
                    // One entry too large: the rest of the archive may still be fine.
                    if !self.full() {
                        let media = sniff::sniff(&buf, &file);
                        self.push(
                            &file,
                            inner_path,
                            None,
                            Vec::new(),
                            media,
                            vec![too_large(&file, actual, limits.max_file_bytes)],
                        );
                    }
                    continue;
                } else if cap == ratio_cap {
                    Problem::new(
                        ProblemCode::ArchiveRatio,
                        format!(
                            "压缩包《{zip_name}》中的《{file}》压缩比异常（疑似压缩炸弹），未解开，请直接发送原文件"
                        ),
                    )
                } else {
                    Problem::new(
                        ProblemCode::ArchiveTooLarge,
                        format!(
                            "压缩包《{zip_name}》解压后超过{}，其余文件未读取，请分成几封邮件发送",
                            mb(limits.max_unpacked_bytes)
                        ),
                    )
                };
                stop = Some(problem);
                break;
            }
            self.unpacked += buf.len() as u64;
            self.add_file(&file, inner_path, None, buf, depth);
        }
        stop
    }
}

fn too_large(filename: &str, size: u64, limit: u64) -> Problem {
    Problem::new(
        ProblemCode::FileTooLarge,
        format!(
            "文件《{filename}》有{}，超过{}的上限，未读取，请压缩图片或拆分后重新发送",
            mb(size),
            mb(limit)
        ),
    )
}

fn corrupt(zip_name: &str) -> Problem {
    Problem::new(
        ProblemCode::ArchiveCorrupt,
        format!("压缩包《{zip_name}》已损坏，无法解开，请重新压缩后发送"),
    )
}

fn damaged(filename: &str) -> Problem {
    Problem::new(
        ProblemCode::FileUnreadable,
        format!("《{filename}》文件已损坏，无法打开，请确认文件能正常打开后重新发送"),
    )
}

fn too_deep(zip_name: &str) -> Problem {
    Problem::new(
        ProblemCode::ArchiveTooDeep,
        format!("压缩包《{zip_name}》套了太多层压缩包，未解开，请把文件直接放在一个 .zip 里发送"),
    )
}

/// An entry name: UTF-8 when the language-encoding flag says so or the bytes
/// are valid UTF-8, else GBK/GB18030 (Windows Explorer on a Chinese system).
pub(crate) fn entry_name(raw: &[u8], utf8_flag: bool) -> String {
    if utf8_flag {
        String::from_utf8_lossy(raw).into_owned()
    } else {
        decode_8bit(raw, &Declared::default())
    }
}

/// Splits an entry name into its folders and file name, each made safe
/// ([`clean::file_name`]), dropping what could climb out of the archive
/// (`..`, `/`, drive letters). None for an empty name.
pub(crate) fn safe_path(name: &str) -> Option<(String, String)> {
    let parts: Vec<String> = name
        .split(['/', '\\'])
        .map(clean::file_name)
        .filter(|p| !p.is_empty() && p != "." && p != ".." && !p.ends_with(':'))
        .collect();
    let (file, folders) = parts.split_last()?;
    Some((folders.join("/"), file.clone()))
}

fn is_junk(folders: &str, file: &str) -> bool {
    folders.split('/').any(|f| f == "__MACOSX")
        || file.starts_with("._")
        || file.starts_with("~$")
        || matches!(
            file.to_ascii_lowercase().as_str(),
            ".ds_store" | "thumbs.db" | "desktop.ini"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Instant;
    use zip::write::SimpleFileOptions;

    fn limits() -> Limits {
        Limits {
            max_file_bytes: 10 << 20,
            max_unpacked_bytes: 20 << 20,
            max_compression_ratio: 100,
            max_archive_entries: 10,
            max_archive_depth: 2,
            ..Limits::default()
        }
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// A zip whose one entry name is stored as raw bytes with flag bit 11 off,
    /// the way Windows Explorer writes GBK names.
    fn zip_with_raw_name(name: &[u8], data: &[u8]) -> Vec<u8> {
        let crc = crc32(data);
        let mut out = Vec::new();
        let local = |out: &mut Vec<u8>| {
            out.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0");
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name);
        };
        local(&mut out);
        out.extend_from_slice(data);
        let cd_start = out.len();
        out.extend_from_slice(b"PK\x01\x02\x14\0\x14\0\0\0\0\0\0\0\0\0");
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(name);
        let cd_len = out.len() - cd_start;
        out.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
        out.extend_from_slice(&(cd_len as u32).to_le_bytes());
        out.extend_from_slice(&(cd_start as u32).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn collect(name: &str, data: Vec<u8>, limits: &Limits) -> Vec<FileEntry> {
        let mut c = Collector::new(limits);
        c.add_file(name, name.to_owned(), None, data, 0);
        c.finish().0
    }

    #[test]
    fn gbk_zip_names_are_decoded() {
        let name = encoding_rs::GB18030.encode("材料/南京市推荐表.txt").0;
        let files = collect("材料.zip", zip_with_raw_name(&name, b"hello"), &limits());
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].filename, "南京市推荐表.txt");
        assert_eq!(files[0].path, "材料.zip/材料/南京市推荐表.txt");
    }

    #[test]
    fn utf8_zip_names_are_decoded() {
        let files = collect("a.zip", zip_of(&[("统计表.txt", b"x")]), &limits());
        assert_eq!(files[0].filename, "统计表.txt");
    }

    #[test]
    fn zip_slip_names_stay_names() {
        let files = collect(
            "a.zip",
            zip_of(&[
                ("../../etc/passwd", b"x"),
                ("C:\\Users\\a\\推荐表.txt", b"y"),
            ]),
            &limits(),
        );
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.zip/etc/passwd", "a.zip/Users/a/推荐表.txt"]);
    }

    #[test]
    fn mac_and_windows_junk_is_skipped() {
        let z = zip_of(&[
            ("__MACOSX/._a.txt", b"x"),
            (".DS_Store", b"x"),
            ("dir/Thumbs.db", b"x"),
            ("a.txt", b"x"),
        ]);
        let files = collect("a.zip", z, &limits());
        assert_eq!(files.len(), 1);
    }

    #[test]
    fn zip_bomb_is_stopped_while_streaming() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        w.start_file("zeros.txt", opts).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..50 {
            w.write_all(&chunk).unwrap();
        }
        let bomb = w.finish().unwrap().into_inner();
        assert!(bomb.len() < 200_000);
        let start = Instant::now();
        let files = collect("bomb.zip", bomb, &limits());
        assert!(start.elapsed().as_millis() < 2000);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].problems[0].code.as_str(), "archive_ratio");
    }

    #[test]
    fn nested_zip_stops_at_depth_limit() {
        let inner = zip_of(&[("推荐表.txt", b"x")]);
        let middle = zip_of(&[("inner.zip", &inner)]);
        let outer = zip_of(&[("middle.zip", &middle)]);
        let files = collect("outer.zip", outer, &limits());
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "outer.zip/middle.zip/inner.zip");
        assert_eq!(files[0].problems[0].code.as_str(), "archive_too_deep");
        let files = collect("middle.zip", zip_of(&[("inner.zip", &inner)]), &limits());
        assert_eq!(files[0].path, "middle.zip/inner.zip/推荐表.txt");
    }

    #[test]
    fn too_many_entries_is_a_problem() {
        let names: Vec<String> = (0..12).map(|i| format!("{i}.txt")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let files = collect("many.zip", zip_of(&entries), &limits());
        assert_eq!(files.len(), 11);
        assert_eq!(
            files[10].problems[0].code.as_str(),
            "archive_too_many_entries"
        );
    }

    #[test]
    fn corrupt_zip_becomes_a_file_with_a_problem() {
        let mut z = zip_of(&[("a.txt", b"hello")]);
        z.truncate(z.len() - 10);
        let files = collect("坏.zip", z, &limits());
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].problems[0].code.as_str(), "archive_corrupt");
    }

    #[test]
    fn truncated_office_file_is_unreadable_not_a_corrupt_archive() {
        let forms = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/forms/");
        for (real, name, media) in [
            ("tuijian.xlsx", "推荐表.xlsx", sniff::XLSX),
            ("tuijian.docx", "推荐表.docx", sniff::DOCX),
            ("tongji.ods", "统计表.ods", sniff::ODS),
        ] {
            let mut data = std::fs::read(format!("{forms}{real}")).unwrap();
            data.truncate(data.len() / 2);
            let files = collect(name, data, &limits());
            assert_eq!(files.len(), 1, "{name}");
            assert_eq!(files[0].media_type, media, "{name}");
            assert_eq!(
                files[0].problems,
                [Problem::new(
                    ProblemCode::FileUnreadable,
                    format!("《{name}》文件已损坏，无法打开，请确认文件能正常打开后重新发送")
                )]
            );
        }
    }

    #[test]
    fn escape_sequences_in_zip_names_are_removed() {
        let z = zip_of(&[("\u{1b}[31m材料/推荐表\u{1b}[0m.txt", b"x")]);
        let files = collect("a.zip", z, &limits());
        assert_eq!(files[0].path, "a.zip/材料/推荐表.txt");
        assert_eq!(files[0].filename, "推荐表.txt");
    }

    #[test]
    fn rar_asks_for_zip() {
        let files = collect("材料.rar", b"Rar!\x1A\x07\x01\x00rest".to_vec(), &limits());
        assert_eq!(files[0].problems[0].code.as_str(), "archive_unsupported");
        assert!(files[0].problems[0].message.contains(".zip"));
    }
}
