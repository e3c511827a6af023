//! Page images of a PDF, decoded into rasters.
//!
//! Scanners write one image per page: DCTDecode (JPEG) or FlateDecode raw
//! samples. lopdf's `get_page_images` gives up on the first odd XObject and
//! does not look inside Form XObjects, so the resources are walked here.

use std::collections::HashSet;
use std::io::{Cursor, Read};

use flate2::read::{DeflateDecoder, ZlibDecoder};
use lopdf::filters::png::{FilterType, decode_row};
use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

use super::raster::{self, Decoded, MAX_FULL_DECODE_BYTES, Shrink, check_pixels, unreadable};
use crate::config::Limits;
use crate::model::Problem;

/// Form XObjects nest; real files go one or two deep.
const MAX_FORM_DEPTH: usize = 4;
/// More images than this on one page is not a scan.
const MAX_IMAGES_PER_PAGE: usize = 64;

pub(crate) enum PageImage {
    Decoded(Decoded),
    /// JPX, JBIG2, CCITT or an exotic colour space: no decoder here.
    Unsupported,
    /// A stencil mask or tiny picture: not page content.
    Ignored,
}

/// Image XObjects a page draws, directly or through Form XObjects.
pub(crate) fn page_images(doc: &Document, page_id: ObjectId) -> Vec<&Stream> {
    let mut out = Vec::new();
    let Ok((direct, ids)) = doc.get_page_resources(page_id) else {
        return out;
    };
    let mut seen = HashSet::new();
    let referenced = ids.iter().filter_map(|id| doc.get_dictionary(*id).ok());
    for res in direct.into_iter().chain(referenced) {
        collect(doc, res, 0, &mut seen, &mut out);
    }
    out
}

fn collect<'a>(
    doc: &'a Document,
    resources: &'a Dictionary,
    depth: usize,
    seen: &mut HashSet<ObjectId>,
    out: &mut Vec<&'a Stream>,
) {
    let Some(xobjects) = resources
        .get(b"XObject")
        .ok()
        .and_then(|o| deref(doc, o))
        .and_then(|o| o.as_dict().ok())
    else {
        return;
    };
    for (_, value) in xobjects.iter() {
        if out.len() >= MAX_IMAGES_PER_PAGE {
            return;
        }
        let Ok(id) = value.as_reference() else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        let Ok(stream) = doc.get_object(id).and_then(Object::as_stream) else {
            continue;
        };
        match stream.dict.get(b"Subtype").and_then(Object::as_name) {
            Ok(b"Image") => out.push(stream),
            Ok(b"Form") if depth < MAX_FORM_DEPTH => {
                if let Some(res) = stream
                    .dict
                    .get(b"Resources")
                    .ok()
                    .and_then(|o| deref(doc, o))
                    .and_then(|o| o.as_dict().ok())
                {
                    collect(doc, res, depth + 1, seen, out);
                }
            }
            _ => {}
        }
    }
}

fn deref<'a>(doc: &'a Document, obj: &'a Object) -> Option<&'a Object> {
    doc.dereference(obj).ok().map(|(_, o)| o)
}

fn int(doc: &Document, dict: &Dictionary, key: &[u8]) -> Option<i64> {
    dict.get(key)
        .ok()
        .and_then(|o| deref(doc, o))
        .and_then(|o| o.as_i64().ok())
}

/// Colour space of raw samples.
enum Colour {
    Gray,
    Rgb,
    Cmyk,
    /// Palette entries in the base space, `hival + 1` of them.
    Indexed(Box<Colour>, Vec<u8>),
}

impl Colour {
    fn components(&self) -> usize {
        match self {
            Colour::Gray | Colour::Indexed(..) => 1,
            Colour::Rgb => 3,
            Colour::Cmyk => 4,
        }
    }
}

fn colour_space(doc: &Document, obj: &Object, depth: usize) -> Option<Colour> {
    let obj = deref(doc, obj)?;
    let by_name = |name: &[u8]| match name {
        b"DeviceGray" | b"CalGray" | b"G" => Some(Colour::Gray),
        b"DeviceRGB" | b"CalRGB" | b"RGB" => Some(Colour::Rgb),
        b"DeviceCMYK" | b"CMYK" => Some(Colour::Cmyk),
        _ => None,
    };
    if let Ok(name) = obj.as_name() {
        return by_name(name);
    }
    let arr = obj.as_array().ok()?;
    let family = arr.first()?.as_name().ok()?;
    match family {
        b"ICCBased" => {
            let stream = deref(doc, arr.get(1)?)?.as_stream().ok()?;
            match int(doc, &stream.dict, b"N")? {
                1 => Some(Colour::Gray),
                3 => Some(Colour::Rgb),
                4 => Some(Colour::Cmyk),
                _ => None,
            }
        }
        b"Indexed" | b"I" if depth == 0 => {
            let base = colour_space(doc, arr.get(1)?, depth + 1)?;
            let hival = usize::try_from(deref(doc, arr.get(2)?)?.as_i64().ok()?).ok()?;
            let lookup = match deref(doc, arr.get(3)?)? {
                Object::String(bytes, _) => bytes.clone(),
                Object::Stream(s) => s.decompressed_content_with_limit(256 * 4).ok()?,
                _ => return None,
            };
            let need = (hival.min(255) + 1) * base.components();
            (lookup.len() >= need).then(|| Colour::Indexed(Box::new(base), lookup[..need].to_vec()))
        }
        b"CalRGB" | b"CalGray" => by_name(family),
        _ => None,
    }
}

/// Decodes one image XObject at reduced scale.
pub(crate) fn decode(
    doc: &Document,
    stream: &Stream,
    limits: &Limits,
) -> Result<PageImage, Problem> {
    let dict = &stream.dict;
    if dict
        .get(b"ImageMask")
        .and_then(Object::as_bool)
        .unwrap_or(false)
    {
        return Ok(PageImage::Ignored);
    }
    let (Some(w), Some(h)) = (int(doc, dict, b"Width"), int(doc, dict, b"Height")) else {
        return Err(unreadable("PDF 中的图片缺少尺寸信息"));
    };
    let (Ok(w), Ok(h)) = (u64::try_from(w), u64::try_from(h)) else {
        return Err(unreadable("PDF 中的图片尺寸无效"));
    };
    check_pixels(w, h, limits)?;
    if w < 64 || h < 64 {
        return Ok(PageImage::Ignored);
    }
    let filters: Vec<&[u8]> = stream.filters().unwrap_or_default();
    if filters.iter().any(|f| {
        matches!(
            *f,
            b"JPXDecode" | b"JBIG2Decode" | b"CCITTFaxDecode" | b"CCF"
        )
    }) {
        return Ok(PageImage::Unsupported);
    }
    if let Some(pos) = filters
        .iter()
        .position(|f| *f == b"DCTDecode" || *f == b"DCT")
    {
        // A JPEG wrapped in other filters is rare enough to leave out.
        if pos != 0 || filters.len() != 1 {
            return Ok(PageImage::Unsupported);
        }
        return raster::decode_jpeg(&stream.content, limits).map(PageImage::Decoded);
    }
    let Some(colour) = dict
        .get(b"ColorSpace")
        .ok()
        .and_then(|cs| colour_space(doc, cs, 0))
    else {
        return Ok(PageImage::Unsupported);
    };
    let bpc = int(doc, dict, b"BitsPerComponent").unwrap_or(8);
    if !matches!(bpc, 1 | 2 | 4 | 8 | 16) {
        return Ok(PageImage::Unsupported);
    }
    let bpc = bpc as usize;
    let (w, h) = (w as usize, h as usize);
    let row_bytes = (w * colour.components() * bpc).div_ceil(8);
    let inverted = dict
        .get(b"Decode")
        .ok()
        .and_then(|o| deref(doc, o))
        .and_then(|o| o.as_array().ok())
        .and_then(|a| Some(a.first()?.as_float().ok()? > a.get(1)?.as_float().ok()?))
        .unwrap_or(false);
    let mask = soft_mask(doc, dict, limits);
    let mut out = Shrink::new(w, h);
    let mut rgb = Vec::with_capacity(w * 3);
    let held = each_row(stream, &filters, row_bytes, (w, h), &mut |y, row| {
        to_rgb(row, w, bpc, &colour, inverted, &mut rgb);
        if let Some(mask) = &mask {
            // Electronic seals are often solid red with the shape in the mask:
            // composite over white paper as a viewer would.
            for (x, px) in rgb.chunks_exact_mut(3).enumerate() {
                let a = u32::from(mask.alpha(x, y, w, h));
                for c in px {
                    *c = ((u32::from(*c) * a + 255 * (255 - a)) / 255) as u8;
                }
            }
        }
        out.row(y, &rgb);
    })?;
    Ok(PageImage::Decoded(Decoded {
        source_width: w as u32,
        source_height: h as u32,
        decoded_pixels: if held { (w * h) as u64 } else { out.pixels() },
        raster: out.finish(),
    }))
}

/// Calls `row` with each of the `h` rows of raw samples (`row_bytes` each,
/// predictor undone) as the stream decodes: uncompressed and FlateDecode
/// samples are never held whole. Other filters are decoded whole by lopdf,
/// up to `MAX_FULL_DECODE_BYTES`; then the result is true.
fn each_row(
    stream: &Stream,
    filters: &[&[u8]],
    row_bytes: usize,
    (w, h): (usize, usize),
    row: &mut dyn FnMut(usize, &[u8]),
) -> Result<bool, Problem> {
    let expected = row_bytes * h;
    let incomplete = || unreadable("PDF 中的图片数据不完整");
    match filters {
        [] => {
            let samples = stream.content.get(..expected).ok_or_else(incomplete)?;
            samples
                .chunks_exact(row_bytes)
                .enumerate()
                .for_each(|(y, r)| row(y, r));
            return Ok(false);
        }
        [b"FlateDecode" | b"Fl"] => {
            if let Some(predictor) = Predictor::of(stream, row_bytes) {
                let mut input = inflate(&stream.content);
                let mut previous = vec![0u8; row_bytes];
                let mut current = vec![0u8; row_bytes];
                for y in 0..h {
                    predictor.read_row(&mut input, &previous, &mut current)?;
                    row(y, &current);
                    std::mem::swap(&mut previous, &mut current);
                }
                return Ok(false);
            }
        }
        _ => {}
    }
    if expected as u64 > MAX_FULL_DECODE_BYTES {
        return Err(raster::too_large(w as u64, h as u64));
    }
    // lopdf applies the PNG/TIFF predictor from DecodeParms; the limit
    // keeps a decompression bomb from growing past the declared image.
    let samples = stream
        .decompressed_content_with_limit(expected + h + 1024)
        .map_err(|_| unreadable("PDF 中的图片数据已损坏"))?;
    let samples = samples.get(..expected).ok_or_else(incomplete)?;
    samples
        .chunks_exact(row_bytes)
        .enumerate()
        .for_each(|(y, r)| row(y, r));
    Ok(true)
}

/// A FlateDecode reader as lopdf makes it: zlib, or raw deflate after the
/// two header bytes when zlib yields nothing (a broken header).
fn inflate(content: &[u8]) -> Box<dyn Read + '_> {
    let mut zlib = ZlibDecoder::new(content);
    let mut first = [0u8; 1];
    match zlib.read(&mut first) {
        Ok(1) => Box::new(Cursor::new(first).chain(zlib)),
        _ if content.len() > 2 => Box::new(DeflateDecoder::new(&content[2..])),
        _ => Box::new(std::io::empty()),
    }
}

/// How the rows of a Flate stream were filtered before compression.
enum Predictor {
    None,
    /// TIFF predictor 2 on 8-bit samples: each sample adds the one
    /// `colors` bytes to its left.
    Tiff {
        colors: usize,
    },
    /// PNG predictors: a filter byte before each row.
    Png {
        bpp: usize,
    },
}

impl Predictor {
    /// The stream's predictor; None when its rows are not the image's rows
    /// (then lopdf decodes it whole).
    fn of(stream: &Stream, row_bytes: usize) -> Option<Self> {
        let params = match stream.dict.get(b"DecodeParms") {
            Ok(Object::Array(a)) => a.first().and_then(|p| p.as_dict().ok()),
            Ok(Object::Dictionary(d)) => Some(d),
            _ => None,
        };
        let Some(params) = params else {
            return Some(Self::None);
        };
        let sample = |key: &[u8], default: i64| {
            params
                .get(key)
                .and_then(Object::as_i64)
                .unwrap_or(default)
                .clamp(1, 1 << 20) as usize
        };
        let (columns, colors, bits) = (
            sample(b"Columns", 1),
            sample(b"Colors", 1),
            sample(b"BitsPerComponent", 8),
        );
        let rows_match = (columns * colors * bits).div_ceil(8) == row_bytes;
        match params
            .get(b"Predictor")
            .and_then(Object::as_i64)
            .unwrap_or(1)
        {
            2 => (rows_match && bits == 8).then_some(Self::Tiff { colors }),
            10..=15 => rows_match.then_some(Self::Png {
                bpp: (colors * bits).div_ceil(8),
            }),
            _ => Some(Self::None),
        }
    }

    fn read_row(
        &self,
        input: &mut dyn Read,
        previous: &[u8],
        current: &mut [u8],
    ) -> Result<(), Problem> {
        let cut = |_| unreadable("PDF 中的图片数据不完整");
        match *self {
            Self::None => input.read_exact(current).map_err(cut)?,
            Self::Tiff { colors } => {
                input.read_exact(current).map_err(cut)?;
                for i in colors..current.len() {
                    current[i] = current[i].wrapping_add(current[i - colors]);
                }
            }
            Self::Png { bpp } => {
                let mut filter = [0u8; 1];
                input.read_exact(&mut filter).map_err(cut)?;
                let filter = FilterType::try_from(filter[0])
                    .map_err(|_| unreadable("PDF 中的图片数据已损坏"))?;
                input.read_exact(current).map_err(cut)?;
                decode_row(filter, bpp, previous, current);
            }
        }
        Ok(())
    }
}

/// An image's /SMask (8-bit gray), kept at its own size and sampled by
/// nearest neighbour; one larger than `MAX_MASK_PIXELS` is left out.
struct Mask {
    width: usize,
    height: usize,
    alpha: Vec<u8>,
}

/// Masks are as large as their images at most; an electronic seal's is small.
const MAX_MASK_PIXELS: usize = 16 << 20;

impl Mask {
    fn alpha(&self, x: usize, y: usize, w: usize, h: usize) -> u8 {
        self.alpha[(y * self.height / h) * self.width + x * self.width / w]
    }
}

fn soft_mask(doc: &Document, dict: &Dictionary, limits: &Limits) -> Option<Mask> {
    let mask = deref(doc, dict.get(b"SMask").ok()?)?.as_stream().ok()?;
    let mw = usize::try_from(int(doc, &mask.dict, b"Width")?).ok()?;
    let mh = usize::try_from(int(doc, &mask.dict, b"Height")?).ok()?;
    check_pixels(mw as u64, mh as u64, limits).ok()?;
    if mw * mh > MAX_MASK_PIXELS || int(doc, &mask.dict, b"BitsPerComponent") != Some(8) {
        return None;
    }
    let data = if mask.filters().map(|f| f.is_empty()).unwrap_or(true) {
        mask.content.clone()
    } else {
        mask.decompressed_content_with_limit(mw * mh + mh + 1024)
            .ok()?
    };
    (data.len() >= mw * mh).then_some(Mask {
        width: mw,
        height: mh,
        alpha: data,
    })
}

/// One row of raw samples as packed RGB.
fn to_rgb(row: &[u8], w: usize, bpc: usize, colour: &Colour, inverted: bool, out: &mut Vec<u8>) {
    let comps = colour.components();
    let max = (1u32 << bpc.min(8)) - 1;
    let mut px = [0u8; 4];
    out.clear();
    for x in 0..w {
        for (c, slot) in px.iter_mut().enumerate().take(comps) {
            let i = x * comps + c;
            let raw = match bpc {
                8 => u32::from(row[i]),
                16 => u32::from(row[i * 2]),
                _ => {
                    let bit = i * bpc;
                    u32::from(row[bit / 8] >> (8 - bpc - bit % 8)) & max
                }
            };
            *slot = match colour {
                // Palette indices are used as they are.
                Colour::Indexed(..) => raw as u8,
                _ => {
                    let v = (raw * 255 / max) as u8;
                    if inverted { 255 - v } else { v }
                }
            };
        }
        out.extend_from_slice(&pixel(colour, &px));
    }
}

fn pixel(colour: &Colour, px: &[u8; 4]) -> [u8; 3] {
    match colour {
        Colour::Gray => [px[0]; 3],
        Colour::Rgb => [px[0], px[1], px[2]],
        Colour::Cmyk => {
            let k = 255 - u16::from(px[3]);
            [0, 1, 2].map(|i| ((255 - u16::from(px[i])) * k / 255) as u8)
        }
        Colour::Indexed(base, palette) => {
            let n = base.components();
            let i = usize::from(px[0]).min(palette.len() / n - 1) * n;
            let mut entry = [0u8; 4];
            entry[..n].copy_from_slice(&palette[i..i + n]);
            pixel(base, &entry)
        }
    }
}
