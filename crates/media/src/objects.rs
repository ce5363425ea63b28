//! The object-store seam: named blobs, written whole from a local file,
//! read whole or by byte range, deleted, and (where the store can sign)
//! handed out as a time-limited URL so the bytes need not pass through
//! chinwag.

use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

/// An object's name: lowercase letters, digits and `-_./`, not starting
/// with `/` or `.`, no `..`, at most 200 bytes. Made by chinwag, never
/// taken from a request, but checked anyway: it becomes a file path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// The key, when it is well-formed.
    pub fn new(key: impl Into<String>) -> Result<ObjectKey, ObjectError> {
        let key = key.into();
        let plain = key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_./".contains(&b));
        let ok = plain
            && !key.is_empty()
            && key.len() <= 200
            && !key.starts_with(['/', '.'])
            && !key.ends_with('/')
            && !key.contains("..")
            && !key.contains("//");
        if ok {
            Ok(ObjectKey(key))
        } else {
            Err(ObjectError::BadKey(key))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A read: the object's whole size, the range returned, and its bytes as
/// they arrive (never all in memory).
pub struct ObjectRead {
    pub size: u64,
    pub range: Range<u64>,
    pub body: BoxStream<'static, Result<Bytes, ObjectError>>,
}

impl std::fmt::Debug for ObjectRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRead").field("size", &self.size).field("range", &self.range).finish()
    }
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("no such object")]
    NotFound,
    /// A range that starts at or past the end.
    #[error("range not satisfiable (object of {size} bytes)")]
    BadRange { size: u64 },
    #[error("not a valid object key: {0:?}")]
    BadKey(String),
    /// The store could not be reached or failed: worth retrying.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// A local file (the upload being stored) could not be read.
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
}

/// Where media bytes live. Implementations keep every object they
/// acknowledged through a crash of this process.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    /// Stores the file at `source` as `key` (replacing any object there),
    /// streaming it in bounded pieces; durable once this returns `Ok`.
    async fn put_file(&self, key: &ObjectKey, source: &Path) -> Result<u64, ObjectError>;

    /// The object's bytes: all of them, or `range` (clipped to the end).
    async fn get(&self, key: &ObjectKey, range: Option<Range<u64>>) -> Result<ObjectRead, ObjectError>;

    /// Removes the object; removing a missing one is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError>;

    /// A URL that serves the object for `ttl` to whoever holds it, with
    /// the given response headers (`Content-Type`, `Content-Disposition`);
    /// `None` when this store cannot sign URLs (files on disk).
    async fn signed_url(
        &self,
        key: &ObjectKey,
        ttl: Duration,
        content_type: &str,
        disposition: &str,
    ) -> Result<Option<String>, ObjectError>;
}
