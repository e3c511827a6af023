//! Whether a raster shows a page (a scan, a phone photo of paper, a
//! screenshot of a form) or a scene (an event photo), so that a red banner,
//! a red jacket or a round red emblem in a photo is never taken for a seal.
//!
//! The image is cut into blocks of about 1/40 of its long side. A block is
//! *paper* when it is bright for its neighbourhood (the local white, so a
//! lamp's falloff across a photographed page does not matter), nearly
//! colourless, and holds only paper, dark ink and red (plus the grey edges
//! blur gives text): paper and ink are two tones, a scene's skin, clothes,
//! foliage and shadows are many. Neighbouring paper blocks of the same
//! white make a *sheet*. A page is one sheet across the middle of the frame,
//! whatever surrounds it (a desk, a scanner lid); in an event photo the
//! middle holds people, a stage or a crowd, and its white areas (a wall, an
//! exhibition board, a projected slide) are separate, smaller sheets. Text
//! lines on the sheet (ink runs between blank rows, counted in narrow
//! strips so a skewed page still shows them), a page-like aspect and little
//! colour other than red add to the score.

/// How much a raster looks like paper; see the module comment.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Look {
    /// Share of the frame the largest sheet fills.
    pub sheet: f32,
    /// Share of the middle of the frame (the central 60 % each way) it covers.
    pub sheet_centre: f32,
    /// Text lines on the sheet per strip of the image, in the busier half of
    /// the strips.
    pub lines: f32,
    /// Share of pixels saturated in a colour other than red.
    pub colour: f32,
    /// Long side over short side within 15 % of √2 (A4, either orientation;
    /// a phone's 4:3 photo of a page too).
    pub a4: bool,
    /// Ruled lines across the image both ways: a table.
    pub ruled_table: bool,
    /// 0..1; at least `DOCUMENT_SCORE` reads as a document.
    pub score: f32,
    /// Paper or not (on any sheet), per block, row by row.
    grid: Vec<bool>,
    grid_width: usize,
    block: usize,
}

pub(crate) const DOCUMENT_SCORE: f32 = 0.5;

/// One value per pixel, after white balance: luminance, saturation (max
/// minus min channel) and whether the pixel is seal red.
pub(crate) struct Planes<'a> {
    pub width: usize,
    pub height: usize,
    pub luma: &'a [u8],
    pub sat: &'a [u8],
    pub red: &'a [bool],
}

impl Look {
    pub(crate) fn is_document(&self) -> bool {
        self.score >= DOCUMENT_SCORE
    }

    /// Share of the blocks under a box (pixel coordinates, inclusive) that
    /// are paper: a seal is stamped on paper, a red ring in a photo is not.
    pub(crate) fn paper_under(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> f32 {
        if self.grid.is_empty() {
            return 0.0;
        }
        let rows = self.grid.len() / self.grid_width;
        let (bx0, bx1) = (x0 / self.block, (x1 / self.block).min(self.grid_width - 1));
        let (by0, by1) = (y0 / self.block, (y1 / self.block).min(rows - 1));
        let mut n = 0u32;
        let mut paper = 0u32;
        for by in by0..=by1 {
            for bx in bx0..=bx1 {
                n += 1;
                paper += u32::from(self.grid[by * self.grid_width + bx]);
            }
        }
        paper as f32 / n.max(1) as f32
    }
}

/// Pixel classes inside a block, relative to the block's local white.
#[derive(Default, Clone, Copy)]
struct Counts {
    n: u32,
    paper: u32,
    ink: u32,
    red: u32,
    colour: u32,
}

pub(crate) fn look(p: &Planes<'_>) -> Look {
    let (w, h) = (p.width, p.height);
    let block = (w.max(h) / 40).max(8);
    let (gw, gh) = (w.div_ceil(block), h.div_ceil(block));
    let own_white = block_white(p, block, gw, gh);
    let local_white = neighbourhood_max(&own_white, gw, gh);

    // Block by block along each row, counted in registers: a divide and a
    // counter update in memory per pixel cost this loop twice the time.
    let mut counts = vec![Counts::default(); gw * gh];
    let mut colour = 0usize;
    for y in 0..h {
        let row = (y / block) * gw;
        for (bx, span) in spans(y * w, w, block) {
            let b = row + bx;
            let white = u32::from(local_white[b]);
            let mut k = Counts::default();
            // Red, else ink, else colour, else paper: each pixel in at most
            // one class, counted without branches (in vector instructions;
            // at the edges of text a branch per class was mispredicted).
            for ((&l, &s), &red) in p.luma[span.clone()]
                .iter()
                .zip(&p.sat[span.clone()])
                .zip(&p.red[span])
            {
                let l = u32::from(l);
                let ink = !red & (l * 100 <= white * 62);
                let colour = !red & !ink & (s > 40);
                let paper = !red & !ink & !colour & (l * 100 >= white * 78);
                k.n += 1;
                k.red += u32::from(red);
                k.ink += u32::from(ink);
                k.colour += u32::from(colour);
                k.paper += u32::from(paper);
            }
            let c = &mut counts[b];
            c.n += k.n;
            c.red += k.red;
            c.ink += k.ink;
            c.colour += k.colour;
            c.paper += k.paper;
            colour += k.colour as usize;
        }
    }
    let grid: Vec<bool> = counts
        .iter()
        .zip(&local_white)
        .map(|(c, &white)| {
            let n = c.n.max(1);
            let mid = n - c.paper - c.ink - c.red - c.colour;
            // Two tones; or text softened by blur and noise, whose edges are
            // grey in proportion to the ink.
            let two_tone = c.paper * 100 >= n * 35 && (c.paper + c.ink + c.red) * 100 >= n * 88;
            let soft_text = c.paper * 100 >= n * 55
                && c.ink * 100 >= n * 3
                && mid * 100 <= n * 12 + c.ink * 250;
            white >= 150 && c.colour * 100 <= n * 4 && (two_tone || soft_text)
        })
        .collect();
    let sheet = largest_sheet(&grid, &own_white, gw, gh);
    let (mut all, mut centre, mut centre_n) = (0u32, 0u32, 0u32);
    for (i, &on_sheet) in sheet.iter().enumerate() {
        let (bx, by) = (i % gw, i / gw);
        all += u32::from(on_sheet);
        let middle = |k: usize, n: usize| k * 5 >= n && (k + 1) * 5 <= n * 4;
        if middle(bx, gw) && middle(by, gh) {
            centre_n += 1;
            centre += u32::from(on_sheet);
        }
    }
    let sheet_share = all as f32 / sheet.len().max(1) as f32;
    let sheet_centre = if centre_n == 0 {
        sheet_share
    } else {
        centre as f32 / centre_n as f32
    };
    let lines = text_lines(p, &sheet, gw, block, &local_white);
    let colour = colour as f32 / (w * h).max(1) as f32;
    let aspect = w.max(h) as f32 / w.min(h).max(1) as f32;
    let a4 = (aspect / std::f32::consts::SQRT_2 - 1.0).abs() <= 0.15;

    let mut look = Look {
        sheet: sheet_share,
        sheet_centre,
        lines,
        colour,
        a4,
        ruled_table: false,
        score: 0.0,
        grid,
        grid_width: gw,
        block,
    };
    look.score = score(&look);
    // Only a page can be a form; a scene's edges are not worth the passes.
    look.ruled_table =
        look.is_document() && ruled_lines(p, true) >= 3 && ruled_lines(p, false) >= 3;
    look
}

/// The blocks of one raster row that starts at index `start`: each block's
/// column and its range of indices.
fn spans(
    start: usize,
    width: usize,
    block: usize,
) -> impl Iterator<Item = (usize, std::ops::Range<usize>)> {
    (0..width)
        .step_by(block)
        .enumerate()
        .map(move |(bx, x)| (bx, start + x..start + (x + block).min(width)))
}

/// One sheet across the middle of the frame counts most, then how much of
/// the frame it fills (a phone photo leaves desk around the page, so 60 %
/// is enough), then its text lines (a blank page is still a page). A page's
/// aspect adds a little: a phone's 4:3 is close to A4, so it cannot add
/// more. Colour beyond what a desk shows takes off. A scan scores 0.8–1.0
/// with a phone photo of a page at the low end; a photo whose middle is a
/// projected slide or an exhibition board about 0.3.
fn score(l: &Look) -> f32 {
    let mut raw =
        0.45 * l.sheet_centre + 0.35 * (l.sheet / 0.6).min(1.0) + 0.2 * (l.lines / 8.0).min(1.0);
    if l.a4 {
        raw += 0.05;
    }
    raw -= 0.15 * ((l.colour - 0.3) / 0.3).clamp(0.0, 1.0);
    ((raw - 0.5) / 0.5).clamp(0.0, 1.0)
}

/// The largest evenly lit stretch of paper blocks: neighbours whose own
/// white differs by at most 6 % (a lamp's falloff is gradual; a white board
/// against a grey wall, or a page on a light desk, is a step). One sheet
/// fills a scan; in a photo, walls, boards and slides are separate pieces.
fn largest_sheet(grid: &[bool], white: &[u8], gw: usize, gh: usize) -> Vec<bool> {
    let mut label = vec![u32::MAX; grid.len()];
    let (mut best, mut best_size) = (u32::MAX, 0usize);
    let mut stack = Vec::new();
    for start in 0..grid.len() {
        if !grid[start] || label[start] != u32::MAX {
            continue;
        }
        let id = start as u32;
        label[start] = id;
        stack.push(start);
        let mut size = 0;
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = (i % gw, i / gw);
            let mut visit = |j: usize| {
                let (a, b) = (u32::from(white[i]), u32::from(white[j]));
                if grid[j] && label[j] == u32::MAX && a.abs_diff(b) * 100 <= a.max(b) * 6 {
                    label[j] = id;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < gw {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - gw);
            }
            if y + 1 < gh {
                visit(i + gw);
            }
        }
        if size > best_size {
            (best, best_size) = (id, size);
        }
    }
    label.iter().map(|&l| l == best).collect()
}

/// 90th percentile of luminance in each block.
fn block_white(p: &Planes<'_>, block: usize, gw: usize, gh: usize) -> Vec<u8> {
    let mut hist = vec![[0u32; 64]; gw * gh];
    for y in 0..p.height {
        let row = (y / block) * gw;
        for (bx, span) in spans(y * p.width, p.width, block) {
            let h = &mut hist[row + bx];
            for &l in &p.luma[span] {
                h[usize::from(l >> 2)] += 1;
            }
        }
    }
    hist.iter()
        .map(|h| {
            let n: u32 = h.iter().sum();
            let mut acc = 0;
            for (bin, &c) in h.iter().enumerate().rev() {
                acc += c;
                if acc * 10 >= n {
                    return (bin * 4 + 2) as u8;
                }
            }
            0
        })
        .collect()
}

/// Brightest of each block and its eight neighbours: a block packed with
/// text still has paper around it.
fn neighbourhood_max(v: &[u8], gw: usize, gh: usize) -> Vec<u8> {
    let mut out = vec![0u8; v.len()];
    for by in 0..gh {
        for bx in 0..gw {
            let mut m = 0;
            for ny in by.saturating_sub(1)..=(by + 1).min(gh - 1) {
                for nx in bx.saturating_sub(1)..=(bx + 1).min(gw - 1) {
                    m = m.max(v[ny * gw + nx]);
                }
            }
            out[by * gw + bx] = m;
        }
    }
    out
}

/// Text lines on the sheet: in vertical strips four blocks wide, runs of
/// rows holding ink between blank rows, of a text line's height. Strips are
/// narrow so that a page skewed by a few degrees still shows its lines.
/// Returns the mean count over the busier half of the strips.
fn text_lines(p: &Planes<'_>, sheet: &[bool], gw: usize, block: usize, white: &[u8]) -> f32 {
    let strip = block * 4;
    let max_line = (p.height / 25).max(4);
    let mut per_strip = Vec::new();
    for sx in (0..p.width).step_by(strip) {
        let ex = (sx + strip).min(p.width);
        let inked_min = ((ex - sx) / 40).max(2);
        let (mut lines, mut run) = (0u32, 0usize);
        for y in 0..p.height {
            let row = (y / block) * gw;
            let mut ink = 0usize;
            let mut on_paper = true;
            // A strip starts on a block's edge: its blocks, left to right.
            for (bx, x) in (sx..ex).step_by(block).map(|x| (x / block, x)) {
                let b = row + bx;
                if !sheet[b] {
                    on_paper = false;
                    break;
                }
                let dark = u32::from(white[b]) * 62;
                let span = y * p.width + x..y * p.width + (x + block).min(ex);
                ink += p.luma[span]
                    .iter()
                    .filter(|&&l| u32::from(l) * 100 <= dark)
                    .count();
            }
            if on_paper && ink >= inked_min {
                run += 1;
                continue;
            }
            if (2..=max_line).contains(&run) && on_paper {
                lines += 1;
            }
            run = 0;
        }
        per_strip.push(lines);
    }
    per_strip.sort_unstable_by(|a, b| b.cmp(a));
    let half = per_strip.len().div_ceil(2).max(1);
    per_strip.iter().take(half).sum::<u32>() as f32 / half as f32
}

/// Ruled lines: rows (or columns) where a thin dark line, darker than the
/// pixels three above and three below it, runs across at least 30 % of the
/// width (15 % of the height for columns). Neighbouring rows are one line.
///
/// A pixel's darkness is worked out a whole row at a time (`dark_row`, in
/// vector instructions), a row with too few dark pixels for a line is not
/// walked, and the columns' runs advance together (`Runs`): the same lines
/// as stepping one [`Run`] pixel by pixel, for half the time.
fn ruled_lines(p: &Planes<'_>, horizontal: bool) -> usize {
    let (w, h) = (p.width, p.height);
    let row = |y: usize| &p.luma[y * w..(y + 1) * w];
    let mut dark = vec![false; w];
    let is_line: Vec<bool> = if horizontal {
        let need = (w * 3 / 10).max(8);
        (3..h.saturating_sub(3))
            .map(|y| {
                dark_row(row(y), row(y - 3), row(y + 3), &mut dark);
                // A run of length L holds at least (L + 3) / 4 dark pixels
                // (gaps are at most three long): with fewer, none reaches `need`.
                if dark.iter().filter(|&&d| d).count() * 4 < need {
                    return false;
                }
                let mut run = Run::default();
                for &d in &dark {
                    run.step(d);
                }
                run.best >= need
            })
            .collect()
    } else {
        // Columns are walked row by row, one running state per column, so
        // the image is read in memory order (a column at a time misses the
        // cache on every pixel); each column sees its pixels in the same
        // order either way.
        let need = (h * 15 / 100).max(8);
        let cols = w.saturating_sub(6);
        let mut runs = Runs::new(cols);
        let dark = &mut dark[..cols];
        // A raster six pixels wide or less has no column to test.
        if cols > 0 {
            for y in 0..h {
                let r = row(y);
                dark_row(&r[3..3 + cols], &r[..cols], &r[6..6 + cols], dark);
                runs.step(dark);
            }
        }
        runs.best.iter().map(|&b| usize::from(b) >= need).collect()
    };
    let mut lines = 0;
    let mut previous = false;
    for line in is_line {
        if line && !previous {
            lines += 1;
        }
        previous = line;
    }
    lines
}

/// `out[x]`: pixel `mid[x]` is darker by more than 20 than both `a[x]` and
/// `b[x]`. (`l + 20 < m` is `l < m - 20`, false when `m < 20`: so is
/// `l < m.saturating_sub(20)`, which stays in u8 and vectorises.)
fn dark_row(mid: &[u8], a: &[u8], b: &[u8], out: &mut [bool]) {
    for (((o, &l), &a), &b) in out.iter_mut().zip(mid).zip(a).zip(b) {
        *o = l < a.min(b).saturating_sub(20);
    }
}

/// [`Run`] for many lines at once, one per element, stepped without
/// branches so the compiler steps them in vector instructions: the same
/// states as each line's own `Run`.
///
/// In u16, eight to a vector register: a run saturates at `u16::MAX`, which
/// only a raster taller than that (no page is) could reach.
struct Runs {
    run: Vec<u16>,
    gap: Vec<u16>,
    best: Vec<u16>,
}

impl Runs {
    fn new(n: usize) -> Self {
        Self {
            run: vec![0; n],
            gap: vec![0; n],
            best: vec![0; n],
        }
    }

    fn step(&mut self, dark: &[bool]) {
        let states = self.run.iter_mut().zip(&mut self.gap).zip(&mut self.best);
        for (((run, gap), best), &d) in states.zip(dark) {
            let bridge = !d & (*run > 0) & (*gap < 3);
            let (r, g) = (*run, *gap);
            *run = if d {
                r.saturating_add(g + 1)
            } else if bridge {
                r
            } else {
                0
            };
            *gap = if bridge { g + 1 } else { 0 };
            *best = (*best).max(*run);
        }
    }
}

/// The longest run of dark pixels along a row or column, bridging gaps of
/// up to three pixels.
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    run: usize,
    gap: usize,
    best: usize,
}

impl Run {
    fn step(&mut self, dark: bool) {
        if dark {
            self.run += self.gap + 1;
            self.gap = 0;
            self.best = self.best.max(self.run);
        } else if self.run > 0 && self.gap < 3 {
            self.gap += 1;
        } else {
            self.run = 0;
            self.gap = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The look of a w×h image whose luminance and saturation `px(x, y)` gives.
    fn look_at(w: usize, h: usize, px: impl Fn(usize, usize) -> (u8, u8)) -> Look {
        let (mut luma, mut sat) = (Vec::with_capacity(w * h), Vec::with_capacity(w * h));
        for y in 0..h {
            for x in 0..w {
                let (l, s) = px(x, y);
                luma.push(l);
                sat.push(s);
            }
        }
        look(&Planes {
            width: w,
            height: h,
            luma: &luma,
            sat: &sat,
            red: &vec![false; w * h],
        })
    }

    /// `ruled_lines` as it was written first: one [`Run`] per row or column,
    /// stepped pixel by pixel in signed arithmetic.
    fn ruled_lines_pixel_by_pixel(p: &Planes<'_>, horizontal: bool) -> usize {
        let (w, h) = (p.width, p.height);
        let luma = |x: usize, y: usize| i32::from(p.luma[y * w + x]);
        let (bests, need) = if horizontal {
            let bests = (3..h.saturating_sub(3))
                .map(|y| {
                    let mut run = Run::default();
                    for x in 0..w {
                        run.step(luma(x, y) + 20 < luma(x, y - 3).min(luma(x, y + 3)));
                    }
                    run.best
                })
                .collect::<Vec<_>>();
            (bests, (w * 3 / 10).max(8))
        } else {
            let bests = (3..w.saturating_sub(3))
                .map(|x| {
                    let mut run = Run::default();
                    for y in 0..h {
                        run.step(luma(x, y) + 20 < luma(x - 3, y).min(luma(x + 3, y)));
                    }
                    run.best
                })
                .collect::<Vec<_>>();
            (bests, (h * 15 / 100).max(8))
        };
        let mut lines = 0;
        let mut previous = false;
        for best in bests {
            let line = best >= need;
            lines += usize::from(line && !previous);
            previous = line;
        }
        lines
    }

    #[test]
    fn ruled_lines_match_the_pixel_by_pixel_walk() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(20261202);
        let mut found = 0;
        for case in 0..300 {
            let (w, h) = (rng.random_range(1..90), rng.random_range(1..90));
            // Grids of lines with gaps and noise: runs that bridge gaps of
            // up to three pixels, and some that break on a fourth.
            let (step_x, step_y) = (rng.random_range(2..12), rng.random_range(2..12));
            let (gap_every, noise) = (rng.random_range(3..9), rng.random_range(0..40));
            let luma: Vec<u8> = (0..w * h)
                .map(|i| {
                    let (x, y) = (i % w, i / w);
                    let on = (x % step_x == 0 || y % step_y == 0) && (x + y) % gap_every != 0;
                    let base: i32 = if on { rng.random_range(0..60) } else { 255 };
                    (base + rng.random_range(-noise..=noise)).clamp(0, 255) as u8
                })
                .collect();
            let (sat, red) = (vec![0; w * h], vec![false; w * h]);
            let p = Planes {
                width: w,
                height: h,
                luma: &luma,
                sat: &sat,
                red: &red,
            };
            for horizontal in [true, false] {
                let lines = ruled_lines(&p, horizontal);
                assert_eq!(
                    lines,
                    ruled_lines_pixel_by_pixel(&p, horizontal),
                    "case {case}: {w}×{h}, horizontal {horizontal}"
                );
                found += lines;
            }
        }
        assert!(
            found > 300,
            "the cases hold too few lines to compare: {found}"
        );
    }

    /// Lines of "characters": 12 px of ink every 30 px, broken every 16 px.
    fn text(x: usize, y: usize) -> bool {
        y % 30 < 12 && x % 16 < 11
    }

    fn page(x: usize, y: usize) -> (u8, u8) {
        let inked = (80..620).contains(&x) && (80..900).contains(&y) && text(x, y);
        (if inked { 30 } else { 250 }, 2)
    }

    #[test]
    fn page_of_text_is_a_document() {
        let l = look_at(700, 1000, page);
        assert!(l.is_document() && l.lines >= 8.0 && l.a4, "{l:?}");
    }

    #[test]
    fn blank_page_is_a_document() {
        assert!(look_at(700, 1000, |_, _| (248, 2)).is_document());
    }

    #[test]
    fn page_under_a_lamp_stays_one_sheet() {
        let l = look_at(700, 1000, |x, y| {
            let (l, s) = page(x, y);
            let light = 1.0 - 0.35 * (x + y) as f32 / 1700.0;
            ((f32::from(l) * light) as u8, s)
        });
        assert!(l.sheet > 0.95 && l.is_document(), "{l:?}");
    }

    #[test]
    fn white_board_on_a_grey_wall_above_a_crowd_is_not_a_document() {
        let l = look_at(1024, 768, |x, y| {
            if y > 480 {
                // Clothes and faces.
                let c = (x / 37 + y / 53) % 4;
                return ([90, 140, 60, 200][c], [90, 60, 120, 30][c]);
            }
            if (300..724).contains(&x) && (60..420).contains(&y) {
                return if text(x, y) && (330..700).contains(&x) && (100..400).contains(&y) {
                    (35, 3)
                } else {
                    (250, 3)
                };
            }
            (205, 6)
        });
        assert!(!l.is_document(), "{l:?}");
    }

    #[test]
    fn colourful_scene_is_not_a_document() {
        let l = look_at(960, 720, |x, y| {
            let c = (x / 23 * 7 + y / 31 * 3) % 5;
            ([200, 120, 60, 230, 150][c], [40, 120, 90, 15, 160][c])
        });
        assert_eq!(l.score, 0.0, "{l:?}");
    }

    #[test]
    fn ruled_grid_reads_as_a_table_and_prose_does_not() {
        let grid = look_at(1200, 700, |x, y| {
            let rule = (y % 40 == 0 && y > 0) || (x % 150 == 0 && x > 0);
            let in_cell = (10..32).contains(&(y % 40)) && (10..140).contains(&(x % 150));
            let inked = rule || (in_cell && x % 16 < 11);
            (if inked { 60 } else { 252 }, 1)
        });
        assert!(grid.ruled_table, "{grid:?}");
        assert!(!look_at(700, 1000, page).ruled_table);
    }
}
