//! Removes location metadata from an image without re-encoding it: the
//! GPS directory of EXIF data is emptied (the rest, such as the
//! orientation, stays), and XMP packets, which may repeat the position,
//! are dropped. Pixels are untouched, byte for byte.

use crate::image::ImageKind;

/// `bytes` without location metadata; `None` when the container's
/// structure cannot be followed (so nobody can say what it holds).
pub fn strip_location(kind: ImageKind, bytes: &[u8]) -> Option<Vec<u8>> {
    match kind {
        ImageKind::Jpeg => jpeg(bytes),
        ImageKind::Png => png(bytes),
        ImageKind::Webp => webp(bytes),
        // GIF has no EXIF.
        ImageKind::Gif => Some(bytes.to_vec()),
    }
}

const EXIF_HEADER: &[u8] = b"Exif\0\0";
const XMP_HEADERS: [&[u8]; 2] = [b"http://ns.adobe.com/xap/1.0/\0", b"http://ns.adobe.com/xmp/extension/\0"];

/// JPEG: segments up to the start of scan; APP1 holds EXIF and XMP.
fn jpeg(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(bytes.get(..2)?);
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break; // start of scan (or end): the rest is image data
        }
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let end = at + 2 + length;
        let segment = bytes.get(at..end)?;
        let payload = &segment[4..];
        if marker == 0xE1 && payload.starts_with(EXIF_HEADER) {
            let mut kept = segment.to_vec();
            if scrub_gps(&mut kept[4 + EXIF_HEADER.len()..]).is_some() {
                out.extend_from_slice(&kept);
            } // else: EXIF we cannot read is dropped whole
        } else if !(marker == 0xE1 && XMP_HEADERS.iter().any(|h| payload.starts_with(h))) {
            out.extend_from_slice(segment);
        }
        at = end;
    }
    out.extend_from_slice(bytes.get(at..)?);
    Some(out)
}

/// PNG: `eXIf` chunks and XMP text chunks go; nothing else needs
/// touching (each chunk carries its own checksum).
fn png(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(bytes.get(..8)?);
    let mut at = 8;
    while at < bytes.len() {
        let length = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
        let end = at.checked_add(12)?.checked_add(length)?;
        let chunk = bytes.get(at..end)?;
        let kind = &chunk[4..8];
        let data = &chunk[8..8 + length];
        let xmp = matches!(kind, b"iTXt" | b"tEXt" | b"zTXt") && data.starts_with(b"XML:com.adobe.xmp\0");
        if kind != b"eXIf" && !xmp {
            out.extend_from_slice(chunk);
        }
        at = end;
    }
    Some(out)
}

/// WebP: the `EXIF` and `XMP ` chunks go, the container's size and the
/// `VP8X` flags that announce them follow.
fn webp(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(bytes.get(..12)?);
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let kind = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        let end = (at + 8).checked_add(size + (size & 1))?.min(bytes.len());
        let chunk = bytes.get(at..end)?;
        if kind != b"EXIF" && kind != b"XMP " {
            let start = out.len();
            out.extend_from_slice(chunk);
            if kind == b"VP8X" && chunk.len() > 8 {
                out[start + 8] &= !(0x08 | 0x04); // EXIF and XMP flags
            }
        }
        at = end;
    }
    let riff_size = u32::try_from(out.len() - 8).ok()?;
    out[4..8].copy_from_slice(&riff_size.to_le_bytes());
    Some(out)
}

/// A TIFF structure (EXIF's body) read with its byte order.
struct Tiff<'a> {
    bytes: &'a mut [u8],
    little: bool,
}

impl Tiff<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if self.little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if self.little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }

    fn zero(&mut self, from: usize, len: usize) -> Option<()> {
        self.bytes.get_mut(from..from.checked_add(len)?)?.fill(0);
        Some(())
    }
}

/// Bytes per value of each TIFF field type.
fn type_size(field_type: u16) -> usize {
    match field_type {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 => 4,
        5 | 10 | 12 => 8,
        _ => 1,
    }
}

/// Empties the GPS directory of the EXIF body `tiff`: its entries and
/// the values they point to become zeros, its count 0. `None` when the
/// structure cannot be followed.
fn scrub_gps(tiff: &mut [u8]) -> Option<()> {
    let little = match tiff.get(..2)? {
        b"II" => true,
        b"MM" => false,
        _ => return None,
    };
    let mut t = Tiff { bytes: tiff, little };
    let ifd0 = t.u32(4)? as usize;
    let entries = usize::from(t.u16(ifd0)?);
    for i in 0..entries {
        let entry = ifd0 + 2 + 12 * i;
        if t.u16(entry)? == 0x8825 {
            let gps = t.u32(entry + 8)? as usize;
            let gps_entries = usize::from(t.u16(gps)?);
            for j in 0..gps_entries {
                let e = gps + 2 + 12 * j;
                let size = type_size(t.u16(e + 2)?).checked_mul(t.u32(e + 4)? as usize)?;
                if size > 4 {
                    let at = t.u32(e + 8)? as usize;
                    t.zero(at, size)?;
                }
                t.zero(e, 12)?;
            }
            t.zero(gps, 2)?;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn gps_leaves_a_jpeg_and_the_picture_stays() {
        let original = testdata::jpeg_with_gps(64, 48);
        assert!(testdata::contains(&original, &testdata::GPS_LATITUDE));
        let stripped = strip_location(ImageKind::Jpeg, &original).unwrap();
        assert!(!testdata::contains(&stripped, &testdata::GPS_LATITUDE), "the latitude is still there");
        assert!(!testdata::contains(&stripped, b"<x:xmpmeta"), "the XMP packet is still there");
        let picture = image::load_from_memory(&stripped).unwrap();
        assert_eq!((picture.width(), picture.height()), (64, 48));
        // The orientation entry survives.
        assert!(testdata::contains(&stripped, &[0x12, 0x01, 0x03, 0x00]));
    }

    #[test]
    fn exif_leaves_png_and_webp_containers_intact() {
        let png = testdata::png_with_exif(20, 10);
        let stripped = strip_location(ImageKind::Png, &png).unwrap();
        assert!(!testdata::contains(&stripped, &testdata::GPS_LATITUDE));
        assert_eq!(image::load_from_memory(&stripped).unwrap().width(), 20);
        let webp = testdata::webp_with_exif();
        let stripped = strip_location(ImageKind::Webp, &webp).unwrap();
        assert!(!testdata::contains(&stripped, &testdata::GPS_LATITUDE));
        assert_eq!(u32::from_le_bytes(stripped[4..8].try_into().unwrap()) as usize, stripped.len() - 8);
    }

    #[test]
    fn garbage_never_panics() {
        for kind in [ImageKind::Jpeg, ImageKind::Png, ImageKind::Webp, ImageKind::Gif] {
            for len in 0..64 {
                let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
                let _ = strip_location(kind, &junk);
            }
        }
        let mut cut = testdata::jpeg_with_gps(8, 8);
        cut.truncate(40);
        let _ = strip_location(ImageKind::Jpeg, &cut);
    }
}
