//! Photos and files: uploads are streamed to a temporary file within the
//! size limit, checked (images against their bytes), measured,
//! thumbnailed and stripped of location metadata, then written to the
//! object store before the 201. Messages carry signed URLs; `GET
//! /v1/media/{id}` serves bytes (by range) to a valid signature or a
//! member of a channel holding the file. Uploads nobody holds are
//! collected.

use crate::error::store_error;
use crate::ServerConfig;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chinwag_media::image::{self as images, ImageError, ImageKind, ImageLimits};
use chinwag_media::{ObjectError, ObjectKey, ObjectStore};
use chinwag_proto::{ErrorCode, Message, Upload, UserId, WireError};
use chinwag_store::{NewUpload, Store, StoreError};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

/// Images decoded at once on this node (each may take hundreds of MB).
const DECODES_AT_ONCE: usize = 2;

/// Uploads collected per housekeeping round.
const COLLECT_BATCH: u32 = 100;

/// Which bytes of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Original,
    Thumbnail,
}

impl Variant {
    fn key(self, id: &str) -> Result<ObjectKey, ObjectError> {
        match self {
            Variant::Original => ObjectKey::new(format!("o/{id}")),
            Variant::Thumbnail => ObjectKey::new(format!("t/{id}")),
        }
    }

    fn path(self, id: &str) -> String {
        match self {
            Variant::Original => format!("/v1/media/{id}"),
            Variant::Thumbnail => format!("/v1/media/{id}/thumbnail"),
        }
    }
}

/// The media service (api role).
pub struct Media {
    objects: Arc<dyn ObjectStore>,
    store: Arc<dyn Store>,
    config: Arc<ServerConfig>,
    /// Signs media URLs; shared by every node, so any node verifies.
    key: Vec<u8>,
    /// Bounds memory: images decoded at once.
    decodes: Semaphore,
    /// Where redirects send browsers (`scheme://host[:port]` of the object
    /// store's signed URLs), learnt once.
    redirect_origin: tokio::sync::OnceCell<Option<String>>,
}

fn unavailable(e: impl std::fmt::Display) -> WireError {
    tracing::warn!(error = %e, "object store unavailable");
    WireError {
        retry_after_ms: Some(1_000),
        ..WireError::new(ErrorCode::Unavailable, "media storage is briefly unavailable")
    }
}

fn too_large(what: &str) -> WireError {
    WireError::new(ErrorCode::TooLarge, what)
}

/// A file name as the uploader gave it: 1-255 bytes, no control characters.
fn valid_name(name: &str) -> Result<String, WireError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(WireError::bad_request("filename must be 1-255 bytes without control characters"));
    }
    Ok(name.to_owned())
}

/// A declared `Content-Type` (lower-cased, parameters dropped); files
/// without one are `application/octet-stream`.
fn valid_content_type(headers: &HeaderMap) -> Result<String, WireError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok("application/octet-stream".into()) };
    let essence = value.to_str().ok().and_then(|v| v.split(';').next()).unwrap_or("").trim().to_ascii_lowercase();
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
    match essence.split_once('/') {
        Some((kind, sub)) if essence.len() <= 127 && token(kind) && token(sub) => Ok(essence),
        _ => Err(WireError::bad_request("Content-Type must be a media type such as image/png")),
    }
}

/// `Content-Disposition` for a file: images shown in place, everything
/// else downloaded; the name in both the plain and the UTF-8 form.
fn disposition(name: &str, inline: bool) -> String {
    let plain: String =
        name.chars().map(|c| if c.is_ascii() && c != '"' && c != '\\' && !c.is_control() { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

/// One `bytes=` range of a `Range` header against `size` bytes: `None`
/// when absent or not a single range (serve it whole), `Err` when it
/// cannot be satisfied.
fn requested_range(headers: &HeaderMap, size: u64) -> Option<Result<Range<u64>, ()>> {
    let spec = headers.get(header::RANGE)?.to_str().ok()?.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let range = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            size.saturating_sub(n)..size
        }
        (first, "") => first.parse().ok()?..size,
        (first, last) => {
            let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
            if last < first {
                return None;
            }
            first..(last + 1).min(size)
        }
    };
    Some(if range.start < range.end && range.start < size { Ok(range) } else { Err(()) })
}

impl Media {
    pub fn new(objects: Arc<dyn ObjectStore>, store: Arc<dyn Store>, config: Arc<ServerConfig>, key: Vec<u8>) -> Self {
        Media {
            objects,
            store,
            config,
            key,
            decodes: Semaphore::new(DECODES_AT_ONCE),
            redirect_origin: tokio::sync::OnceCell::new(),
        }
    }

    /// The origin media requests redirect to (`media_redirect` with a store
    /// that signs URLs), for the web client's `img-src`; `None` when media
    /// is served from here. Learnt from one signed URL, so it is exactly
    /// what redirects will name.
    pub async fn redirect_origin(&self) -> Option<String> {
        if !self.config.media_redirect {
            return None;
        }
        // A failure (credentials not reachable yet) is not remembered.
        let learnt = self
            .redirect_origin
            .get_or_try_init(|| async {
                let key = Variant::Original.key("origin-probe").map_err(|_| ())?;
                let url = self.objects.signed_url(&key, Duration::from_secs(60), "image/png", "inline").await;
                let url = url.map_err(|e| tracing::warn!(error = %e, "could not learn the media origin"))?;
                Ok::<_, ()>(url.as_deref().and_then(origin_of))
            })
            .await;
        learnt.ok().cloned().flatten()
    }

    /// The MAC of a URL: its path and expiry under the shared key.
    fn mac(&self, id: &str, variant: Variant, expires: i64) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(format!("{}\n{expires}", variant.path(id)).as_bytes());
        Some(mac)
    }

    fn signature(&self, id: &str, variant: Variant, expires: i64) -> String {
        self.mac(id, variant, expires).map(|mac| hex::encode(mac.finalize().into_bytes())).unwrap_or_default()
    }

    /// A signed URL of an upload, valid until `expires` (seconds).
    fn url(&self, id: &str, variant: Variant, expires: i64) -> String {
        let base = self.config.public_url.as_deref().unwrap_or("").trim_end_matches('/');
        format!("{base}{}?expires={expires}&sig={}", variant.path(id), self.signature(id, variant, expires))
    }

    /// Fills in the signed URLs of a message's attachments.
    pub fn sign(&self, message: &mut Message) {
        if message.attachments.is_empty() {
            return;
        }
        // Rounded up to the minute, so a message's URLs stay the same for
        // a while (caches can keep them).
        let ttl = self.config.media_url_ttl_s.max(3_600) as i64;
        let expires = (chinwag_proto::now_ms() / 1000 + ttl + 59) / 60 * 60;
        for file in &mut message.attachments {
            file.url = self.url(&file.id, Variant::Original, expires);
            file.thumbnail_url = file.width.map(|_| self.url(&file.id, Variant::Thumbnail, expires));
        }
    }

    /// Signs every message of a page.
    pub fn sign_all<'a>(&self, messages: impl IntoIterator<Item = &'a mut Message>) {
        for message in messages {
            self.sign(message);
        }
    }

    /// Whether `expires`/`sig` of a request are a valid, unexpired signature.
    fn signed(&self, id: &str, variant: Variant, expires: i64, sig: &str) -> bool {
        let (Some(mac), Ok(given)) = (self.mac(id, variant, expires), hex::decode(sig)) else { return false };
        expires >= chinwag_proto::now_ms() / 1000 && mac.verify_slice(&given).is_ok()
    }

    /// Stores an upload (see the module documentation).
    pub async fn upload(
        &self,
        owner: UserId,
        name: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Upload, WireError> {
        let name = valid_name(name)?;
        let content_type = valid_content_type(headers)?;
        let max = self.config.upload_max_bytes;
        let declared: Option<u64> =
            headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(too_large("the upload is larger than the size limit"));
        }
        let spooled = spool(body, max).await?;
        let kind = ImageKind::from_content_type(&content_type);
        let (file, size, image) = match kind {
            Some(kind) => self.prepare_image(kind, &spooled).await?,
            None => {
                let size = spooled.as_file().metadata().map_err(unavailable)?.len();
                (spooled, size, None)
            }
        };
        let id = hex::encode(rand::random::<[u8; 16]>());
        let (width, height) = image.as_ref().map_or((None, None), |(w, h, _)| (Some(*w), Some(*h)));
        let upload = Upload { id: id.clone(), name, content_type, size, width, height };
        let record = NewUpload {
            id: id.clone(),
            owner,
            name: upload.name.clone(),
            content_type: upload.content_type.clone(),
            size,
            width,
            height,
            created_at: chinwag_proto::now_ms(),
        };
        self.store.begin_upload(record, self.config.upload_quota_bytes).await.map_err(store_error)?;
        let original = Variant::Original.key(&id).map_err(unavailable)?;
        self.objects.put_file(&original, file.path()).await.map_err(unavailable)?;
        if let Some((_, _, thumbnail)) = &image {
            let key = Variant::Thumbnail.key(&id).map_err(unavailable)?;
            self.objects.put_file(&key, thumbnail.path()).await.map_err(unavailable)?;
        }
        self.store.upload_stored(&id).await.map_err(store_error)?;
        Ok(upload)
    }

    /// Checks, measures, thumbnails and strips an image, off the runtime
    /// and a few at a time: the file to keep, its size, and (width,
    /// height, thumbnail file).
    async fn prepare_image(
        &self,
        kind: ImageKind,
        spooled: &tempfile::NamedTempFile,
    ) -> Result<(tempfile::NamedTempFile, u64, Option<(u32, u32, tempfile::NamedTempFile)>), WireError> {
        let _permit = self.decodes.acquire().await.map_err(|_| WireError::internal())?;
        let path = spooled.path().to_owned();
        let limits = ImageLimits { max_pixels: self.config.image_max_pixels };
        let done = tokio::task::spawn_blocking(move || -> Result<_, WireError> {
            let bytes = std::fs::read(&path).map_err(unavailable)?;
            let processed = images::process(kind, &bytes, limits).map_err(|e| match e {
                ImageError::TooManyPixels { .. } => too_large(&e.to_string()),
                e => WireError::new(ErrorCode::UnsupportedMedia, e.to_string()),
            })?;
            let stripped = chinwag_media::location::strip_location(kind, &bytes)
                .ok_or_else(|| WireError::new(ErrorCode::UnsupportedMedia, "the image's structure cannot be read"))?;
            drop(bytes);
            let kept = temp_with(&stripped)?;
            let thumbnail = temp_with(&processed.thumbnail.bytes)?;
            Ok((kept, stripped.len() as u64, Some((processed.width, processed.height, thumbnail))))
        });
        done.await.map_err(|_| WireError::internal())?
    }

    /// Answers `GET /v1/media/{id}[/thumbnail]`: to a valid signature, or
    /// to `viewer` when they may see the upload; 404 to anyone else.
    pub async fn serve(
        &self,
        id: &str,
        variant: Variant,
        signature: Option<(i64, &str)>,
        viewer: Option<UserId>,
        headers: &HeaderMap,
    ) -> Result<Response, WireError> {
        let not_found = || WireError::not_found("file");
        let allowed = match (signature, viewer) {
            (Some((expires, sig)), _) if self.signed(id, variant, expires, sig) => true,
            (_, Some(viewer)) => self.store.may_view_upload(id, viewer).await.map_err(store_error)?,
            _ => false,
        };
        if !allowed {
            return Err(not_found());
        }
        let stored = self.store.upload(id).await.map_err(store_error)?.filter(|u| u.stored).ok_or_else(not_found)?;
        let upload = stored.upload;
        if variant == Variant::Thumbnail && upload.width.is_none() {
            return Err(not_found());
        }
        let key = variant.key(id).map_err(|_| not_found())?;
        let image = ImageKind::from_content_type(&upload.content_type).is_some();
        let content_type = match variant {
            Variant::Original => upload.content_type.clone(),
            Variant::Thumbnail => String::new(), // read from its bytes below
        };
        let disposition = disposition(&upload.name, image);
        if self.config.media_redirect && variant == Variant::Original {
            let ttl = Duration::from_secs(300);
            if let Some(url) =
                self.objects.signed_url(&key, ttl, &content_type, &disposition).await.map_err(unavailable)?
            {
                let mut response = StatusCode::FOUND.into_response();
                if let Ok(location) = HeaderValue::from_str(&url) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                return Ok(response);
            }
        }
        let range = match variant {
            Variant::Original => match requested_range(headers, upload.size) {
                Some(Ok(range)) => Some(range),
                Some(Err(())) => {
                    let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", upload.size)) {
                        response.headers_mut().insert(header::CONTENT_RANGE, value);
                    }
                    return Ok(response);
                }
                None => None,
            },
            Variant::Thumbnail => None,
        };
        let read = match self.objects.get(&key, range.clone()).await {
            Ok(read) => read,
            Err(ObjectError::NotFound) => return Err(not_found()),
            Err(e) => return Err(unavailable(e)),
        };
        let mut body = read.body;
        // A thumbnail's type is in its first bytes (JPEG, or PNG where
        // transparency had to survive).
        let (content_type, first) = match variant {
            Variant::Original => (content_type, None),
            Variant::Thumbnail => {
                let first = match body.next().await {
                    Some(Ok(bytes)) => bytes,
                    Some(Err(e)) => return Err(unavailable(e)),
                    None => bytes::Bytes::new(),
                };
                let kind = ImageKind::sniff(&first).unwrap_or(ImageKind::Jpeg);
                (kind.content_type().to_owned(), Some(first))
            }
        };
        let stream = futures_util::stream::iter(first.map(Ok)).chain(body).map(|piece| {
            piece.map_err(|e| {
                tracing::warn!(error = %e, "media stream broke off");
                std::io::Error::other(e.to_string())
            })
        });
        let status = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
        let mut response = (status, Body::from_stream(stream)).into_response();
        let h = response.headers_mut();
        let mut set = |name: header::HeaderName, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                h.insert(name, value);
            }
        };
        set(header::CONTENT_TYPE, content_type);
        set(header::CONTENT_DISPOSITION, disposition);
        set(header::CONTENT_LENGTH, (read.range.end - read.range.start).to_string());
        // Thumbnails are small and always sent whole.
        let ranges = if variant == Variant::Original { "bytes" } else { "none" };
        set(header::ACCEPT_RANGES, ranges.into());
        set(header::CACHE_CONTROL, "private, max-age=3600".into());
        // Served bytes are never a page of this site.
        set(header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox".into());
        if range.is_some() {
            set(header::CONTENT_RANGE, format!("bytes {}-{}/{}", read.range.start, read.range.end - 1, read.size));
        }
        Ok(response)
    }

    /// Removes uploads nobody holds: never sent within the allowed time,
    /// or no longer held by any message.
    pub async fn collect(&self) -> Result<usize, StoreError> {
        let cutoff = self.unattached_cutoff();
        let mut removed = 0;
        for id in self.store.collectable_uploads(cutoff, COLLECT_BATCH).await? {
            if self.remove_one(&id, cutoff).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the files a deleted message released: their records at
    /// once (so no URL serves them any more), their bytes in the
    /// background. A record the store could not forget now is found by the
    /// next `collect`; bytes the object store could not remove are logged
    /// (as in `collect`, the record goes first, so no message can attach a
    /// removed file).
    pub async fn remove(self: &Arc<Self>, ids: Vec<String>) {
        let cutoff = self.unattached_cutoff();
        let mut forgotten = Vec::new();
        for id in ids {
            match self.store.forget_upload(&id, cutoff).await {
                Ok(true) => forgotten.push(id),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, %id, "could not forget a deleted message's file; collection will"),
            }
        }
        let media = self.clone();
        tokio::spawn(async move {
            for id in forgotten {
                media.remove_bytes(&id).await;
            }
        });
    }

    fn unattached_cutoff(&self) -> i64 {
        chinwag_proto::now_ms() - (self.config.unattached_upload_ttl_s as i64) * 1000
    }

    /// Forgets one upload if nobody holds it (so no message can attach it
    /// meanwhile), then removes its bytes; whether it was removed.
    async fn remove_one(&self, id: &str, cutoff: i64) -> Result<bool, StoreError> {
        if !self.store.forget_upload(id, cutoff).await? {
            return Ok(false);
        }
        self.remove_bytes(id).await;
        Ok(true)
    }

    /// Removes a forgotten upload's bytes (both variants).
    async fn remove_bytes(&self, id: &str) {
        for variant in [Variant::Original, Variant::Thumbnail] {
            if let Ok(key) = variant.key(id) {
                if let Err(e) = self.objects.delete(&key).await {
                    tracing::warn!(error = %e, %id, "could not remove an upload's bytes");
                }
            }
        }
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{authority}"))
}

/// A temporary file holding `bytes`.
fn temp_with(bytes: &[u8]) -> Result<tempfile::NamedTempFile, WireError> {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new().map_err(unavailable)?;
    file.write_all(bytes).map_err(unavailable)?;
    file.flush().map_err(unavailable)?;
    Ok(file)
}

/// Writes a request body to a temporary file, refusing it (413) as soon as
/// it passes `max` bytes; memory holds one chunk at a time.
async fn spool(body: Body, max: u64) -> Result<tempfile::NamedTempFile, WireError> {
    let temp = tempfile::NamedTempFile::new().map_err(unavailable)?;
    let mut file = tokio::fs::File::from_std(temp.reopen().map_err(unavailable)?);
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            if crate::error::caused_by::<crate::http::BodyTimeout>(&e) {
                WireError::new(ErrorCode::RequestTimeout, "the upload did not arrive in time")
            } else {
                WireError::bad_request("the upload broke off")
            }
        })?;
        received += chunk.len() as u64;
        if received > max {
            return Err(too_large("the upload is larger than the size limit"));
        }
        file.write_all(&chunk).await.map_err(unavailable)?;
    }
    file.flush().await.map_err(unavailable)?;
    Ok(temp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        let with = |range: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
            requested_range(&h, 100)
        };
        assert_eq!(with("bytes=0-9"), Some(Ok(0..10)));
        assert_eq!(with("bytes=90-"), Some(Ok(90..100)));
        assert_eq!(with("bytes=-5"), Some(Ok(95..100)));
        assert_eq!(with("bytes=95-200"), Some(Ok(95..100)));
        assert_eq!(with("bytes=100-"), Some(Err(())));
        assert_eq!(with("bytes=0-1,5-6"), None);
        assert_eq!(with("items=0-1"), None);
        assert_eq!(requested_range(&HeaderMap::new(), 100), None);
    }

    #[test]
    fn names_are_safe_in_headers() {
        assert_eq!(
            disposition("a \"b\".pdf", false),
            "attachment; filename=\"a _b_.pdf\"; filename*=UTF-8''a%20%22b%22.pdf"
        );
        assert!(disposition("фото.jpg", true).starts_with("inline; filename=\"____.jpg\""));
        assert!(valid_name("").is_err());
        assert!(valid_name("a\nb").is_err());
    }
}
