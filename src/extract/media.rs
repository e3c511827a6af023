//! Facts about photos and videos: format, size in pixels, duration, and the
//! checks a notice's photo/video rules ask for.

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

use crate::config::{PhotoRule, VideoRule};
use crate::model::MediaInfo;
use crate::model::{Problem, ProblemCode};

/// Boxes looked at before giving up on an ISO-BMFF file: a real file has a
/// handful at each level, a crafted one must not keep us looping.
const MAX_BOXES: usize = 4096;

/// Reads format, dimensions and (for MP4/MOV/AVI) duration without decoding
/// pixels. `media_type` only picks the wording of the error.
pub fn probe(data: &[u8], media_type: &str) -> Result<MediaInfo, Problem> {
    let is_video = media_type.starts_with("video/");
    if let Some(info) = probe_iso_bmff(data) {
        return info.ok_or_else(|| video_unreadable("文件不完整或已损坏，缺少时长信息"));
    }
    if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"AVI " {
        return Ok(probe_avi(data));
    }
    if let Some(format) = other_video_format(data) {
        return Ok(MediaInfo {
            format: format.to_owned(),
            ..MediaInfo::default()
        });
    }
    let reader = ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(|_| unreadable(is_video))?;
    let Some(format) = reader.format() else {
        return Err(unreadable(is_video));
    };
    let name = match format {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::Tiff => "tiff",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Gif => "gif",
        ImageFormat::WebP => "webp",
        _ => return Err(unreadable(is_video)),
    };
    let (width, height) = match format {
        // GIF's logical screen size sits in the header; no decoder needed.
        ImageFormat::Gif if data.len() >= 10 => (
            Some(u32::from(u16::from_le_bytes([data[6], data[7]]))),
            Some(u32::from(u16::from_le_bytes([data[8], data[9]]))),
        ),
        ImageFormat::Gif | ImageFormat::WebP => (None, None),
        _ => {
            let (w, h) = reader.into_dimensions().map_err(|_| photo_unreadable())?;
            (Some(w), Some(h))
        }
    };
    Ok(MediaInfo {
        format: name.to_owned(),
        width,
        height,
        duration_secs: None,
    })
}

fn unreadable(is_video: bool) -> Problem {
    if is_video {
        video_unreadable("格式无法识别")
    } else {
        Problem::new(
            ProblemCode::MediaUnreadable,
            "文件无法识别为照片或视频，请以 JPG 照片或 MP4 视频重新发送",
        )
    }
}

fn photo_unreadable() -> Problem {
    Problem::new(
        ProblemCode::PhotoUnreadable,
        "照片无法读取：文件已损坏，请重新导出为 JPG 后发送",
    )
}

fn video_unreadable(detail: &str) -> Problem {
    Problem::new(
        ProblemCode::VideoUnreadable,
        format!("视频无法读取：{detail}，请重新导出为 MP4 后发送"),
    )
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn be64(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

/// One box: its type and its payload (clamped to the data present).
struct Bmff<'a> {
    kind: [u8; 4],
    body: &'a [u8],
    /// The header promised more bytes than the file holds.
    truncated: bool,
}

/// Walks sibling boxes; stops at the first malformed header.
fn boxes(data: &[u8]) -> impl Iterator<Item = Bmff<'_>> {
    let mut at = 0usize;
    let mut seen = 0usize;
    std::iter::from_fn(move || {
        seen += 1;
        if seen > MAX_BOXES || at + 8 > data.len() {
            return None;
        }
        let size32 = be32(data, at)?;
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().ok()?;
        let (header, size) = match size32 {
            0 => (8, (data.len() - at) as u64),
            1 => (16, be64(data, at + 8)?),
            n => (8, u64::from(n)),
        };
        if size < header as u64 {
            return None;
        }
        let start = at + header;
        let end_wanted = (at as u64).saturating_add(size);
        let end = usize::try_from(end_wanted)
            .unwrap_or(usize::MAX)
            .min(data.len());
        if start > end {
            return None;
        }
        at = end;
        Some(Bmff {
            kind,
            body: &data[start..end],
            truncated: end_wanted > data.len() as u64,
        })
    })
}

/// MP4/MOV/HEIC: `None` if the data is not ISO-BMFF, `Some(None)` if it is
/// but the movie header is missing or cut off.
///
/// Written by hand: the duration is two integers in `moov/mvhd`, not worth a
/// container-parsing dependency.
fn probe_iso_bmff(data: &[u8]) -> Option<Option<MediaInfo>> {
    if data.get(4..8)? != b"ftyp" {
        return None;
    }
    let brand = data.get(8..12)?;
    let format = match brand {
        b"qt  " => "mov",
        b"heic" | b"heix" | b"mif1" | b"msf1" => {
            return Some(Some(MediaInfo {
                format: "heic".to_owned(),
                ..MediaInfo::default()
            }));
        }
        b"M4A " => "m4a",
        _ => "mp4",
    };
    let moov = boxes(data).find(|b| &b.kind == b"moov")?;
    if moov.truncated {
        return Some(None);
    }
    let mut info = MediaInfo {
        format: format.to_owned(),
        ..MediaInfo::default()
    };
    for b in boxes(moov.body) {
        match &b.kind {
            b"mvhd" => info.duration_secs = mvhd_duration(b.body),
            b"trak" if info.width.is_none() => {
                if let Some((w, h)) = boxes(b.body)
                    .find(|t| &t.kind == b"tkhd")
                    .and_then(|t| tkhd_size(t.body))
                {
                    info.width = Some(w);
                    info.height = Some(h);
                }
            }
            _ => {}
        }
    }
    Some(info.duration_secs.is_some().then_some(info))
}

fn mvhd_duration(body: &[u8]) -> Option<f64> {
    let (timescale, duration) = match body.first()? {
        0 => (be32(body, 12)?, u64::from(be32(body, 16)?)),
        1 => (be32(body, 20)?, be64(body, 24)?),
        _ => return None,
    };
    // All ones means "unknown" in both versions.
    if timescale == 0 || duration == u64::MAX || duration == u64::from(u32::MAX) {
        return None;
    }
    Some(duration as f64 / f64::from(timescale))
}

/// Track width and height (16.16 fixed point); zero for audio tracks.
fn tkhd_size(body: &[u8]) -> Option<(u32, u32)> {
    let at = match body.first()? {
        0 => 76,
        1 => 88,
        _ => return None,
    };
    let (w, h) = (be32(body, at)? >> 16, be32(body, at + 4)? >> 16);
    (w > 0 && h > 0).then_some((w, h))
}

/// AVI: the main header (`avih`) gives frame time and count.
fn probe_avi(data: &[u8]) -> MediaInfo {
    let mut info = MediaInfo {
        format: "avi".to_owned(),
        ..MediaInfo::default()
    };
    let head = &data[..data.len().min(4096)];
    if let Some(pos) = head.windows(4).position(|w| w == b"avih") {
        let body = head.get(pos + 8..).unwrap_or_default();
        let le = |at: usize| {
            body.get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        if let (Some(us), Some(frames)) = (le(0), le(16))
            && us > 0
            && frames > 0
        {
            info.duration_secs = Some(f64::from(us) * f64::from(frames) / 1e6);
        }
        info.width = le(32).filter(|&w| w > 0);
        info.height = le(36).filter(|&h| h > 0);
    }
    info
}

fn other_video_format(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some("mkv")
    } else if data.starts_with(b"FLV") {
        Some("flv")
    } else if data.starts_with(&[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11]) {
        Some("wmv")
    } else {
        None
    }
}

fn same_format(a: &str, b: &str) -> bool {
    let norm = |s: &str| match s.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" | "image/jpeg" => "jpeg".to_owned(),
        "tif" | "tiff" => "tiff".to_owned(),
        other => other.to_owned(),
    };
    norm(a) == norm(b)
}

/// `v` in units of `scale` bytes, with at least `min_decimals` and as many
/// more as it takes to tell `v` from `other` apart ("2.0 MB, over 2 MB"
/// would read as a contradiction).
fn amount(v: u64, other: u64, scale: f64, min_decimals: usize) -> String {
    let show = |v: u64, d: usize| {
        let s = format!("{:.*}", d, v as f64 / scale);
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    (min_decimals..=6)
        .map(|d| show(v, d))
        .find(|s| *s != show(other, 6))
        .unwrap_or_else(|| show(v, 6))
}

/// A limit as the notice writes it: megabytes (10^6 bytes), `0.2 MB`.
fn limit_text(limit: u64, size: u64) -> String {
    format!("{} MB", amount(limit, size, 1e6, 1))
}

/// A file's size as a file manager shows it: under a megabyte in kilobytes
/// (a 61 KB photo is not "0.1 MB"), else in megabytes.
fn size_text(size: u64, limit: u64) -> String {
    if size < 1_000_000 {
        format!("{} KB", amount(size, limit, 1e3, 0))
    } else {
        format!("{} MB", amount(size, limit, 1e6, 1))
    }
}

/// Checks a photo against the notice's rule (format, 0.2–2 MB, …). `name` is
/// the file name as the unit sent it.
pub fn check_photo(
    name: &str,
    size_bytes: u64,
    info: &MediaInfo,
    rule: &PhotoRule,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !rule.formats.is_empty() && !rule.formats.iter().any(|f| same_format(f, &info.format)) {
        let wanted: Vec<String> = rule.formats.iter().map(|f| f.to_uppercase()).collect();
        let wanted = wanted.join("/").replace("JPEG", "JPG");
        let got = info.format.to_uppercase().replace("JPEG", "JPG");
        problems.push(Problem::new(
            ProblemCode::PhotoFormat,
            format!("照片《{name}》为 {got} 格式，要求 {wanted} 格式，请转换后重新发送"),
        ));
    }
    if let Some(max) = rule.max_bytes.filter(|&m| size_bytes > m) {
        problems.push(Problem::new(
            ProblemCode::PhotoTooLarge,
            format!(
                "照片《{name}》大小为 {}，超出 {} 上限，请压缩后重新发送",
                size_text(size_bytes, max),
                limit_text(max, size_bytes)
            ),
        ));
    }
    if let Some(min) = rule.min_bytes.filter(|&m| size_bytes < m) {
        problems.push(Problem::new(
            ProblemCode::PhotoTooSmall,
            format!(
                "照片《{name}》大小为 {}，小于 {} 下限，请发送未经压缩的原图",
                size_text(size_bytes, min),
                limit_text(min, size_bytes)
            ),
        ));
    }
    problems
}

/// "4分12秒", "3分钟", "45秒".
fn minutes(secs: u64) -> String {
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}秒"),
        (m, 0) => format!("{m}分钟"),
        (m, s) => format!("{m}分{s}秒"),
    }
}

/// Checks a video against the notice's rule (≤ 3 minutes). Durations are
/// rounded to the second, so a 180.4 s clip passes a 3-minute limit.
pub fn check_video(name: &str, info: &MediaInfo, rule: &VideoRule) -> Vec<Problem> {
    let Some(secs) = info.duration_secs.filter(|d| d.is_finite() && *d >= 0.0) else {
        return vec![Problem::new(
            ProblemCode::VideoDurationUnknown,
            format!("视频《{name}》无法读取时长，请确认文件完整，或重新导出为 MP4 后发送"),
        )];
    };
    let secs = secs.round() as u64;
    if secs > u64::from(rule.max_seconds) {
        return vec![Problem::new(
            ProblemCode::VideoTooLong,
            format!(
                "视频《{name}》时长{}，超过{}，请剪辑后重新发送",
                minutes(secs),
                minutes(u64::from(rule.max_seconds))
            ),
        )];
    }
    Vec::new()
}
