//! Charset labels as mail carries them, and decoding by them.
//!
//! encoding_rs knows the labels of the WHATWG Encoding Standard. Mail also
//! carries the names Python's `email` package writes (`=?eucgb2312_cn?b?…?=`
//! for gb2312, `big5_tw`, `hz`), Java's names and Windows code pages:
//! [`ALIASES`] adds those. A label nobody knows, and bytes that are not valid
//! in their label, are sniffed; raw 8-bit bytes are read in what the message
//! itself declares.

use encoding_rs::{
    BIG5, EUC_JP, EUC_KR, Encoding, GB18030, ISO_2022_JP, ISO_8859_2, ISO_8859_3, ISO_8859_4,
    ISO_8859_5, ISO_8859_6, ISO_8859_7, ISO_8859_8, ISO_8859_10, ISO_8859_13, ISO_8859_14,
    ISO_8859_15, ISO_8859_16, KOI8_R, KOI8_U, MACINTOSH, REPLACEMENT, SHIFT_JIS, UTF_8, UTF_16BE,
    UTF_16LE, WINDOWS_874, WINDOWS_1250, WINDOWS_1251, WINDOWS_1252, WINDOWS_1253, WINDOWS_1254,
    WINDOWS_1255, WINDOWS_1256, WINDOWS_1257, WINDOWS_1258, X_MAC_CYRILLIC,
};
use mail_parser::{Message, MimeHeaders};

/// How text in one charset is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    Enc(&'static Encoding),
    /// HZ-GB-2312 (RFC 1843): GB2312 in 7 bits between `~{` and `~}`.
    /// WHATWG maps its labels to the replacement encoding (a cross-site
    /// scripting risk in HTML); in mail it is text, and Python writes it.
    Hz,
    /// US-ASCII says nothing about 8-bit bytes: those are read as unlabelled.
    Ascii,
}

use Charset::{Ascii, Enc, Hz};

impl Charset {
    /// The text, or None when the bytes are not valid in this charset.
    fn decode_strict(self, bytes: &[u8]) -> Option<String> {
        match self {
            Enc(e) => {
                let (text, _, errors) = e.decode(bytes);
                (!errors).then(|| text.into_owned())
            }
            Hz => {
                let (text, errors) = decode_hz(bytes);
                (!errors).then_some(text)
            }
            Ascii => bytes.is_ascii().then(|| decode_ascii(bytes)),
        }
    }

    /// The text, with U+FFFD where the bytes are not valid.
    fn decode_lossy(self, bytes: &[u8]) -> String {
        match self {
            Enc(e) => e.decode(bytes).0.into_owned(),
            Hz => decode_hz(bytes).0,
            Ascii => WINDOWS_1252.decode(bytes).0.into_owned(),
        }
    }
}

/// Labels encoding_rs does not know (or, for US-ASCII and HZ, maps
/// otherwise), keyed by the label in lower case with everything but letters
/// and digits removed, so `EUC_CN`, `euc-cn` and `x-euc-cn` meet their key
/// whatever their punctuation. Sorted for the binary search. Gathered from
/// Python's `encodings.aliases` and codec names, Java's charset names and
/// aliases, and Windows code pages with their .NET names; each label and
/// what it must decode as is in tests/fixtures/charsets/aliases.tsv (written
/// by make_charsets.py), which a test checks against [`lookup`].
/// GB2312 and GBK labels decode as GB18030, their superset; Latin-1 as
/// windows-1252 (WHATWG: mail labelled Latin-1 uses 0x80–0x9F as cp1252);
/// JIS X 0213 and ISO-2022-JP-1/2/3 as their JIS X 0208 base, the closest
/// encoding_rs has. Labels of what encoding_rs cannot decode (EBCDIC, DOS
/// code pages but 866, UTF-32, UTF-7, Johab, ISO-2022-KR/CN) are left out:
/// unknown, their text is sniffed.
static ALIASES: &[(&str, Charset)] = &[
    ("10000", Enc(MACINTOSH)),
    ("10001", Enc(SHIFT_JIS)),
    ("10002", Enc(BIG5)),
    ("10003", Enc(EUC_KR)),
    ("10007", Enc(X_MAC_CYRILLIC)),
    ("10008", Enc(GB18030)),
    ("1200", Enc(UTF_16LE)),
    ("1201", Enc(UTF_16BE)),
    ("1250", Enc(WINDOWS_1250)),
    ("1251", Enc(WINDOWS_1251)),
    ("1252", Enc(WINDOWS_1252)),
    ("1253", Enc(WINDOWS_1253)),
    ("1254", Enc(WINDOWS_1254)),
    ("1255", Enc(WINDOWS_1255)),
    ("1256", Enc(WINDOWS_1256)),
    ("1257", Enc(WINDOWS_1257)),
    ("1258", Enc(WINDOWS_1258)),
    ("20127", Ascii),
    ("20866", Enc(KOI8_R)),
    ("20936", Enc(GB18030)),
    ("20949", Enc(EUC_KR)),
    ("21866", Enc(KOI8_U)),
    ("28591", Enc(WINDOWS_1252)),
    ("28592", Enc(ISO_8859_2)),
    ("28593", Enc(ISO_8859_3)),
    ("28594", Enc(ISO_8859_4)),
    ("28595", Enc(ISO_8859_5)),
    ("28596", Enc(ISO_8859_6)),
    ("28597", Enc(ISO_8859_7)),
    ("28598", Enc(ISO_8859_8)),
    ("28599", Enc(WINDOWS_1254)),
    ("28603", Enc(ISO_8859_13)),
    ("28605", Enc(ISO_8859_15)),
    ("50220", Enc(ISO_2022_JP)),
    ("50221", Enc(ISO_2022_JP)),
    ("50222", Enc(ISO_2022_JP)),
    ("51932", Enc(EUC_JP)),
    ("51936", Enc(GB18030)),
    ("51949", Enc(EUC_KR)),
    ("52936", Hz),
    ("54936", Enc(GB18030)),
    ("5601", Enc(EUC_KR)),
    ("646", Ascii),
    ("65001", Enc(UTF_8)),
    ("819", Enc(WINDOWS_1252)),
    ("874", Enc(WINDOWS_874)),
    ("8859", Enc(WINDOWS_1252)),
    ("88591", Enc(WINDOWS_1252)),
    ("885915", Enc(ISO_8859_15)),
    ("88592", Enc(ISO_8859_2)),
    ("88595", Enc(ISO_8859_5)),
    ("88597", Enc(ISO_8859_7)),
    ("932", Enc(SHIFT_JIS)),
    ("936", Enc(GB18030)),
    ("949", Enc(EUC_KR)),
    ("950", Enc(BIG5)),
    ("ansix341968", Ascii),
    ("ansix341986", Ascii),
    ("ascii", Ascii),
    ("ascii7", Ascii),
    ("asmo708", Enc(ISO_8859_6)),
    ("big5hk", Enc(BIG5)),
    ("big5hk2001", Enc(BIG5)),
    ("big5hkscs", Enc(BIG5)),
    ("big5hkscs2001", Enc(BIG5)),
    ("big5hkscsunicode30", Enc(BIG5)),
    ("big5tw", Enc(BIG5)),
    ("cp1200", Enc(UTF_16LE)),
    ("cp1201", Enc(UTF_16BE)),
    ("cp20866", Enc(KOI8_R)),
    ("cp20936", Enc(GB18030)),
    ("cp21866", Enc(KOI8_U)),
    ("cp367", Ascii),
    ("cp50220", Enc(ISO_2022_JP)),
    ("cp50221", Enc(ISO_2022_JP)),
    ("cp50222", Enc(ISO_2022_JP)),
    ("cp52936", Hz),
    ("cp5348", Enc(WINDOWS_1252)),
    ("cp54936", Enc(GB18030)),
    ("cp65001", Enc(UTF_8)),
    ("cp874", Enc(WINDOWS_874)),
    ("cp932", Enc(SHIFT_JIS)),
    ("cp936", Enc(GB18030)),
    ("cp949", Enc(EUC_KR)),
    ("cp950", Enc(BIG5)),
    ("csascii", Ascii),
    ("csiso2022jp2", Enc(ISO_2022_JP)),
    ("csjisencoding", Enc(ISO_2022_JP)),
    ("cswindows31j", Enc(SHIFT_JIS)),
    ("default", Ascii),
    ("ecma114", Enc(ISO_8859_6)),
    ("ecma118", Enc(ISO_8859_7)),
    ("euccn", Enc(GB18030)),
    ("eucgb2312cn", Enc(GB18030)),
    ("eucjis", Enc(EUC_JP)),
    ("eucjis2004", Enc(EUC_JP)),
    ("eucjisx0213", Enc(EUC_JP)),
    ("eucjp", Enc(EUC_JP)),
    ("eucjplinux", Enc(EUC_JP)),
    ("euckr", Enc(EUC_KR)),
    ("extendedunixcodepackedformatforjapanese", Enc(EUC_JP)),
    ("gb180302000", Enc(GB18030)),
    ("gb180302022", Enc(GB18030)),
    ("gb23121980", Enc(GB18030)),
    ("gb231280", Enc(GB18030)),
    ("hkscs", Enc(BIG5)),
    ("hz", Hz),
    ("hzgb", Hz),
    ("hzgb2312", Hz),
    ("ibm1252", Enc(WINDOWS_1252)),
    ("ibm367", Ascii),
    ("iso2022jp", Enc(ISO_2022_JP)),
    ("iso2022jp1", Enc(ISO_2022_JP)),
    ("iso2022jp2", Enc(ISO_2022_JP)),
    ("iso2022jp2004", Enc(ISO_2022_JP)),
    ("iso2022jp3", Enc(ISO_2022_JP)),
    ("iso2022jpext", Enc(ISO_2022_JP)),
    ("iso646irv1991", Ascii),
    ("iso646us", Ascii),
    ("iso8859", Enc(WINDOWS_1252)),
    ("iso8859101992", Enc(ISO_8859_10)),
    ("iso8859112001", Enc(WINDOWS_874)),
    ("iso885911987", Enc(WINDOWS_1252)),
    ("iso8859141998", Enc(ISO_8859_14)),
    ("iso885916", Enc(ISO_8859_16)),
    ("iso8859162001", Enc(ISO_8859_16)),
    ("iso885921987", Enc(ISO_8859_2)),
    ("iso885931988", Enc(ISO_8859_3)),
    ("iso885941988", Enc(ISO_8859_4)),
    ("iso885951988", Enc(ISO_8859_5)),
    ("iso885961987", Enc(ISO_8859_6)),
    ("iso885971987", Enc(ISO_8859_7)),
    ("iso885981988", Enc(ISO_8859_8)),
    ("iso885991989", Enc(WINDOWS_1254)),
    ("isoceltic", Enc(ISO_8859_14)),
    ("isoir100", Enc(WINDOWS_1252)),
    ("isoir101", Enc(ISO_8859_2)),
    ("isoir109", Enc(ISO_8859_3)),
    ("isoir110", Enc(ISO_8859_4)),
    ("isoir126", Enc(ISO_8859_7)),
    ("isoir127", Enc(ISO_8859_6)),
    ("isoir138", Enc(ISO_8859_8)),
    ("isoir144", Enc(ISO_8859_5)),
    ("isoir148", Enc(WINDOWS_1254)),
    ("isoir157", Enc(ISO_8859_10)),
    ("isoir166", Enc(WINDOWS_874)),
    ("isoir199", Enc(ISO_8859_14)),
    ("isoir226", Enc(ISO_8859_16)),
    ("isoir58", Enc(GB18030)),
    ("isoir6", Ascii),
    ("jis", Enc(ISO_2022_JP)),
    ("jisencoding", Enc(ISO_2022_JP)),
    ("jisx0213", Enc(EUC_JP)),
    ("koi8u", Enc(KOI8_U)),
    ("ksc56011987", Enc(EUC_KR)),
    ("ksx1001", Enc(EUC_KR)),
    ("l10", Enc(ISO_8859_16)),
    ("l7", Enc(ISO_8859_13)),
    ("l8", Enc(ISO_8859_14)),
    ("latin", Enc(WINDOWS_1252)),
    ("latin10", Enc(ISO_8859_16)),
    ("latin7", Enc(ISO_8859_13)),
    ("latin8", Enc(ISO_8859_14)),
    ("latin9", Enc(ISO_8859_15)),
    ("maccyrillic", Enc(X_MAC_CYRILLIC)),
    ("macroman", Enc(MACINTOSH)),
    ("ms874", Enc(WINDOWS_874)),
    ("ms936", Enc(GB18030)),
    ("ms949", Enc(EUC_KR)),
    ("ms950", Enc(BIG5)),
    ("ms950hkscs", Enc(BIG5)),
    ("ms950hkscsxp", Enc(BIG5)),
    ("mskanji", Enc(SHIFT_JIS)),
    ("shiftjis", Enc(SHIFT_JIS)),
    ("shiftjis2004", Enc(SHIFT_JIS)),
    ("shiftjisx0213", Enc(SHIFT_JIS)),
    ("sjis2004", Enc(SHIFT_JIS)),
    ("sjisx0213", Enc(SHIFT_JIS)),
    ("thai", Enc(WINDOWS_874)),
    ("tis620", Enc(WINDOWS_874)),
    ("tis6200", Enc(WINDOWS_874)),
    ("tis62025290", Enc(WINDOWS_874)),
    ("tis62025291", Enc(WINDOWS_874)),
    ("u16", Enc(UTF_16LE)),
    ("u8", Enc(UTF_8)),
    ("uhc", Enc(EUC_KR)),
    ("ujis", Enc(EUC_JP)),
    ("unicodebigunmarked", Enc(UTF_16BE)),
    ("unicodelittle", Enc(UTF_16LE)),
    ("unicodelittleunmarked", Enc(UTF_16LE)),
    ("us", Ascii),
    ("usascii", Ascii),
    ("utf", Enc(UTF_8)),
    ("utf16", Enc(UTF_16LE)),
    ("utf16be", Enc(UTF_16BE)),
    ("utf16le", Enc(UTF_16LE)),
    ("utf8mb3", Enc(UTF_8)),
    ("utf8mb4", Enc(UTF_8)),
    ("utf8sig", Enc(UTF_8)),
    ("utf8ucs2", Enc(UTF_8)),
    ("utf8ucs4", Enc(UTF_8)),
    ("windows1250", Enc(WINDOWS_1250)),
    ("windows1251", Enc(WINDOWS_1251)),
    ("windows1252", Enc(WINDOWS_1252)),
    ("windows1253", Enc(WINDOWS_1253)),
    ("windows1254", Enc(WINDOWS_1254)),
    ("windows1255", Enc(WINDOWS_1255)),
    ("windows1256", Enc(WINDOWS_1256)),
    ("windows1257", Enc(WINDOWS_1257)),
    ("windows1258", Enc(WINDOWS_1258)),
    ("windows54936", Enc(GB18030)),
    ("windows932", Enc(SHIFT_JIS)),
    ("windows936", Enc(GB18030)),
    ("windows949", Enc(EUC_KR)),
    ("windows950", Enc(BIG5)),
    ("xcp20936", Enc(GB18030)),
    ("xcp20949", Enc(EUC_KR)),
    ("xeuccn", Enc(GB18030)),
    ("xeucjp", Enc(EUC_JP)),
    ("xeucjplinux", Enc(EUC_JP)),
    ("xgb180302000", Enc(GB18030)),
    ("xhz", Hz),
    ("xmacchinesesimp", Enc(GB18030)),
    ("xmacchinesetrad", Enc(BIG5)),
    ("xmaccyrillic", Enc(X_MAC_CYRILLIC)),
    ("xmacjapanese", Enc(SHIFT_JIS)),
    ("xmackorean", Enc(EUC_KR)),
    ("xmacroman", Enc(MACINTOSH)),
    ("xmacsimpchinese", Enc(GB18030)),
    ("xmactradchinese", Enc(BIG5)),
    ("xms950hkscs", Enc(BIG5)),
    ("xms950hkscsxp", Enc(BIG5)),
    ("xmswin936", Enc(GB18030)),
    ("xutf16be", Enc(UTF_16BE)),
    ("xutf16le", Enc(UTF_16LE)),
    ("xutf16lebom", Enc(UTF_16LE)),
    ("xwindows50220", Enc(ISO_2022_JP)),
    ("xwindows50221", Enc(ISO_2022_JP)),
    ("xwindows874", Enc(WINDOWS_874)),
    ("xwindows949", Enc(EUC_KR)),
    ("xwindows950", Enc(BIG5)),
    ("xwindowsiso2022jp", Enc(ISO_2022_JP)),
];

/// The charset a label names, None when no table knows it.
pub(crate) fn lookup(label: &str) -> Option<Charset> {
    // An RFC 2231 language may follow the charset in an encoded word: `utf-8*en`.
    let label = label.split('*').next().unwrap_or_default();
    let label = label.trim().trim_matches(['"', '\'']).trim();
    let key: String = label
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if key.is_empty() {
        return None;
    }
    if let Ok(i) = ALIASES.binary_search_by(|(k, _)| (*k).cmp(key.as_str())) {
        return Some(ALIASES[i].1);
    }
    Encoding::for_label(label.as_bytes())
        .or_else(|| Encoding::for_label(key.as_bytes()))
        .filter(|e| *e != REPLACEMENT)
        .map(Enc)
}

/// The charsets a message declares on its parts (`Content-Type: …;
/// charset=`), in order: the best guess for its raw 8-bit header bytes.
/// Only 8-bit charsets that keep ASCII as ASCII can be such bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Declared(Vec<Charset>);

impl Declared {
    pub(crate) fn of(msg: &Message<'_>) -> Self {
        let mut found = Vec::new();
        for part in &msg.parts {
            let Some(cs) = part
                .content_type()
                .and_then(|ct| ct.attribute("charset"))
                .and_then(lookup)
            else {
                continue;
            };
            let eight_bit = matches!(cs, Enc(e) if e.is_ascii_compatible() && e != UTF_8);
            if eight_bit && !found.contains(&cs) {
                found.push(cs);
            }
        }
        Self(found)
    }
}

/// The text in the first charset in which `bytes` are valid.
fn first_valid(bytes: &[u8], candidates: impl IntoIterator<Item = Charset>) -> Option<String> {
    candidates
        .into_iter()
        .find_map(|cs| cs.decode_strict(bytes))
}

/// Bytes no label speaks for (raw 8-bit header bytes, unlabelled bodies):
/// UTF-8 when valid, since RFC 6532 makes raw header bytes UTF-8 and other
/// bytes are seldom valid UTF-8; else the first charset the message declares
/// in which they are valid; else GB18030 (a superset of GB2312/GBK, what
/// Chinese clients write unlabelled).
pub(crate) fn decode_8bit(bytes: &[u8], declared: &Declared) -> String {
    if bytes.is_ascii() {
        return decode_ascii(bytes);
    }
    first_valid(
        bytes,
        [Enc(UTF_8)]
            .into_iter()
            .chain(declared.0.iter().copied())
            .chain([Enc(GB18030)]),
    )
    .unwrap_or_else(|| Enc(GB18030).decode_lossy(bytes))
}

/// Bytes in a labelled charset (an RFC 2047 word, an RFC 2231 value, a body).
/// An unknown label is sniffed: UTF-8 when valid, else GB18030 when valid,
/// else what the message declares. Bytes not valid in a known label are most
/// often UTF-8 sent under a legacy label, or, under a UTF-8 label, legacy
/// bytes, which are then read as unlabelled.
pub(crate) fn decode(bytes: &[u8], label: &str, declared: &Declared) -> String {
    match lookup(label) {
        None => first_valid(
            bytes,
            [Enc(UTF_8), Enc(GB18030)]
                .into_iter()
                .chain(declared.0.iter().copied()),
        )
        .unwrap_or_else(|| Enc(GB18030).decode_lossy(bytes)),
        Some(cs) if cs == Ascii || cs == Enc(UTF_8) => decode_8bit(bytes, declared),
        Some(cs) => cs
            .decode_strict(bytes)
            .or_else(|| {
                (!bytes.is_ascii())
                    .then(|| Enc(UTF_8).decode_strict(bytes))
                    .flatten()
            })
            .unwrap_or_else(|| cs.decode_lossy(bytes)),
    }
}

fn decode_ascii(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// HZ (RFC 1843), as Python's `hz` codec reads it: `~{` enters GB mode, `~}`
/// leaves it, `~~` is `~`, `~` before a line break continues the line; in GB
/// mode each two bytes 0x21–0x7E are a GB2312 character without its high
/// bits. Returns the text and whether anything was not valid HZ.
fn decode_hz(bytes: &[u8]) -> (String, bool) {
    let mut out = String::with_capacity(bytes.len());
    let (mut gb, mut errors, mut i) = (false, false, 0);
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        let step = if b == b'~' {
            match (gb, next) {
                (false, Some(b'~')) => {
                    out.push('~');
                    2
                }
                (false, Some(b'{')) => {
                    gb = true;
                    2
                }
                (false, Some(b'\n')) => 2,
                (true, Some(b'}')) => {
                    gb = false;
                    2
                }
                _ => 0,
            }
        } else if b >= 0x80 {
            0
        } else if !gb {
            out.push(char::from(b));
            1
        } else {
            let pair = next
                .filter(|t| (0x21..=0x7E).contains(&b) && (0x21..=0x7E).contains(t))
                .map(|t| {
                    let gb = [b | 0x80, t | 0x80];
                    let (c, errors) = GB18030.decode_without_bom_handling(&gb);
                    (c.into_owned(), errors)
                });
            match pair {
                Some((c, false)) => {
                    out.push_str(&c);
                    2
                }
                _ => 0,
            }
        };
        if step == 0 {
            out.push('\u{FFFD}');
            errors = true;
            i += 1;
        } else {
            i += step;
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(cs: Charset) -> &'static str {
        match cs {
            Enc(e) => e.name(),
            Hz => "HZ-GB-2312",
            Ascii => "US-ASCII",
        }
    }

    #[test]
    fn alias_table_is_sorted_lower_case_letters_and_digits() {
        assert!(ALIASES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(ALIASES.iter().all(|(k, _)| {
            k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        }));
    }

    #[test]
    fn every_label_in_aliases_tsv_decodes_as_listed() {
        let tsv = include_str!("../../tests/fixtures/charsets/aliases.tsv");
        let mut count = 0;
        for line in tsv.lines().filter(|l| !l.starts_with('#')) {
            let mut cols = line.split('\t');
            let (source, label, want) = (cols.next(), cols.next(), cols.next());
            let got = lookup(label.unwrap()).map(name_of);
            // encoding_rs names GBK labels GBK; its GBK decoder is GB18030's.
            let got = got.map(|n| if n == "GBK" { "gb18030" } else { n });
            assert_eq!(got, want, "{source:?} label {label:?}");
            count += 1;
        }
        assert!(count > 500, "{count} labels");
    }

    #[test]
    fn labels_of_every_family_are_known() {
        for (label, name) in [
            ("eucgb2312_cn", "gb18030"),
            ("x-euc-cn", "gb18030"),
            ("GB_2312-80", "gb18030"),
            ("cp936", "gb18030"),
            ("936", "gb18030"),
            ("x-mac-chinesesimp", "gb18030"),
            ("big5_tw", "Big5"),
            ("big5-hkscs", "Big5"),
            ("utf_8", "UTF-8"),
            ("UTF8", "UTF-8"),
            ("utf-8*zh-cn", "UTF-8"),
            ("\"iso8859_1\"", "windows-1252"),
            ("latin1", "windows-1252"),
            ("sjis", "Shift_JIS"),
            ("ks_c_5601-1987", "EUC-KR"),
            ("hz", "HZ-GB-2312"),
            ("hz-gb-2312", "HZ-GB-2312"),
            ("us-ascii", "US-ASCII"),
        ] {
            assert_eq!(lookup(label).map(name_of), Some(name), "{label}");
        }
        for label in ["x-oa-charset", "", "iso-2022-kr", "utf-32", "cp437"] {
            assert_eq!(lookup(label), None, "{label}");
        }
    }

    #[test]
    fn raw_bytes_prefer_utf8_then_declared_then_gb18030() {
        let latin = Declared(vec![Enc(WINDOWS_1252)]);
        assert_eq!(decode_8bit(b"Fr\xf6sche", &latin), "Frösche");
        assert_eq!(decode_8bit(b"Fr\xf6sche", &Declared::default()), "Fr鰏che");
        assert_eq!(decode_8bit("苏州".as_bytes(), &latin), "苏州");
        let big5 = Declared(vec![Enc(BIG5)]);
        assert_eq!(decode_8bit(&BIG5.encode("香港").0, &big5), "香港");
    }

    #[test]
    fn bytes_invalid_in_their_label_are_read_again() {
        let none = Declared::default();
        let gbk = GB18030.encode("推荐表").0;
        assert_eq!(decode(&gbk, "utf-8", &none), "推荐表");
        assert_eq!(decode("推荐表".as_bytes(), "big5", &none), "推荐表");
        assert_eq!(decode(&gbk, "x-unknown", &none), "推荐表");
        assert_eq!(decode(b"caf\xe9", "x-unknown", &none), "caf\u{FFFD}");
        let latin = Declared(vec![Enc(WINDOWS_1252)]);
        assert_eq!(decode(b"caf\xe9", "x-unknown", &latin), "café");
    }

    #[test]
    fn hz_is_decoded_as_python_does() {
        // Python: "活动~总结".encode("hz")
        let (text, errors) = decode_hz(b"~{;n6/~}~~~{W\\=a~}");
        assert_eq!((text.as_str(), errors), ("活动~总结", false));
        assert!(decode_hz(b"~{;n6").1);
        assert!(decode_hz(b"a~xb").1);
        assert!(decode_hz(b"a\xb0b").1);
    }
}
