//! BIFF workbooks (.xls, WPS .et) made safe to hand to calamine.
//!
//! calamine parses every sheet of an .xls when it opens it, reserves what
//! a sheet's DIMENSIONS record asks, builds each sheet densely from its
//! extent (two cells at A1 and IV65536 are 16 M cells), clones a shared
//! string into every cell that shows it, and spells out every formula. So
//! before it sees the file, the Workbook stream is rewritten in place, each
//! record keeping its length so that the sheet offsets stay right:
//! DIMENSIONS and cells outside `MAX_ROWS`×`MAX_COLS` become a record type
//! nobody reads, formulas lose their tokens (their cached values are what
//! forms show), shared-string cells stop at a byte budget, and sheets past
//! `MAX_SHEETS` (or pointing at a sheet already listed) are dropped. The
//! stream then goes into a fresh compound file.

use std::collections::HashSet;
use std::io::{Cursor, Read, Write};

use super::grid::{Deadline, MAX_COLS, MAX_ROWS};
use super::sheet::MAX_SHEETS;

/// Largest Workbook stream read.
const MAX_STREAM_BYTES: u64 = 64 << 20;
/// A record type no BIFF reader knows: what a dropped record becomes.
const IGNORED: u16 = 0xFFFF;
/// Most text calamine may copy out of the shared strings into cells.
const MAX_SHARED_TEXT: usize = 64 << 20;
/// Most CONTINUE records kept after one record: calamine takes them off
/// the front of a vector one by one, quadratic in their number.
const MAX_CONTINUES: usize = 16 << 10;
/// What one shared string costs when its length is unknown: the longest a
/// BIFF8 string can be (65 535 UTF-16 units, 3 bytes each in UTF-8).
const MAX_STRING_COST: usize = 65_535 * 3;

const BOUNDSHEET: u16 = 0x0085;
const CONTINUE: u16 = 0x003C;
const DIMENSIONS: u16 = 0x0200;
const FORMULA: u16 = 0x0006;
const LABELSST: u16 = 0x00FD;
const MULRK: u16 = 0x00BD;
const SST: u16 = 0x00FC;
const STRING: u16 = 0x0207;
/// NUMBER, LABEL, RSTRING, BOOLERR, RK: row and column first.
const CELLS: [u16; 5] = [0x0203, 0x0204, 0x00D6, 0x0205, 0x027E];

/// The workbook in `data` (a compound file), rewritten as above.
pub fn sanitise(data: &[u8], clock: &mut Deadline) -> Result<Vec<u8>, String> {
    let mut cf = cfb::CompoundFile::open(Cursor::new(data)).map_err(|e| e.to_string())?;
    let name = ["/Workbook", "/Book"]
        .into_iter()
        .find(|n| cf.is_stream(n))
        .ok_or("缺少Workbook流，不是Excel文件")?;
    let mut stream = Vec::new();
    cf.open_stream(name)
        .map_err(|e| e.to_string())?
        .take(MAX_STREAM_BYTES)
        .read_to_end(&mut stream)
        .map_err(|e| e.to_string())?;
    drop(cf);
    rewrite(&mut stream, clock)?;
    let write = || -> std::io::Result<Vec<u8>> {
        // Version 3 (512-byte sectors), as Excel writes: calamine does not find
        // the stream in a version 4 file.
        let mut out =
            cfb::CompoundFile::create_with_version(cfb::Version::V3, Cursor::new(Vec::new()))?;
        out.create_stream(name)?.write_all(&stream)?;
        out.flush()?;
        Ok(out.into_inner().into_inner())
    };
    write().map_err(|e| e.to_string())
}

fn u16_at(s: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(s.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(s: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(s.get(at..at + 4)?.try_into().ok()?))
}

/// Rewrites the records of a Workbook stream in place.
pub fn rewrite(s: &mut [u8], clock: &mut Deadline) -> Result<(), String> {
    let mut sheets = HashSet::new();
    let mut shared = Shared::default();
    let mut shared_text = 0usize;
    let mut drop_string = false;
    let mut continues = 0usize;
    let mut pos = 0usize;
    while let (Some(typ), Some(len)) = (u16_at(s, pos), u16_at(s, pos + 2)) {
        clock.tick()?;
        let body = pos + 4..pos + 4 + len as usize;
        if body.end > s.len() {
            break;
        }
        let cell = (u16_at(s, body.start), u16_at(s, body.start + 2));
        let outside = match cell {
            (Some(r), Some(c)) => r as usize >= MAX_ROWS || c as usize >= MAX_COLS,
            _ => false,
        };
        continues = if typ == CONTINUE { continues + 1 } else { 0 };
        let drop = match typ {
            CONTINUE => continues > MAX_CONTINUES,
            BOUNDSHEET => {
                let at = u32_at(s, body.start).map_or(usize::MAX, |p| p as usize);
                at >= s.len() || sheets.len() >= MAX_SHEETS || !sheets.insert(at)
            }
            DIMENSIONS => true,
            SST => {
                shared = shared_lengths(s, body.clone());
                false
            }
            FORMULA => {
                // cce = 0: no tokens to spell out.
                if let Some(cce) = s.get_mut(body.start + 20..body.start + 22) {
                    cce.fill(0);
                }
                drop_string = outside;
                outside
            }
            STRING => std::mem::take(&mut drop_string),
            LABELSST => {
                let cost = u32_at(s, body.start + 6).map_or(0, |i| shared.cost(i as usize));
                if !outside {
                    shared_text = shared_text.saturating_add(cost);
                }
                outside || shared_text > MAX_SHARED_TEXT
            }
            MULRK => match cell {
                (Some(_), Some(c)) if (c as usize) < MAX_COLS => {
                    cut_mulrk(s, body.clone(), c as usize);
                    cell.0.is_some_and(|r| r as usize >= MAX_ROWS)
                }
                _ => true,
            },
            t if CELLS.contains(&t) => outside,
            _ => false,
        };
        if drop {
            s[pos..pos + 2].copy_from_slice(&IGNORED.to_le_bytes());
        }
        pos = body.end;
    }
    Ok(())
}

/// Cuts a MULRK (row, first column, 6-byte values, last column) that runs
/// past `MAX_COLS` back to the window; the bytes it frees become an ignored
/// record, so the stream keeps its length.
fn cut_mulrk(s: &mut [u8], body: std::ops::Range<usize>, first: usize) {
    let values = body.len().saturating_sub(6) / 6;
    let keep = MAX_COLS - first;
    if values <= keep {
        return;
    }
    let len = 4 + 6 * keep + 2;
    let last = (first + keep - 1) as u16;
    s[body.start + len - 2..body.start + len].copy_from_slice(&last.to_le_bytes());
    s[body.start - 2..body.start].copy_from_slice(&(len as u16).to_le_bytes());
    // At least one 6-byte value was cut: room for a 4-byte header.
    let filler = body.start + len;
    let rest = (body.end - filler - 4) as u16;
    s[filler..filler + 2].copy_from_slice(&IGNORED.to_le_bytes());
    s[filler + 2..filler + 4].copy_from_slice(&rest.to_le_bytes());
}

/// What each shared string costs calamine once decoded: 3 bytes per
/// character, plus the `String` itself.
#[derive(Debug, Default, PartialEq)]
struct Shared {
    known: Vec<usize>,
    /// The cost of a string past `known`: none when the table was read to
    /// its end, the most a string can cost when it stopped making sense.
    rest: usize,
}

impl Shared {
    fn cost(&self, i: usize) -> usize {
        self.known.get(i).copied().unwrap_or(self.rest)
    }
}

/// Measures the strings of an SST record and its CONTINUE records.
fn shared_lengths(s: &[u8], body: std::ops::Range<usize>) -> Shared {
    let mut segments = vec![&s[body.start.min(body.end)..body.end]];
    let mut pos = body.end;
    while u16_at(s, pos) == Some(CONTINUE) && segments.len() <= MAX_CONTINUES {
        let len = u16_at(s, pos + 2).unwrap_or(0) as usize;
        let Some(seg) = s.get(pos + 4..pos + 4 + len) else {
            break;
        };
        segments.push(seg);
        pos += 4 + len;
    }
    let mut r = Segments {
        segments,
        at: 0,
        pos: 8,
    };
    let mut out = Shared::default();
    while !r.done() {
        match r.string() {
            Some(chars) => out.known.push(chars * 3 + 24),
            None => {
                out.rest = MAX_STRING_COST;
                break;
            }
        }
    }
    out
}

/// A record's bytes spread over itself and its CONTINUE records.
struct Segments<'a> {
    segments: Vec<&'a [u8]>,
    at: usize,
    pos: usize,
}

impl Segments<'_> {
    fn done(&self) -> bool {
        let mut rest = self.segments.iter().skip(self.at);
        rest.next().is_none_or(|s| s.len() <= self.pos) && rest.all(|s| s.is_empty())
    }

    /// Moves past used-up segments; None at the end.
    fn next_segment(&mut self) -> Option<()> {
        while self.pos >= self.segments.get(self.at)?.len() {
            self.at += 1;
            self.pos = 0;
        }
        Some(())
    }

    fn byte(&mut self) -> Option<u8> {
        self.next_segment()?;
        let b = self.segments[self.at][self.pos];
        self.pos += 1;
        Some(b)
    }

    fn skip(&mut self, mut n: usize) -> Option<()> {
        while n > 0 {
            self.next_segment()?;
            let step = n.min(self.segments[self.at].len() - self.pos);
            self.pos += step;
            n -= step;
        }
        Some(())
    }

    /// One XLUnicodeRichExtendedString; its length in characters.
    fn string(&mut self) -> Option<usize> {
        let cch = u16::from_le_bytes([self.byte()?, self.byte()?]) as usize;
        let flags = self.byte()?;
        let runs = if flags & 0x8 != 0 {
            u16::from_le_bytes([self.byte()?, self.byte()?]) as usize
        } else {
            0
        };
        let ext = if flags & 0x4 != 0 {
            u32::from_le_bytes([self.byte()?, self.byte()?, self.byte()?, self.byte()?]) as usize
        } else {
            0
        };
        let mut wide = flags & 0x1 != 0;
        let mut left = cch;
        loop {
            let width = if wide { 2 } else { 1 };
            let room = self.segments.get(self.at)?.len().saturating_sub(self.pos) / width;
            let take = room.min(left);
            self.pos += take * width;
            left -= take;
            if left == 0 {
                break;
            }
            // Characters go on in the next CONTINUE, which starts with its own flags.
            self.at += 1;
            self.pos = 0;
            wide = self.byte()? & 0x1 != 0;
        }
        self.skip(runs * 4)?;
        self.skip(ext)?;
        Some(cch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn record(typ: u16, body: &[u8]) -> Vec<u8> {
        let mut r = typ.to_le_bytes().to_vec();
        r.extend((body.len() as u16).to_le_bytes());
        r.extend(body);
        r
    }

    fn clock() -> Deadline {
        Deadline::new(Instant::now() + Duration::from_secs(5))
    }

    fn types(s: &[u8]) -> Vec<u16> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let (Some(t), Some(l)) = (u16_at(s, pos), u16_at(s, pos + 2)) {
            out.push(t);
            pos += 4 + l as usize;
        }
        out
    }

    #[test]
    fn far_cells_and_dimensions_are_dropped() {
        let number = |r: u16, c: u16| {
            let mut b = r.to_le_bytes().to_vec();
            b.extend(c.to_le_bytes());
            b.extend([0; 10]);
            record(0x0203, &b)
        };
        let mut s = record(DIMENSIONS, &[0xFF; 14]);
        s.extend(number(0, 0));
        s.extend(number(65535, 255));
        rewrite(&mut s, &mut clock()).unwrap();
        assert_eq!(types(&s), vec![IGNORED, 0x0203, IGNORED]);
    }

    #[test]
    fn a_wide_mulrk_is_cut_to_the_window_and_keeps_its_length() {
        let mut b = 0u16.to_le_bytes().to_vec();
        b.extend(90u16.to_le_bytes());
        b.extend([0u8; 6 * 20]);
        b.extend(109u16.to_le_bytes());
        let mut s = record(MULRK, &b);
        let before = s.len();
        rewrite(&mut s, &mut clock()).unwrap();
        assert_eq!(s.len(), before);
        assert_eq!(types(&s), vec![MULRK, IGNORED]);
        let len = u16_at(&s, 2).unwrap() as usize;
        assert_eq!(len, 4 + 6 * 10 + 2);
        assert_eq!(u16_at(&s, 4 + len - 2), Some(99));
    }

    #[test]
    fn shared_strings_split_over_continue_records_are_measured() {
        // Two strings: "ab" (8-bit) and a 3-character UTF-16 one split
        // after its first character, the CONTINUE restarting with flags.
        let mut sst = 2u32.to_le_bytes().to_vec();
        sst.extend(2u32.to_le_bytes());
        sst.extend([2, 0, 0, b'a', b'b']);
        sst.extend([3, 0, 1, 0x2D, 0x4E]);
        let mut s = record(SST, &sst);
        s.extend(record(CONTINUE, &[1, 0x2D, 0x4E, 0x2D, 0x4E]));
        let shared = shared_lengths(&s, 4..4 + sst.len());
        assert_eq!((shared.known, shared.rest), (vec![30, 33], 0));
    }
}
