//! Media as files under a directory: the embedded default, zero setup.
//! Each object is one file, written through a staging file, renamed into
//! place and flushed to disk before the write is acknowledged.

use crate::backend::Objects;
use crate::objects::ObjectError;
use object_store::local::LocalFileSystem;
use std::path::Path;
use std::sync::Arc;

/// Bytes per write to the staging file.
const PART_SIZE: usize = 1024 * 1024;

/// Objects under `dir` (created if missing).
pub fn open(dir: &Path) -> Result<Objects, ObjectError> {
    std::fs::create_dir_all(dir).map_err(|e| ObjectError::Io("creating the media directory", e))?;
    let dir = dir.canonicalize().map_err(|e| ObjectError::Io("finding the media directory", e))?;
    let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| ObjectError::Unavailable(e.to_string()))?;
    Ok(Objects::new(Arc::new(store), None, PART_SIZE, Some(dir)))
}
