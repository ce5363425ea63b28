//! Media: where uploaded files live. The [`ObjectStore`] seam has two
//! backends: files under a directory (the embedded default) and any
//! S3-compatible service (a cluster's shared store). Both sit on the
//! `object_store` crate, so they share one code path ([`backend`]).

pub mod backend;
pub mod fs;
pub mod image;
pub mod local;
pub mod location;
pub mod objects;
pub mod s3;

/// The behaviour every backend must have, for `object_store_contract_tests!`.
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;

pub use objects::{ObjectError, ObjectKey, ObjectRead, ObjectStore};

/// Images for tests (a JPEG with a GPS position, a decompression bomb...).
#[cfg(any(test, feature = "contract-tests"))]
pub mod testdata;

#[cfg(test)]
mod tests;
