//! Decoding page images into a small RGB raster for the detector.
//!
//! The detector needs 800–1200 px on the long side (a 4 cm seal is then
//! 110–160 px across on an A4 page, its ring 3–4 px thick), so JPEG uses DCT
//! scaling (the decoder computes 1/2, 1/4 or 1/8 of the coefficients) to land
//! in that range; everything else is decoded and then box-averaged down.

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

use crate::config::Limits;
use crate::model::{Problem, ProblemCode};

/// Longest side the detector works on.
pub(crate) const WORK_LONG_SIDE: usize = 1200;
/// JPEG DCT scaling stops before the long side drops below this.
const DCT_MIN_LONG_SIDE: usize = 800;

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
    /// Pixels the decoder actually produced (before the final box average).
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

/// Decodes a JPEG/PNG/TIFF/BMP file.
pub(crate) fn decode_image(data: &[u8], limits: &Limits) -> Result<Decoded, Problem> {
    if data.starts_with(&[0xFF, 0xD8]) {
        return decode_jpeg(data, limits);
    }
    let reader = ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(|_| unreadable("图片已损坏或格式不支持"))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Tiff | ImageFormat::Bmp) => {}
        _ => return Err(unreadable("图片已损坏或格式不支持")),
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|_| unreadable("图片已损坏或格式不支持"))?;
    check_pixels(u64::from(w), u64::from(h), limits)?;
    let mut reader = ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .map_err(|_| unreadable("图片已损坏或格式不支持"))?;
    let mut image_limits = image::Limits::default();
    // RGBA16 is the widest buffer a decoder may allocate: 8 bytes per pixel.
    image_limits.max_alloc = Some(limits.max_image_pixels.saturating_mul(8));
    reader.limits(image_limits);
    let img = reader
        .decode()
        .map_err(|_| unreadable("图片已损坏或格式不支持"))?;
    // Transparent areas (a PNG seal on a transparent background) read as paper.
    let rgba = img.to_rgba8();
    let mut rgb = Vec::with_capacity(rgba.as_raw().len() / 4 * 3);
    for px in rgba.as_raw().chunks_exact(4) {
        let a = u32::from(px[3]);
        for &c in &px[..3] {
            rgb.push(((u32::from(c) * a + 255 * (255 - a)) / 255) as u8);
        }
    }
    let full = Raster {
        width: w as usize,
        height: h as usize,
        rgb,
    };
    Ok(Decoded {
        raster: shrink(full),
        source_width: w,
        source_height: h,
        decoded_pixels: u64::from(w) * u64::from(h),
    })
}

/// Decodes a JPEG with DCT scaling so that the long side lands between
/// `DCT_MIN_LONG_SIDE` and about twice that.
pub(crate) fn decode_jpeg(data: &[u8], limits: &Limits) -> Result<Decoded, Problem> {
    let mut dec = jpeg_decoder::Decoder::new(data);
    dec.read_info().map_err(|_| unreadable("JPEG 图片已损坏"))?;
    let info = dec.info().ok_or_else(|| unreadable("JPEG 图片已损坏"))?;
    let (sw, sh) = (u32::from(info.width), u32::from(info.height));
    check_pixels(u64::from(sw), u64::from(sh), limits)?;
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
    dec.scale(rw, rh)
        .map_err(|_| unreadable("JPEG 图片已损坏"))?;
    let pixels = dec
        .decode()
        .map_err(|_| unreadable("JPEG 图片已损坏或不完整"))?;
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

/// Box-averages by the integer factor that brings the long side to at most
/// `WORK_LONG_SIDE`; an integer box keeps thin red strokes (averaged, not
/// skipped as nearest-neighbour sampling would).
pub(crate) fn shrink(src: Raster) -> Raster {
    let long = src.width.max(src.height);
    let f = long.div_ceil(WORK_LONG_SIDE).max(1);
    if f == 1 {
        return src;
    }
    let (w, h) = (src.width / f, src.height / f);
    if w == 0 || h == 0 {
        return src;
    }
    let mut out = vec![0u8; w * h * 3];
    let mut acc = vec![0u32; w * 3];
    let n = (f * f) as u32;
    for oy in 0..h {
        acc.iter_mut().for_each(|a| *a = 0);
        for sy in oy * f..oy * f + f {
            let row = &src.rgb[sy * src.width * 3..(sy * src.width + w * f) * 3];
            for (ox, block) in row.chunks_exact(f * 3).enumerate() {
                for px in block.chunks_exact(3) {
                    acc[ox * 3] += u32::from(px[0]);
                    acc[ox * 3 + 1] += u32::from(px[1]);
                    acc[ox * 3 + 2] += u32::from(px[2]);
                }
            }
        }
        for (o, a) in out[oy * w * 3..(oy + 1) * w * 3].iter_mut().zip(&acc) {
            *o = (a / n) as u8;
        }
    }
    Raster {
        width: w,
        height: h,
        rgb: out,
    }
}
