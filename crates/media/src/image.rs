//! What chinwag learns from an uploaded image and does to it: its real
//! type (from its bytes, not the declared header), its size as shown, a
//! thumbnail, and a copy without location metadata. All of it is CPU
//! work on untrusted bytes: callers run it off the async runtime, a few
//! at a time, and the limits keep a decompression bomb from allocating.

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// The image types chinwag checks, measures and thumbnails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl ImageKind {
    /// The kind a `Content-Type` declares (parameters and case ignored).
    pub fn from_content_type(content_type: &str) -> Option<ImageKind> {
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(ImageKind::Jpeg),
            "image/png" => Some(ImageKind::Png),
            "image/gif" => Some(ImageKind::Gif),
            "image/webp" => Some(ImageKind::Webp),
            _ => None,
        }
    }

    /// The kind the first bytes of a file show.
    pub fn sniff(head: &[u8]) -> Option<ImageKind> {
        if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageKind::Jpeg)
        } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageKind::Png)
        } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
            Some(ImageKind::Gif)
        } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
            Some(ImageKind::Webp)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
            ImageKind::Gif => "image/gif",
            ImageKind::Webp => "image/webp",
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            ImageKind::Jpeg => ImageFormat::Jpeg,
            ImageKind::Png => ImageFormat::Png,
            ImageKind::Gif => ImageFormat::Gif,
            ImageKind::Webp => ImageFormat::WebP,
        }
    }
}

/// Why an image was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// Declared as one image type, the bytes are another (or none).
    #[error("the bytes are not a {} image", .0.content_type())]
    NotThatKind(ImageKind),
    /// More pixels than decoding may allocate for (a decompression bomb,
    /// or just a huge picture).
    #[error("the image is {width}x{height} pixels; at most {max_pixels} pixels are accepted")]
    TooManyPixels { width: u32, height: u32, max_pixels: u64 },
    #[error("the image cannot be decoded: {0}")]
    Broken(String),
}

/// How far decoding may go.
#[derive(Debug, Clone, Copy)]
pub struct ImageLimits {
    /// Width × height at most (as stored).
    pub max_pixels: u64,
}

/// The longest side of a thumbnail.
pub const THUMBNAIL_SIDE: u32 = 320;

/// A small copy for lists and previews.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// What processing an image gives.
#[derive(Debug, Clone)]
pub struct Processed {
    /// Width and height as the image is shown (its EXIF orientation applied).
    pub width: u32,
    pub height: u32,
    pub thumbnail: Thumbnail,
}

fn broken(e: impl std::fmt::Display) -> ImageError {
    ImageError::Broken(e.to_string())
}

/// Checks that `bytes` are a `declared` image, measures it and makes its
/// thumbnail, within `limits`.
pub fn process(declared: ImageKind, bytes: &[u8], limits: ImageLimits) -> Result<Processed, ImageError> {
    if ImageKind::sniff(bytes) != Some(declared) {
        return Err(ImageError::NotThatKind(declared));
    }
    let reader = ImageReader::with_format(Cursor::new(bytes), declared.format());
    // Reads the header only: the size is known before any pixel is.
    let mut decoder = reader.into_decoder().map_err(broken)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ImageError::TooManyPixels { width, height, max_pixels: limits.max_pixels });
    }
    let mut decode_limits = Limits::default();
    decode_limits.max_image_width = Some(width);
    decode_limits.max_image_height = Some(height);
    // The decoded picture plus working room, never more.
    decode_limits.max_alloc = Some(limits.max_pixels * 8 + 64 * 1024 * 1024);
    decoder.set_limits(decode_limits).map_err(broken)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let picture = DynamicImage::from_decoder(decoder).map_err(broken)?;
    let mut thumbnail = shrink(&picture)?;
    drop(picture);
    thumbnail.apply_orientation(orientation);
    let (shown_width, shown_height) = match orientation {
        image::metadata::Orientation::Rotate90
        | image::metadata::Orientation::Rotate270
        | image::metadata::Orientation::Rotate90FlipH
        | image::metadata::Orientation::Rotate270FlipH => (height, width),
        _ => (width, height),
    };
    Ok(Processed { width: shown_width, height: shown_height, thumbnail: encode(thumbnail)? })
}

/// `picture` fitted into [`THUMBNAIL_SIDE`] (never enlarged).
fn shrink(picture: &DynamicImage) -> Result<DynamicImage, ImageError> {
    let (w, h) = (picture.width().max(1), picture.height().max(1));
    let scale = f64::from(THUMBNAIL_SIDE) / f64::from(w.max(h));
    let source = if picture.color().has_alpha() {
        DynamicImage::ImageRgba8(picture.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(picture.to_rgb8())
    };
    if scale >= 1.0 {
        return Ok(source);
    }
    let (tw, th) = (((f64::from(w) * scale).round() as u32).max(1), ((f64::from(h) * scale).round() as u32).max(1));
    let mut target = DynamicImage::new(tw, th, source.color());
    let options = fast_image_resize::ResizeOptions::new()
        .resize_alg(fast_image_resize::ResizeAlg::Convolution(fast_image_resize::FilterType::Lanczos3));
    fast_image_resize::Resizer::new().resize(&source, &mut target, &options).map_err(broken)?;
    Ok(target)
}

/// JPEG for opaque thumbnails, PNG where transparency must survive.
fn encode(thumbnail: DynamicImage) -> Result<Thumbnail, ImageError> {
    let (width, height) = (thumbnail.width(), thumbnail.height());
    let mut bytes = Vec::new();
    let content_type = if thumbnail.color().has_alpha() {
        thumbnail.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).map_err(broken)?;
        "image/png"
    } else {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 80);
        thumbnail.write_with_encoder(encoder).map_err(broken)?;
        "image/jpeg"
    };
    Ok(Thumbnail { bytes, content_type, width, height })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    const LIMITS: ImageLimits = ImageLimits { max_pixels: 40_000_000 };

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(ImageKind::from_content_type("Image/JPEG; charset=binary"), Some(ImageKind::Jpeg));
        assert_eq!(ImageKind::from_content_type("application/pdf"), None);
        assert_eq!(ImageKind::sniff(&testdata::png(2, 2)), Some(ImageKind::Png));
        assert_eq!(ImageKind::sniff(b"%PDF-1.7"), None);
        let png = testdata::png(10, 10);
        assert_eq!(process(ImageKind::Jpeg, &png, LIMITS).unwrap_err(), ImageError::NotThatKind(ImageKind::Jpeg));
    }

    #[test]
    fn photos_are_measured_and_thumbnailed() {
        let jpeg = testdata::jpeg_with_gps(1000, 600);
        let p = process(ImageKind::Jpeg, &jpeg, LIMITS).unwrap();
        assert_eq!((p.width, p.height), (1000, 600));
        assert_eq!((p.thumbnail.width, p.thumbnail.height, p.thumbnail.content_type), (320, 192, "image/jpeg"));
        let thumbnail = image::load_from_memory(&p.thumbnail.bytes).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (320, 192));
        // Turned by its EXIF: measured as shown.
        let p = process(ImageKind::Jpeg, &testdata::jpeg_turned(1000, 600), LIMITS).unwrap();
        assert_eq!((p.width, p.height, p.thumbnail.width, p.thumbnail.height), (600, 1000, 192, 320));
    }

    #[test]
    fn small_images_are_not_enlarged_and_transparency_stays() {
        let p = process(ImageKind::Png, &testdata::png_with_alpha(100, 50), LIMITS).unwrap();
        assert_eq!((p.thumbnail.width, p.thumbnail.height, p.thumbnail.content_type), (100, 50, "image/png"));
    }

    #[test]
    fn bombs_are_refused_before_decoding() {
        let bomb = testdata::png_bomb();
        assert!(bomb.len() < 200);
        let refused = process(ImageKind::Png, &bomb, LIMITS).unwrap_err();
        assert!(matches!(refused, ImageError::TooManyPixels { width: 100_000, height: 100_000, .. }), "{refused}");
        let cut = &testdata::png(50, 50)[..60];
        assert!(matches!(process(ImageKind::Png, cut, LIMITS), Err(ImageError::Broken(_))));
    }
}
