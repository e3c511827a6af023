//! Media probing and the photo/video rule checks (fixtures from
//! tests/fixtures/media/make_media.sh).

use std::path::Path;

use baosong::config::{PhotoRule, VideoRule};
use baosong::extract::media::{check_photo, check_video, probe};
use baosong::model::MediaInfo;

fn read(name: &str) -> Vec<u8> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media"));
    std::fs::read(dir.join(name)).expect("fixture")
}

fn photo_rule() -> PhotoRule {
    PhotoRule {
        min_count: 5,
        min_bytes: Some(200_000),
        max_bytes: Some(2_000_000),
        formats: vec!["jpeg".to_owned()],
    }
}

fn jpeg_info() -> MediaInfo {
    MediaInfo {
        format: "jpeg".to_owned(),
        width: Some(4000),
        height: Some(3000),
        duration_secs: None,
    }
}

#[test]
fn jpeg_and_png_dimensions_come_from_headers() {
    let jpg = probe(&read("photo.jpg"), "image/jpeg").expect("jpg");
    assert_eq!(
        (jpg.format.as_str(), jpg.width, jpg.height),
        ("jpeg", Some(640), Some(480))
    );
    let png = probe(&read("chart.png"), "image/png").expect("png");
    assert_eq!(
        (png.format.as_str(), png.width, png.height),
        ("png", Some(320), Some(200))
    );
    assert_eq!(png.duration_secs, None);
}

#[test]
fn mp4_duration_and_size_come_from_moov() {
    let long = probe(&read("long_252s.mp4"), "video/mp4").expect("mp4");
    assert_eq!(long.format, "mp4");
    let secs = long.duration_secs.expect("duration");
    assert!((250.0..=256.0).contains(&secs), "{secs}");
    assert_eq!((long.width, long.height), (Some(64), Some(64)));
    let short = probe(&read("short_10s.mp4"), "video/mp4").expect("mp4");
    let secs = short.duration_secs.expect("duration");
    assert!((9.5..=11.0).contains(&secs), "{secs}");
    assert_eq!((short.width, short.height), (Some(96), Some(64)));
}

#[test]
fn mov_is_recognised_with_duration() {
    let mov = probe(&read("clip_30s.mov"), "video/quicktime").expect("mov");
    assert_eq!(mov.format, "mov");
    let secs = mov.duration_secs.expect("duration");
    assert!((29.5..=31.0).contains(&secs), "{secs}");
}

#[test]
fn avi_duration_comes_from_main_header() {
    let avi = probe(&read("clip_5s.avi"), "video/x-msvideo").expect("avi");
    assert_eq!(avi.format, "avi");
    let secs = avi.duration_secs.expect("duration");
    assert!((4.5..=5.5).contains(&secs), "{secs}");
    assert_eq!((avi.width, avi.height), (Some(64), Some(48)));
}

#[test]
fn truncated_mp4_is_a_problem_not_a_panic() {
    let p = probe(&read("truncated.mp4"), "video/mp4").expect_err("truncated");
    assert_eq!(p.code.as_str(), "video_unreadable");
    assert!(p.message.contains("重新导出"), "{}", p.message);
    for name in ["long_252s.mp4", "clip_30s.mov", "clip_5s.avi"] {
        let whole = read(name);
        for cut in 0..whole.len().min(6000) {
            let _ = probe(&whole[..cut], "video/mp4");
        }
    }
}

#[test]
fn garbage_is_unreadable() {
    let p = probe(b"hello, this is not a photo", "image/jpeg").expect_err("text");
    assert_eq!(p.code.as_str(), "media_unreadable");
    let p = probe(b"hello, this is not a video", "video/mp4").expect_err("text");
    assert_eq!(p.code.as_str(), "video_unreadable");
    let mut jpg = read("photo.jpg");
    jpg.truncate(20);
    assert!(probe(&jpg, "image/jpeg").is_err());
}

#[test]
fn photo_within_limits_passes() {
    assert!(check_photo("活动1.jpg", 500_000, &jpeg_info(), &photo_rule()).is_empty());
}

#[test]
fn oversized_photo_names_size_and_limit() {
    let p = check_photo("活动1.jpg", 3_400_000, &jpeg_info(), &photo_rule());
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].code.as_str(), "photo_too_large");
    assert!(
        p[0].message
            .starts_with("照片《活动1.jpg》大小为 3.4 MB，超出 2 MB 上限"),
        "{}",
        p[0].message
    );
}

#[test]
fn photo_just_over_the_limit_does_not_read_as_equal() {
    let p = check_photo("a.jpg", 2_040_000, &jpeg_info(), &photo_rule());
    assert!(
        p[0].message.contains("2.04 MB，超出 2 MB"),
        "{}",
        p[0].message
    );
}

#[test]
fn undersized_photo_asks_for_the_original() {
    let p = check_photo("a.jpg", 100_000, &jpeg_info(), &photo_rule());
    assert_eq!(p[0].code.as_str(), "photo_too_small");
    assert!(
        p[0].message.contains("100 KB，小于 0.2 MB"),
        "{}",
        p[0].message
    );
    assert!(p[0].message.contains("原图"));
}

#[test]
fn a_photo_under_a_megabyte_is_said_in_kilobytes() {
    // 61 KB is what the sender's file manager shows; "0.1 MB" is not.
    let p = check_photo("a.jpg", 61_000, &jpeg_info(), &photo_rule());
    assert!(
        p[0].message.contains("大小为 61 KB，小于 0.2 MB 下限"),
        "{}",
        p[0].message
    );
    // Just under the limit, as many decimals as tell the two apart.
    let p = check_photo("a.jpg", 199_800, &jpeg_info(), &photo_rule());
    assert!(
        p[0].message.contains("大小为 199.8 KB，小于 0.2 MB"),
        "{}",
        p[0].message
    );
}

#[test]
fn png_photo_breaks_a_jpg_only_rule() {
    let info = MediaInfo {
        format: "png".to_owned(),
        ..jpeg_info()
    };
    let p = check_photo("图.png", 500_000, &info, &photo_rule());
    assert_eq!(p[0].code.as_str(), "photo_format");
    assert!(
        p[0].message.contains("PNG 格式，要求 JPG 格式"),
        "{}",
        p[0].message
    );
}

#[test]
fn video_over_three_minutes_says_how_long() {
    let info = MediaInfo {
        format: "mp4".to_owned(),
        duration_secs: Some(252.0),
        ..MediaInfo::default()
    };
    let p = check_video("宣传片.mp4", &info, &VideoRule { max_seconds: 180 });
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].code.as_str(), "video_too_long");
    assert!(
        p[0].message
            .starts_with("视频《宣传片.mp4》时长4分12秒，超过3分钟"),
        "{}",
        p[0].message
    );
}

#[test]
fn video_within_limit_passes_and_unknown_duration_is_flagged() {
    let rule = VideoRule { max_seconds: 180 };
    let ok = MediaInfo {
        format: "mp4".to_owned(),
        duration_secs: Some(180.4),
        ..MediaInfo::default()
    };
    assert!(check_video("a.mp4", &ok, &rule).is_empty());
    let unknown = MediaInfo {
        format: "avi".to_owned(),
        ..MediaInfo::default()
    };
    assert_eq!(
        check_video("a.avi", &unknown, &rule)[0].code.as_str(),
        "video_duration_unknown"
    );
}

#[test]
fn probed_long_fixture_fails_the_three_minute_rule() {
    let info = probe(&read("long_252s.mp4"), "video/mp4").expect("mp4");
    let p = check_video("long.mp4", &info, &VideoRule { max_seconds: 180 });
    assert!(p[0].message.contains("时长4分1"), "{}", p[0].message);
}
