//! Images for tests, made here so no binary fixture is needed: a JPEG
//! whose EXIF holds a GPS position (and an XMP packet), PNG and WebP with
//! EXIF chunks, and a PNG that claims more pixels than anyone should
//! decode.
#![allow(missing_docs, clippy::unwrap_used)]

use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};
use std::io::Cursor;

/// The latitude rationals of the test position (51°30'12.34"), as stored
/// (little endian): recognisable bytes to look for.
pub const GPS_LATITUDE: [u8; 24] = [51, 0, 0, 0, 1, 0, 0, 0, 30, 0, 0, 0, 1, 0, 0, 0, 0xD2, 0x04, 0, 0, 100, 0, 0, 0];

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A colourful picture, so thumbnails have something to show.
pub fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]))
}

/// An EXIF body: orientation 1 and a GPS directory with a latitude.
pub fn exif_with_gps() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"II\x2a\x00");
    t.extend_from_slice(&8u32.to_le_bytes());
    // IFD0 at 8: orientation, GPS pointer.
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&[0x12, 0x01, 0x03, 0x00, 1, 0, 0, 0, 1, 0, 0, 0]);
    t.extend_from_slice(&[0x25, 0x88, 0x04, 0x00, 1, 0, 0, 0]);
    t.extend_from_slice(&38u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    // GPS IFD at 38: latitude reference and latitude (at 68).
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&[0x01, 0x00, 0x02, 0x00, 2, 0, 0, 0, b'N', 0, 0, 0]);
    t.extend_from_slice(&[0x02, 0x00, 0x05, 0x00, 3, 0, 0, 0]);
    t.extend_from_slice(&68u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&GPS_LATITUDE);
    t
}

/// A JPEG carrying [`exif_with_gps`] and an XMP packet.
pub fn jpeg_with_gps(width: u32, height: u32) -> Vec<u8> {
    let mut plain = Vec::new();
    DynamicImage::ImageRgb8(picture(width, height)).write_to(&mut Cursor::new(&mut plain), ImageFormat::Jpeg).unwrap();
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(exif_with_gps());
    let mut xmp = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    xmp.extend_from_slice(b"<x:xmpmeta><exif:GPSLatitude>51,30.2N</exif:GPSLatitude></x:xmpmeta>");
    let mut out = plain[..2].to_vec();
    for payload in [exif, xmp] {
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend(payload);
    }
    out.extend_from_slice(&plain[2..]);
    out
}

/// CRC-32 as PNG uses it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let crc = crc32(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    chunk
}

/// An opaque PNG.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(picture(width, height)).write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
    out
}

/// A PNG with transparency.
pub fn png_with_alpha(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let picture = RgbaImage::from_fn(width, height, |x, _| image::Rgba([200, 10, 10, (x * 9) as u8]));
    DynamicImage::ImageRgba8(picture).write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
    out
}

/// A PNG with an `eXIf` chunk holding a GPS position.
pub fn png_with_exif(width: u32, height: u32) -> Vec<u8> {
    let plain = png(width, height);
    // After the signature and IHDR (8 + 25 bytes).
    let mut out = plain[..33].to_vec();
    out.extend(png_chunk(b"eXIf", &exif_with_gps()));
    out.extend_from_slice(&plain[33..]);
    out
}

/// A PNG whose header claims 100,000 × 100,000 pixels (40 GB decoded),
/// in a few hundred bytes.
pub fn png_bomb() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    out.extend(png_chunk(b"IHDR", &ihdr));
    // zlib: a stored empty block; the rest is missing.
    out.extend(png_chunk(b"IDAT", &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF]));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// An extended WebP (VP8X) with an `EXIF` chunk holding a GPS position.
pub fn webp_with_exif() -> Vec<u8> {
    let mut simple = Vec::new();
    DynamicImage::ImageRgba8(RgbaImage::from_pixel(4, 4, image::Rgba([1, 2, 3, 255])))
        .write_to(&mut Cursor::new(&mut simple), ImageFormat::WebP)
        .unwrap();
    let image_chunk = &simple[12..];
    let mut vp8x = b"VP8X".to_vec();
    vp8x.extend_from_slice(&10u32.to_le_bytes());
    vp8x.extend_from_slice(&[0x08, 0, 0, 0, 3, 0, 0, 3, 0, 0]);
    let exif = exif_with_gps();
    let mut exif_chunk = b"EXIF".to_vec();
    exif_chunk.extend_from_slice(&(exif.len() as u32).to_le_bytes());
    exif_chunk.extend(&exif);
    if exif.len() % 2 == 1 {
        exif_chunk.push(0);
    }
    let body: Vec<u8> = [b"WEBP".to_vec(), vp8x, image_chunk.to_vec(), exif_chunk].concat();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// [`jpeg_with_gps`] whose EXIF orientation says "turn 90° clockwise to
/// show": shown, it is `height` wide and `width` high.
pub fn jpeg_turned(width: u32, height: u32) -> Vec<u8> {
    let mut jpeg = jpeg_with_gps(width, height);
    // SOI, APP1 marker and length, "Exif\0\0", then the TIFF body, whose
    // orientation value sits at 18.
    jpeg[2 + 4 + 6 + 18] = 6;
    jpeg
}
