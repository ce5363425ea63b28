//! The one implementation of [`ObjectStore`], over the `object_store`
//! crate, which each backend configures: files are written as multipart
//! uploads of bounded parts (so an upload never sits whole in memory),
//! read by range, and signed where the store can sign.

use crate::objects::{ObjectError, ObjectKey, ObjectRead, ObjectStore};
use bytes::BytesMut;
use futures_util::StreamExt;
use object_store::path::Path as StorePath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{GetOptions, GetRange, ObjectStoreExt, WriteMultipart};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Parts being sent at once per upload.
const PARTS_IN_FLIGHT: usize = 2;

/// An [`ObjectStore`] on an `object_store` backend.
pub struct Objects {
    store: Arc<dyn object_store::ObjectStore>,
    signer: Option<Arc<dyn Signer>>,
    /// Bytes per part: S3 wants at least 5 MiB (but for the last).
    part_size: usize,
    /// Files under this directory are flushed to disk after each write
    /// (a store that answers over the network made them durable itself).
    fsync_root: Option<PathBuf>,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").field("store", &self.store.to_string()).finish()
    }
}

impl Objects {
    pub(crate) fn new(
        store: Arc<dyn object_store::ObjectStore>,
        signer: Option<Arc<dyn Signer>>,
        part_size: usize,
        fsync_root: Option<PathBuf>,
    ) -> Objects {
        Objects { store, signer, part_size, fsync_root }
    }

    fn path(key: &ObjectKey) -> StorePath {
        StorePath::from(key.as_str())
    }

    /// Streams `source` into a multipart upload; returns the bytes written.
    async fn write(&self, key: &ObjectKey, source: &Path) -> Result<u64, ObjectError> {
        let mut file = tokio::fs::File::open(source).await.map_err(|e| ObjectError::Io("opening the upload", e))?;
        let upload = self.store.put_multipart(&Self::path(key)).await.map_err(unavailable)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut written = 0u64;
        let outcome = loop {
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                break Err(unavailable(e));
            }
            let mut piece = BytesMut::with_capacity(256 * 1024);
            match file.read_buf(&mut piece).await {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    written += n as u64;
                    writer.put(piece.freeze());
                }
                Err(e) => break Err(ObjectError::Io("reading the upload", e)),
            }
        };
        match outcome {
            Ok(()) => writer.finish().await.map_err(unavailable).map(|_| written),
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Flushes a written file and its directory entry to disk.
    async fn sync(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        let Some(root) = &self.fsync_root else { return Ok(()) };
        let file = root.join(key.as_str());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| ObjectError::Unavailable(e.to_string()))?
        .map_err(|e| ObjectError::Io("flushing to disk", e))
    }
}

fn unavailable(e: object_store::Error) -> ObjectError {
    match e {
        object_store::Error::NotFound { .. } => ObjectError::NotFound,
        other => ObjectError::Unavailable(other.to_string()),
    }
}

#[async_trait::async_trait]
impl ObjectStore for Objects {
    async fn put_file(&self, key: &ObjectKey, source: &Path) -> Result<u64, ObjectError> {
        let written = self.write(key, source).await?;
        self.sync(key).await?;
        Ok(written)
    }

    async fn get(&self, key: &ObjectKey, range: Option<Range<u64>>) -> Result<ObjectRead, ObjectError> {
        let options = GetOptions { range: range.clone().map(GetRange::Bounded), ..GetOptions::default() };
        let result = match self.store.get_opts(&Self::path(key), options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Err(ObjectError::NotFound),
            Err(e) if range.is_some() => {
                // Most likely a range past the end: tell it apart by the size.
                let size = self.store.head(&Self::path(key)).await.map_err(unavailable)?.size;
                return Err(match range {
                    Some(r) if r.start >= size || r.is_empty() => ObjectError::BadRange { size },
                    _ => unavailable(e),
                });
            }
            Err(e) => return Err(unavailable(e)),
        };
        let (size, range) = (result.meta.size, result.range.clone());
        let body = result.into_stream().map(|piece| piece.map_err(unavailable)).boxed();
        Ok(ObjectRead { size, range, body })
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        match self.store.delete(&Self::path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn signed_url(
        &self,
        key: &ObjectKey,
        ttl: Duration,
        content_type: &str,
        disposition: &str,
    ) -> Result<Option<String>, ObjectError> {
        let Some(signer) = &self.signer else { return Ok(None) };
        let options = SignedUrlOptions::new()
            .with_query([("response-content-type", content_type), ("response-content-disposition", disposition)]);
        let url = signer.signed_url_opts(Method::GET, &Self::path(key), ttl, &options).await.map_err(unavailable)?;
        Ok(Some(url.to_string()))
    }
}
