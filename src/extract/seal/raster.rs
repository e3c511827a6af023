//! Decoding page images into a small RGB raster for the detector.
//!
//! The detector needs 800–1200 px on the long side (a 4 cm seal is then
//! 110–160 px across on an A4 page, its ring 3–4 px thick), so JPEG uses DCT
//! scaling (the decoder computes 1/2, 1/4 or 1/8 of the coefficients) to land
//! in that range; PNG (and raw PDF samples, in `pdf`) are box-averaged down
//! row by row as they decode, so only the result is held; TIFF and BMP
//! decoders hand out whole images, so those are refused above
//! `MAX_FULL_DECODE_BYTES` before decoding.

use std::io::Cursor;

use image::{DynamicImage, GenericImageView, ImageDecoder, ImageFormat, ImageReader};

use crate::config::Limits;
use crate::model::{Problem, ProblemCode};

/// Longest side the detector works on. 900 rather than 1200: a 100-dpi A4
/// scan is then read at half size, a quarter of the pixels, and on the
/// stress set (`bench/seal_stress.py`, 160 pages) as many seals are found
/// (77 of 80 against 76) with no false seal either way.
pub(crate) const WORK_LONG_SIDE: usize = 900;
/// JPEG DCT scaling stops before the long side drops below this.
const DCT_MIN_LONG_SIDE: usize = 600;

/// Packed 8-bit RGB.
#[derive(Debug, Clone)]
pub(crate) struct Raster {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

/// A decoded image plus what the file said about its full size.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub raster: Raster,
    pub source_width: u32,
    pub source_height: u32,
    /// Pixels held at once: the DCT-scaled JPEG, the whole TIFF or BMP,
    /// only the reduced raster for what is averaged down as it decodes.
    pub decoded_pixels: u64,
}

pub(crate) fn unreadable(detail: &str) -> Problem {
    Problem::new(
        ProblemCode::ScanUnreadable,
        format!("扫描件无法读取：{detail}，请重新扫描为 PDF 或 JPG 后发送"),
    )
}

pub(crate) fn too_large(width: u64, height: u64) -> Problem {
    Problem::new(
        ProblemCode::ScanTooLarge,
        format!("扫描件图片尺寸过大（{width}×{height} 像素），请以 150–300 dpi 重新扫描后发送"),
    )
}

pub(crate) fn check_pixels(width: u64, height: u64, limits: &Limits) -> Result<(), Problem> {
    if width == 0 || height == 0 {
        return Err(unreadable("图片尺寸为零"));
    }
    if width.saturating_mul(height) > limits.max_image_pixels {
        return Err(too_large(width, height));
    }
    Ok(())
}

/// Most bytes a decoder may hold for an image it cannot reduce while
/// decoding: a whole TIFF or BMP, a progressive JPEG's coefficients. An A4
/// page at 600 dpi in 8-bit RGB is 105 MB.
pub(crate) const MAX_FULL_DECODE_BYTES: u64 = 384 << 20;

/// Decodes a JPEG/PNG/TIFF/BMP file.
pub(crate) fn decode_image(data: &[u8], limits: &Limits) -> Result<Decoded, Problem> {
    if data.starts_with(&[0xFF, 0xD8]) {
        return decode_jpeg(data, limits);
    }
    if data.starts_with(b"\x89PNG") {
        return decode_png(data, limits);
    }
    let bad = |_| unreadable("图片已损坏或格式不支持");
    let reader = ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(bad)?;
    if !matches!(reader.format(), Some(ImageFormat::Tiff | ImageFormat::Bmp)) {
        return Err(unreadable("图片已损坏或格式不支持"));
    }
    let decoder = reader
        .into_decoder()
        .map_err(|_| unreadable("图片已损坏或格式不支持"))?;
    let (w, h) = decoder.dimensions();
    check_pixels(u64::from(w), u64::from(h), limits)?;
    // These decoders hand out the whole image: refuse what would not fit
    // before they allocate it.
    if decoder.total_bytes() > MAX_FULL_DECODE_BYTES {
        return Err(too_large(u64::from(w), u64::from(h)));
    }
    let img =
        DynamicImage::from_decoder(decoder).map_err(|_| unreadable("图片已损坏或格式不支持"))?;
    let mut out = Shrink::new(w as usize, h as usize);
    match &img {
        DynamicImage::ImageRgb8(rgb) => {
            for (y, row) in rgb.as_raw().chunks_exact(w as usize * 3).enumerate() {
                out.row(y, row);
            }
        }
        _ => {
            for (x, y, px) in img.pixels() {
                out.put(x as usize, y as usize, over_white(px.0));
            }
        }
    }
    Ok(Decoded {
        source_width: w,
        source_height: h,
        decoded_pixels: u64::from(w) * u64::from(h),
        raster: out.finish(),
    })
}

/// Transparent areas (a PNG seal on a transparent background) read as paper.
fn over_white([r, g, b, a]: [u8; 4]) -> [u8; 3] {
    let a = u32::from(a);
    [r, g, b].map(|c| ((u32::from(c) * a + 255 * (255 - a)) / 255) as u8)
}

/// Decodes a PNG row by row into the reduced raster: only a row and the
/// result are held, whatever the image's size or depth.
fn decode_png(data: &[u8], limits: &Limits) -> Result<Decoded, Problem> {
    let bad = |_| unreadable("PNG 图片已损坏");
    let mut decoder = png::Decoder::new(Cursor::new(data));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(bad)?;
    let info = reader.info();
    let (w, h) = (info.width, info.height);
    let interlaced = info.interlaced;
    check_pixels(u64::from(w), u64::from(h), limits)?;
    let channels = match reader.output_color_type() {
        (png::ColorType::Grayscale, png::BitDepth::Eight) => 1,
        (png::ColorType::GrayscaleAlpha, png::BitDepth::Eight) => 2,
        (png::ColorType::Rgb, png::BitDepth::Eight) => 3,
        (png::ColorType::Rgba, png::BitDepth::Eight) => 4,
        _ => return Err(unreadable("PNG 图片的颜色格式不支持")),
    };
    let (w, h) = (w as usize, h as usize);
    let mut out = Shrink::new(w, h);
    let mut rows = Adam7Rows::new(w, h, interlaced);
    while let Some(row) = reader.next_row().map_err(bad)? {
        let Some((y, x0, dx)) = rows.next() else {
            break;
        };
        for (i, px) in row.data().chunks_exact(channels).enumerate() {
            let rgba = match *px {
                [l] => [l, l, l, 255],
                [l, a] => [l, l, l, a],
                [r, g, b] => [r, g, b, 255],
                [r, g, b, a] => [r, g, b, a],
                _ => continue,
            };
            out.put(x0 + i * dx, y, over_white(rgba));
        }
    }
    Ok(Decoded {
        source_width: w as u32,
        source_height: h as u32,
        decoded_pixels: out.pixels(),
        raster: out.finish(),
    })
}

/// Where each row a PNG decoder hands out lies: (y, first x, x step).
/// Interlaced images come in seven Adam7 passes of sparser rows; a pass
/// with no pixels is skipped, as the decoder skips it.
struct Adam7Rows {
    width: usize,
    height: usize,
    interlaced: bool,
    pass: usize,
    line: usize,
}

impl Adam7Rows {
    /// (x0, y0, dx, dy) of each pass.
    const PASSES: [(usize, usize, usize, usize); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];

    fn new(width: usize, height: usize, interlaced: bool) -> Self {
        Self {
            width,
            height,
            interlaced,
            pass: 0,
            line: 0,
        }
    }
}

impl Iterator for Adam7Rows {
    type Item = (usize, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        if !self.interlaced {
            let y = self.line;
            self.line += 1;
            return (y < self.height).then_some((y, 0, 1));
        }
        while let Some(&(x0, y0, dx, dy)) = Self::PASSES.get(self.pass) {
            let samples = self.width.saturating_sub(x0).div_ceil(dx);
            let lines = self.height.saturating_sub(y0).div_ceil(dy);
            if self.line < lines && samples > 0 {
                let y = y0 + self.line * dy;
                self.line += 1;
                return Some((y, x0, dx));
            }
            self.pass += 1;
            self.line = 0;
        }
        None
    }
}

/// Box-averages an image into the raster the detector works on as its
/// pixels arrive, in any order: only the result is held. The factor is the
/// integer that brings the long side to at most `WORK_LONG_SIDE`; an integer
/// box keeps thin red strokes (averaged, not skipped as nearest-neighbour
/// sampling would), and pixels past the last whole box are dropped.
pub(crate) struct Shrink {
    factor: usize,
    width: usize,
    height: usize,
    sums: Vec<u32>,
}

impl Shrink {
    pub(crate) fn new(width: usize, height: usize) -> Self {
        let factor = width.max(height).div_ceil(WORK_LONG_SIDE).max(1);
        let (width, height) = ((width / factor).max(1), (height / factor).max(1));
        Self {
            factor,
            width,
            height,
            sums: vec![0; width * height * 3],
        }
    }

    #[inline]
    pub(crate) fn put(&mut self, x: usize, y: usize, px: [u8; 3]) {
        let (ox, oy) = (x / self.factor, y / self.factor);
        if ox < self.width && oy < self.height {
            let i = (oy * self.width + ox) * 3;
            for (s, c) in self.sums[i..i + 3].iter_mut().zip(px) {
                *s += u32::from(c);
            }
        }
    }

    /// Row `y` of packed RGB, from x = 0: the same sums as [`Self::put`] per
    /// pixel, but each box's share of the row is added up in registers.
    /// Adding into `sums` pixel by pixel waited on the previous pixel's
    /// store: 4.6 % of all CPU of a 1000-mail run.
    pub(crate) fn row(&mut self, y: usize, rgb: &[u8]) {
        let oy = y / self.factor;
        if oy >= self.height {
            return;
        }
        let line = oy * self.width * 3;
        let sums = &mut self.sums[line..line + self.width * 3];
        let mut whole = 0;
        if self.factor == 2 {
            // The usual factor (a 200-dpi scan, a JPEG at half scale), with
            // the pair's sums spelt out: the general loop below cannot be
            // unrolled for a box width it does not know. This function fell
            // from 3.8 % to 2.6 % of all CPU of a 1000-mail run.
            for (sum, pair) in sums.chunks_exact_mut(3).zip(rgb.chunks_exact(6)) {
                sum[0] += u32::from(pair[0]) + u32::from(pair[3]);
                sum[1] += u32::from(pair[1]) + u32::from(pair[4]);
                sum[2] += u32::from(pair[2]) + u32::from(pair[5]);
                whole += 1;
            }
        } else {
            for (sum, run) in sums
                .chunks_exact_mut(3)
                .zip(rgb.chunks_exact(self.factor * 3))
            {
                let mut acc = [0u32; 3];
                for px in run.chunks_exact(3) {
                    acc[0] += u32::from(px[0]);
                    acc[1] += u32::from(px[1]);
                    acc[2] += u32::from(px[2]);
                }
                for (s, a) in sum.iter_mut().zip(acc) {
                    *s += a;
                }
                whole += 1;
            }
        }
        // A row shorter than the boxes (an image narrower than one box) ends
        // in a box it only partly fills.
        for (x, px) in rgb.chunks_exact(3).enumerate().skip(whole * self.factor) {
            self.put(x, y, [px[0], px[1], px[2]]);
        }
    }

    /// Pixels of the result.
    pub(crate) fn pixels(&self) -> u64 {
        (self.width * self.height) as u64
    }

    pub(crate) fn finish(self) -> Raster {
        let n = (self.factor * self.factor) as u64;
        if n.is_power_of_two() {
            // Factors 1, 2, 4…: a shift, which the compiler vectorises
            // (2.3 % → 0.9 % of all CPU of a 1000-mail run).
            let k = n.trailing_zeros();
            return Raster {
                width: self.width,
                height: self.height,
                rgb: self.sums.iter().map(|&s| (s >> k) as u8).collect(),
            };
        }
        // `s / n` by a multiply with 2^32 / n, which is at most one short,
        // and a correction: the same quotients without a divide per value
        // (2.9 % of all CPU of a 1000-mail run).
        let m = (1u64 << 32) / n;
        let quotient = |s: u32| {
            let s = u64::from(s);
            let q = (s * m) >> 32;
            (if s - q * n >= n { q + 1 } else { q }) as u8
        };
        Raster {
            width: self.width,
            height: self.height,
            rgb: self.sums.iter().map(|&s| quotient(s)).collect(),
        }
    }
}

/// Decodes a JPEG with DCT scaling so that the long side lands between
/// `DCT_MIN_LONG_SIDE` and about twice that.
pub(crate) fn decode_jpeg(data: &[u8], limits: &Limits) -> Result<Decoded, Problem> {
    let mut dec = jpeg_decoder::Decoder::new(data);
    dec.read_info().map_err(|_| unreadable("JPEG 图片已损坏"))?;
    let info = dec.info().ok_or_else(|| unreadable("JPEG 图片已损坏"))?;
    let (sw, sh) = (u32::from(info.width), u32::from(info.height));
    check_pixels(u64::from(sw), u64::from(sh), limits)?;
    // A progressive JPEG keeps every coefficient of the full image (2 bytes
    // each) whatever the scale it is decoded at.
    let components: u64 = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 | jpeg_decoder::PixelFormat::L16 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        jpeg_decoder::PixelFormat::CMYK32 => 4,
    };
    let coefficients = u64::from(sw) * u64::from(sh) * components * 2;
    if info.coding_process == jpeg_decoder::CodingProcess::DctProgressive
        && coefficients > MAX_FULL_DECODE_BYTES
    {
        return Err(too_large(u64::from(sw), u64::from(sh)));
    }
    let long = sw.max(sh) as usize;
    let (rw, rh) = if long > WORK_LONG_SIDE {
        // `scale` picks the smallest factor still >= the request on one axis.
        let f = DCT_MIN_LONG_SIDE as f64 / long as f64;
        (
            ((f64::from(sw) * f).ceil() as u16).max(1),
            ((f64::from(sh) * f).ceil() as u16).max(1),
        )
    } else {
        (info.width, info.height)
    };
    let (ow, oh) = dec
        .scale(rw, rh)
        .map_err(|_| unreadable("JPEG 图片已损坏"))?;
    let full_size = (ow, oh) == (info.width, info.height);
    let pixels = match full_size.then(|| decode_full_size(data, info)).flatten() {
        Some(pixels) => pixels,
        None => dec
            .decode()
            .map_err(|_| unreadable("JPEG 图片已损坏或不完整"))?,
    };
    let info = dec.info().ok_or_else(|| unreadable("JPEG 图片已损坏"))?;
    let (w, h) = (usize::from(info.width), usize::from(info.height));
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l]).collect(),
        jpeg_decoder::PixelFormat::L16 => pixels
            .chunks_exact(2)
            .flat_map(|c| [c[0], c[0], c[0]])
            .collect(),
        // Adobe CMYK JPEGs (the usual kind) store the inks inverted.
        jpeg_decoder::PixelFormat::CMYK32 => pixels
            .chunks_exact(4)
            .flat_map(|c| {
                let k = u16::from(c[3]);
                [0, 1, 2].map(|i| (u16::from(c[i]) * k / 255) as u8)
            })
            .collect(),
    };
    if rgb.len() < w * h * 3 {
        return Err(unreadable("JPEG 图片不完整"));
    }
    let full = Raster {
        width: w,
        height: h,
        rgb,
    };
    Ok(Decoded {
        raster: shrink(full),
        source_width: sw,
        source_height: sh,
        decoded_pixels: (w * h) as u64,
    })
}

/// Decodes a JPEG at full size with zune-jpeg, in the layout jpeg-decoder
/// gives for `info` (RGB24 or L8), or `None` to leave it to jpeg-decoder.
///
/// Most scans (100 dpi A4, 827×1169) are read at full size, since DCT
/// scaling to half loses faded ink. There jpeg-decoder takes 2–4× the time
/// of zune-jpeg, which has no DCT scaling, and starts a thread per colour
/// component. Strict mode makes zune-jpeg refuse truncated data instead of
/// padding it; anything it refuses or reads differently from the header
/// jpeg-decoder read goes to jpeg-decoder, whose verdict then stands, so
/// which files are readable does not change.
fn decode_full_size(data: &[u8], info: jpeg_decoder::ImageInfo) -> Option<Vec<u8>> {
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;

    let (w, h) = (usize::from(info.width), usize::from(info.height));
    let (space, components) = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => (ColorSpace::RGB, 3),
        jpeg_decoder::PixelFormat::L8 => (ColorSpace::Luma, 1),
        _ => return None,
    };
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(w)
        .set_max_height(h)
        .jpeg_set_out_colorspace(space);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(Cursor::new(data), options);
    let pixels = dec.decode().ok()?;
    let got = dec.info()?;
    (usize::from(got.width) == w
        && usize::from(got.height) == h
        && dec.output_colorspace() == Some(space)
        && pixels.len() == w * h * components)
        .then_some(pixels)
}

/// Box-averages a decoded raster down as [`Shrink`] does; one already
/// small enough is kept as it is.
pub(crate) fn shrink(src: Raster) -> Raster {
    let long = src.width.max(src.height);
    if long <= WORK_LONG_SIDE || src.width.min(src.height) < long.div_ceil(WORK_LONG_SIDE) {
        return src;
    }
    let mut out = Shrink::new(src.width, src.height);
    for (y, row) in src.rgb.chunks_exact(src.width * 3).enumerate() {
        out.row(y, row);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_pixel(w: usize, h: usize, rgb: &[u8]) -> Raster {
        let mut out = Shrink::new(w, h);
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            out.put(i % w, i / w, [px[0], px[1], px[2]]);
        }
        out.finish()
    }

    #[test]
    fn shrinking_by_rows_sums_what_shrinking_by_pixels_does() {
        // Wide enough to be shrunk (by 2, the unrolled case, with a width even
        // and odd; by 3 and 4); and narrower than one box, which is kept
        // as a one-pixel column.
        for (w, h) in [
            (1700, 30),
            (1799, 9),
            (1900, 40),
            (2701, 5),
            (3, 2000),
            (1, 1801),
        ] {
            let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 7919 % 251) as u8).collect();
            let mut rows = Shrink::new(w, h);
            for (y, row) in rgb.chunks_exact(w * 3).enumerate() {
                rows.row(y, row);
            }
            let (a, b) = (rows.finish(), by_pixel(w, h, &rgb));
            assert_eq!((a.width, a.height), (b.width, b.height), "{w}×{h}");
            assert_eq!(a.rgb, b.rgb, "{w}×{h}");
        }
    }

    #[test]
    fn box_averages_are_floored_as_division_would() {
        for factor in 1..=40usize {
            let n = (factor * factor) as u32;
            let sums: Vec<u32> = (0..=255 * n).chain([u32::MAX - 1, u32::MAX]).collect();
            let shrink = Shrink {
                factor,
                width: sums.len(),
                height: 1,
                sums: sums.clone(),
            };
            for (s, q) in sums.iter().zip(shrink.finish().rgb) {
                assert_eq!(q, (s / n) as u8, "{s} / {n}");
            }
        }
    }
}
