//! Finding a red seal on one page raster.
//!
//! 0. A raster that does not look like paper (see `look`) is a scene: red
//!    banners, lanterns and round emblems in it are not looked at. On a
//!    page, a ring counts only where it sits on paper.
//! 1. White balance: divide each channel by the paper colour (a high
//!    percentile), so a warm phone photo or yellowed paper reads as neutral.
//! 2. Red mask: red minus the larger of green/blue, both absolute and relative
//!    to red. The relative test keeps faded pink ink and seals in the dark
//!    corner of a phone photo; the hue test (green not far above blue) drops
//!    orange/brown (a wooden desk).
//! 3. A small dilation joins the ring's broken ink, then connected components
//!    (union–find, 8-neighbour).
//! 4. Each component of seal size is fitted with an ellipse: orientation from
//!    second moments, semi-axes from the extents along those axes. A seal is a
//!    ring: its ink lies on the ellipse in (almost) every angular sector, there
//!    is ink inside (star, text), and nothing outside the ellipse in the
//!    corners of its box. A red letterhead title is too wide and a rule or
//!    underline too thin; a square character, a table or handwriting fails
//!    the sector or the corner test; a hand-drawn circle is too small or empty.

use super::look::{self, Look, Planes};
use super::raster::Raster;

const SECTORS: usize = 36;

/// What one raster looks like.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageVerdict {
    /// 0..1, the best seal candidate's score; >= `SEAL_SCORE` means sealed.
    pub score: f32,
    /// Almost no ink at all: a blank page or an empty scan.
    pub blank: bool,
    /// Page or scene; a raster that may be a seal image as a whole is not judged.
    pub look: Option<Look>,
}

pub(crate) const SEAL_SCORE: f32 = 0.5;

/// `whole_image_may_be_seal`: the raster is a small picture (an electronic
/// seal image in a PDF), so the seal may fill it. Otherwise a raster that does
/// not look like paper is a scene, and red rings in it are not looked for.
pub(crate) fn analyse(img: &Raster, whole_image_may_be_seal: bool) -> PageVerdict {
    let (w, h) = (img.width, img.height);
    if w < 16 || h < 16 {
        return PageVerdict {
            score: 0.0,
            blank: true,
            look: None,
        };
    }
    let planes = balance(img);
    let ink = planes.ink;
    let mask = planes.red;
    let blank = ink * 1000 < w * h * 2;
    let page = (!whole_image_may_be_seal).then(|| {
        look::look(&Planes {
            width: w,
            height: h,
            luma: &planes.luma,
            sat: &planes.sat,
            red: &mask,
        })
    });
    if page.as_ref().is_some_and(|l| !l.is_document()) {
        return PageVerdict {
            score: 0.0,
            blank,
            look: page,
        };
    }
    let short = w.min(h) as f32;
    let (min_d, max_d) = if whole_image_may_be_seal {
        (short * 0.3, short * 1.05)
    } else {
        // A 38–45 mm seal on A4 is 18–21 % of the page width; the range is
        // wide for photos where the page fills only part of the frame, and
        // stops above the ~20 mm round emblems printed in letterheads.
        (short * 0.10, short * 0.42)
    };
    let base = (w.max(h) / 400).max(1);
    let mut best = 0.0f32;
    // Fewer red pixels than a ring needs (`score_component`'s minimum): no
    // candidate, so none of the dilations below is worth its passes.
    let Some(red_box) = RedBox::of(&mask, w).filter(|b| b.count >= MIN_RING_PIXELS) else {
        return PageVerdict {
            score: 0.0,
            blank,
            look: page,
        };
    };
    // Wider dilations rejoin a ring that faded ink or black lines printed
    // across it broke apart; the ring test keeps what they wrongly join.
    for radius in [base, base * 3, base * 6] {
        for c in &red_box.components(&mask, w, h, radius) {
            let s = score_component(c, &mask, w, min_d, max_d);
            if s > best && page.as_ref().is_none_or(|l| on_paper(c, l, w, h)) {
                best = s;
            }
        }
        if best >= SEAL_SCORE {
            break;
        }
    }
    PageVerdict {
        score: best,
        blank,
        look: page,
    }
}

/// A component needs this many red pixels to be scored at all.
const MIN_RING_PIXELS: usize = 40;

/// The box around every red pixel of a mask. Dilation and labelling run
/// inside it (grown by the radius) rather than over the whole page: a seal
/// is a small part of a page, and nothing outside the box can join it.
struct RedBox {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
    count: usize,
}

impl RedBox {
    fn of(mask: &[bool], w: usize) -> Option<Self> {
        let mut b: Option<Self> = None;
        for (y, row) in mask.chunks_exact(w).enumerate() {
            let Some(first) = row.iter().position(|&r| r) else {
                continue;
            };
            let last = row.iter().rposition(|&r| r).unwrap_or(first);
            let count = row[first..=last].iter().filter(|&&r| r).count();
            match &mut b {
                None => {
                    b = Some(Self {
                        x0: first,
                        y0: y,
                        x1: last,
                        y1: y,
                        count,
                    })
                }
                Some(b) => {
                    b.x0 = b.x0.min(first);
                    b.x1 = b.x1.max(last);
                    b.y1 = y;
                    b.count += count;
                }
            }
        }
        b
    }

    /// The components of the mask dilated by `radius`, in page coordinates:
    /// the same components, in the same order, as labelling the whole page.
    fn components(&self, mask: &[bool], w: usize, h: usize, radius: usize) -> Vec<Component> {
        let (cx0, cy0) = (
            self.x0.saturating_sub(radius),
            self.y0.saturating_sub(radius),
        );
        let (cx1, cy1) = ((self.x1 + radius).min(w - 1), (self.y1 + radius).min(h - 1));
        let (cw, ch) = (cx1 - cx0 + 1, cy1 - cy0 + 1);
        let mut crop = Vec::with_capacity(cw * ch);
        for y in cy0..=cy1 {
            crop.extend_from_slice(&mask[y * w + cx0..=y * w + cx1]);
        }
        let grown = dilate(&crop, cw, ch, radius);
        let mut comps = components(&crop, &grown, cw, ch);
        for c in &mut comps {
            for p in &mut c.pixels {
                // Page coordinates fit: the page's side is at most u16::MAX.
                *p = (p.0 + cx0 as u16, p.1 + cy0 as u16);
            }
            c.x0 += cx0;
            c.x1 += cx0;
            c.y0 += cy0;
            c.y1 += cy0;
        }
        comps
    }
}

/// A seal is stamped on paper, near the text it certifies: most blocks
/// around the ring (its box grown by half its size each way) are paper.
fn on_paper(c: &Component, look: &Look, w: usize, h: usize) -> bool {
    let (mx, my) = ((c.x1 - c.x0) / 2, (c.y1 - c.y0) / 2);
    let paper = look.paper_under(
        c.x0.saturating_sub(mx),
        c.y0.saturating_sub(my),
        (c.x1 + mx).min(w - 1),
        (c.y1 + my).min(h - 1),
    );
    paper >= 0.5
}

/// A raster after white balance, as the detectors read it.
struct Balanced {
    /// Seal red.
    red: Vec<bool>,
    luma: Vec<u8>,
    /// Max minus min channel.
    sat: Vec<u8>,
    /// Inked pixels (dark or red).
    ink: usize,
}

/// White balance, then the red mask, luminance and saturation per pixel.
fn balance(img: &Raster) -> Balanced {
    let paper = paper_colour(img);
    let gain = paper.map(|p| (255.0 / p.max(40.0)).min(3.0));
    let n = img.width * img.height;
    // Filled run by run below, so not zeroed first.
    let mut out = Balanced {
        red: Vec::with_capacity(n),
        luma: Vec::with_capacity(n),
        sat: Vec::with_capacity(n),
        ink: 0,
    };
    // Each channel value times its gain, looked up: the same products as
    // multiplying per pixel, for a third of this loop's time.
    let scaled: [[f32; 256]; 3] =
        std::array::from_fn(|c| std::array::from_fn(|v| v as f32 * gain[c]));
    // In runs of `RUN` pixels: the lookups first, then the arithmetic over
    // whole arrays, which the compiler turns into vector instructions (the
    // same operations per pixel, so the same values): half this loop's time.
    const RUN: usize = 64;
    let pixels = img.rgb.chunks_exact(3 * RUN);
    let tail = pixels.remainder();
    let runs = pixels.chain((!tail.is_empty()).then_some(tail));
    for run in runs {
        let (mut r, mut g, mut b) = ([0f32; RUN], [0f32; RUN], [0f32; RUN]);
        let n = run.len() / 3;
        for (j, px) in run.chunks_exact(3).enumerate() {
            r[j] = scaled[0][usize::from(px[0])];
            g[j] = scaled[1][usize::from(px[1])];
            b[j] = scaled[2][usize::from(px[2])];
        }
        let (mut red, mut luma, mut sat) = ([false; RUN], [0u8; RUN], [0u8; RUN]);
        let mut ink = 0;
        for j in 0..n {
            let (r, g, b) = (r[j], g[j], b[j]);
            let gb = max(g, b);
            let d = r - gb;
            let is_red = d >= 18.0 && d >= 0.08 * r && r >= 50.0 && (g - b) <= 0.5 * d;
            red[j] = is_red;
            let (hi, lo) = (min(max(r, gb), 255.0), min(min(min(r, g), b), 255.0));
            luma[j] = ((min(r, 255.0) + min(g, 255.0) + min(b, 255.0)) / 3.0) as u8;
            sat[j] = (hi - lo) as u8;
            ink += usize::from(is_red || max(r, gb) < 150.0);
        }
        out.red.extend_from_slice(&red[..n]);
        out.luma.extend_from_slice(&luma[..n]);
        out.sat.extend_from_slice(&sat[..n]);
        out.ink += ink;
    }
    out
}

/// `f32::max` without its NaN case (these values are never NaN), which
/// costs a compare and a blend per call in the loop above.
fn max(a: f32, b: f32) -> f32 {
    if a >= b { a } else { b }
}

fn min(a: f32, b: f32) -> f32 {
    if a <= b { a } else { b }
}

/// 90th percentile of each channel: the paper, whatever the ink.
fn paper_colour(img: &Raster) -> [f32; 3] {
    // Two sets of histograms, for alternate pixels: neighbouring pixels of
    // paper share a value, and counting both in one bin waits on the store.
    let mut two = [[[0u32; 256]; 3]; 2];
    let pairs = img.rgb.chunks_exact(6);
    for px in pairs.remainder().chunks_exact(3) {
        for c in 0..3 {
            two[0][c][usize::from(px[c])] += 1;
        }
    }
    for px in pairs {
        for c in 0..3 {
            two[0][c][usize::from(px[c])] += 1;
            two[1][c][usize::from(px[3 + c])] += 1;
        }
    }
    let hist: [[u32; 256]; 3] =
        std::array::from_fn(|c| std::array::from_fn(|v| two[0][c][v] + two[1][c][v]));
    let n = (img.rgb.len() / 3) as u32;
    let target = n - n / 10;
    hist.map(|h| {
        let mut acc = 0u32;
        for (v, &count) in h.iter().enumerate() {
            acc += count;
            if acc >= target {
                return v as f32;
            }
        }
        255.0
    })
}

/// Square dilation, separable: rows then columns, with running counts.
fn dilate(mask: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let mut tmp = vec![false; w * h];
    for y in 0..h {
        let row = &mask[y * w..(y + 1) * w];
        let out = &mut tmp[y * w..(y + 1) * w];
        let mut count = row[..r.min(w)].iter().filter(|&&b| b).count();
        for x in 0..w {
            if x + r < w && row[x + r] {
                count += 1;
            }
            if x > r && row[x - r - 1] {
                count -= 1;
            }
            out[x] = count > 0;
        }
    }
    // Columns with a running count per column, walked row by row: the
    // same result as one column at a time, without a cache miss per pixel.
    let mut out = vec![false; w * h];
    let mut count = vec![0u32; w];
    for y in 0..r.min(h) {
        for (c, &b) in count.iter_mut().zip(&tmp[y * w..(y + 1) * w]) {
            *c += u32::from(b);
        }
    }
    for y in 0..h {
        if y + r < h {
            let add = &tmp[(y + r) * w..(y + r + 1) * w];
            for (c, &b) in count.iter_mut().zip(add) {
                *c += u32::from(b);
            }
        }
        if y > r {
            let sub = &tmp[(y - r - 1) * w..(y - r) * w];
            for (c, &b) in count.iter_mut().zip(sub) {
                *c -= u32::from(b);
            }
        }
        for (o, &c) in out[y * w..(y + 1) * w].iter_mut().zip(&count) {
            *o = c > 0;
        }
    }
    out
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let p = parent[parent[i as usize] as usize];
        parent[i as usize] = p;
        i = p;
    }
    i
}

/// One connected red region: its raw (undilated) red pixels.
#[derive(Debug, Default, Clone)]
struct Component {
    pixels: Vec<(u16, u16)>,
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

/// Components of the dilated mask, each holding the raw red pixels inside it.
fn components(raw: &[bool], grown: &[bool], w: usize, h: usize) -> Vec<Component> {
    let mut label = vec![0u32; w * h];
    let mut parent: Vec<u32> = vec![0];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !grown[i] {
                continue;
            }
            let mut neighbours = [0u32; 4];
            let mut k = 0;
            if x > 0 && label[i - 1] != 0 {
                neighbours[k] = label[i - 1];
                k += 1;
            }
            if y > 0 {
                let up = i - w;
                if label[up] != 0 {
                    neighbours[k] = label[up];
                    k += 1;
                }
                if x > 0 && label[up - 1] != 0 {
                    neighbours[k] = label[up - 1];
                    k += 1;
                }
                if x + 1 < w && label[up + 1] != 0 {
                    neighbours[k] = label[up + 1];
                    k += 1;
                }
            }
            if k == 0 {
                let l = parent.len() as u32;
                parent.push(l);
                label[i] = l;
            } else {
                let mut root = find(&mut parent, neighbours[0]);
                for &n in &neighbours[1..k] {
                    let other = find(&mut parent, n);
                    if other != root {
                        let (lo, hi) = (root.min(other), root.max(other));
                        parent[hi as usize] = lo;
                        root = lo;
                    }
                }
                label[i] = root;
            }
        }
    }
    let mut index = vec![u32::MAX; parent.len()];
    let mut comps: Vec<Component> = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !raw[i] || label[i] == 0 {
                continue;
            }
            let root = find(&mut parent, label[i]) as usize;
            if index[root] == u32::MAX {
                index[root] = comps.len() as u32;
                comps.push(Component {
                    x0: x,
                    y0: y,
                    x1: x,
                    y1: y,
                    ..Component::default()
                });
            }
            let c = &mut comps[index[root] as usize];
            c.pixels.push((x as u16, y as u16));
            c.x0 = c.x0.min(x);
            c.x1 = c.x1.max(x);
            c.y1 = c.y1.max(y);
        }
    }
    comps
}

/// 0..1: how much this component looks like a seal ring.
fn score_component(c: &Component, mask: &[bool], w: usize, min_d: f32, max_d: f32) -> f32 {
    let (bw, bh) = ((c.x1 - c.x0 + 1) as f32, (c.y1 - c.y0 + 1) as f32);
    if bw.max(bh) < min_d || bw.max(bh) > max_d * 1.2 || c.pixels.len() < MIN_RING_PIXELS {
        return 0.0;
    }
    let n = c.pixels.len() as f32;
    let (mut sx, mut sy) = (0.0f32, 0.0f32);
    for &(x, y) in &c.pixels {
        sx += f32::from(x);
        sy += f32::from(y);
    }
    let (mx, my) = (sx / n, sy / n);
    let (mut sxx, mut syy, mut sxy) = (0.0f32, 0.0f32, 0.0f32);
    for &(x, y) in &c.pixels {
        let (dx, dy) = (f32::from(x) - mx, f32::from(y) - my);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    let theta = 0.5 * (2.0 * sxy).atan2(sxx - syy);
    let (cos, sin) = (theta.cos(), theta.sin());
    let (mut u0, mut u1, mut v0, mut v1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for &(x, y) in &c.pixels {
        let (dx, dy) = (f32::from(x) - mx, f32::from(y) - my);
        let (u, v) = (dx * cos + dy * sin, -dx * sin + dy * cos);
        u0 = u0.min(u);
        u1 = u1.max(u);
        v0 = v0.min(v);
        v1 = v1.max(v);
    }
    let (a, b) = ((u1 - u0) / 2.0 + 0.5, (v1 - v0) / 2.0 + 0.5);
    let (uc, vc) = ((u0 + u1) / 2.0, (v0 + v1) / 2.0);
    if a.min(b) < 8.0 {
        return 0.0;
    }
    let aspect = a.max(b) / a.min(b);
    let diameter = 2.0 * a.max(b);
    if aspect > 1.75 || diameter < min_d || diameter > max_d {
        return 0.0;
    }
    let mut sectors = [0u32; SECTORS];
    let (mut band, mut outside) = (0u32, 0u32);
    let rho_at = |x: usize, y: usize| {
        let (dx, dy) = (x as f32 - mx, y as f32 - my);
        let (u, v) = (dx * cos + dy * sin - uc, -dx * sin + dy * cos - vc);
        let (nu, nv) = (u / a, v / b);
        ((nu * nu + nv * nv).sqrt(), nu, nv)
    };
    // The star and the text inside the ring are often separate components:
    // count every red pixel inside the ellipse.
    let mut inside = 0u32;
    for y in c.y0..=c.y1 {
        for x in c.x0..=c.x1 {
            if mask[y * w + x] && rho_at(x, y).0 < 0.76 {
                inside += 1;
            }
        }
    }
    for &(x, y) in &c.pixels {
        let (rho, nu, nv) = rho_at(usize::from(x), usize::from(y));
        if (0.82..=1.06).contains(&rho) {
            band += 1;
            let phi = nv.atan2(nu) + std::f32::consts::PI;
            let s = ((phi / std::f32::consts::TAU * SECTORS as f32) as usize).min(SECTORS - 1);
            sectors[s] += 1;
        } else if rho > 1.1 {
            outside += 1;
        }
    }
    let area = std::f32::consts::PI * a * b;
    // A solid 1 mm ring fills about a third of the band; a sector counts when
    // it holds a fraction of that (patchy ink, black text printed over it).
    let per_sector = area * (1.06f32.powi(2) - 0.82f32.powi(2)) / SECTORS as f32;
    let needed = (per_sector * 0.05).max(2.0) as u32;
    let covered = sectors.iter().filter(|&&s| s >= needed).count();
    let coverage = covered as f32 / SECTORS as f32;
    let gap = longest_gap(&sectors, needed);
    let interior = inside as f32 / (area * 0.76 * 0.76);
    let outer = outside as f32 / band.max(1) as f32;

    let s_cov = ((coverage - 0.55) / 0.35).clamp(0.0, 1.0);
    let s_gap = (1.0 - (gap.saturating_sub(3) as f32) / 5.0).clamp(0.0, 1.0);
    let s_int = (interior / 0.03).clamp(0.0, 1.0);
    let s_out = (1.0 - outer / 0.2).clamp(0.0, 1.0);
    let s_aspect = (1.0 - (aspect - 1.5).max(0.0) / 0.5).clamp(0.0, 1.0);
    s_cov * s_gap * s_int.sqrt() * s_out * s_aspect
}

/// Longest circular run of sectors with too little ink.
fn longest_gap(sectors: &[u32; SECTORS], needed: u32) -> usize {
    let mut best = 0;
    let mut run = 0;
    for i in 0..SECTORS * 2 {
        if sectors[i % SECTORS] < needed {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best.min(SECTORS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white 700×1000 page with red ink wherever `ink(x, y)` says.
    fn page(ink: impl Fn(f32, f32) -> bool) -> Raster {
        let (width, height) = (700, 1000);
        let mut rgb = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                let px = if ink(x as f32, y as f32) {
                    [200, 40, 50]
                } else {
                    [250, 250, 248]
                };
                rgb.extend_from_slice(&px);
            }
        }
        Raster { width, height, rgb }
    }

    fn ring(x: f32, y: f32, r: f32) -> bool {
        let d = ((x - 450.0).powi(2) + (y - 800.0).powi(2)).sqrt();
        (r - 4.0..=r).contains(&d)
    }

    /// A blob in the middle, standing in for the star.
    fn centre(x: f32, y: f32) -> bool {
        (x - 450.0).abs() < 15.0 && (y - 800.0).abs() < 15.0
    }

    #[test]
    fn ring_with_a_star_is_a_seal() {
        let v = analyse(&page(|x, y| ring(x, y, 70.0) || centre(x, y)), false);
        assert!(v.score >= SEAL_SCORE, "{v:?}");
    }

    #[test]
    fn empty_ring_is_not_a_seal() {
        let v = analyse(&page(|x, y| ring(x, y, 70.0)), false);
        assert!(v.score < SEAL_SCORE, "{v:?}");
    }

    #[test]
    fn square_frame_is_not_a_seal() {
        let frame = |x: f32, y: f32| {
            let (dx, dy) = ((x - 450.0).abs(), (y - 800.0).abs());
            dx.max(dy) <= 70.0 && dx.max(dy) >= 66.0
        };
        let v = analyse(&page(|x, y| frame(x, y) || centre(x, y)), false);
        assert!(v.score < SEAL_SCORE, "{v:?}");
    }

    #[test]
    fn horizontal_rule_is_not_a_seal() {
        let v = analyse(&page(|_, y| (200.0..204.0).contains(&y)), false);
        assert_eq!(v.score, 0.0);
    }

    #[test]
    fn white_page_is_blank() {
        assert!(analyse(&page(|_, _| false), false).blank);
    }
}
