//! Media in any S3-compatible service (AWS S3, SeaweedFS, MinIO, Garage,
//! R2...): what a cluster's nodes share. Named by a URL,
//! `s3://BUCKET?endpoint=URL&region=REGION` (endpoint and region
//! optional), with the credentials in the usual `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY`. The service acknowledges a write once it is
//! stored, and signs URLs that serve objects without chinwag.

use crate::backend::Objects;
use crate::objects::ObjectError;
use object_store::aws::AmazonS3Builder;
use object_store::signer::Url;
use std::sync::Arc;

/// Bytes per part: S3's minimum (but for the last part).
const PART_SIZE: usize = 5 * 1024 * 1024;

/// Where and how to reach the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// The service's URL (default: AWS's own for the region).
    pub endpoint: Option<String>,
    pub region: String,
}

impl S3Location {
    /// Reads `s3://BUCKET?endpoint=URL&region=REGION`.
    pub fn parse(url: &str) -> Result<S3Location, ObjectError> {
        let bad = |why: &str| ObjectError::Unavailable(format!("media store URL {url:?}: {why}"));
        let parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "s3" {
            return Err(bad("expected s3://BUCKET"));
        }
        let bucket = parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(|| bad("no bucket"))?.to_owned();
        let mut location = S3Location { bucket, endpoint: None, region: "us-east-1".into() };
        for (name, value) in parsed.query_pairs() {
            match &*name {
                "endpoint" => location.endpoint = Some(value.into_owned()),
                "region" => location.region = value.into_owned(),
                other => return Err(bad(&format!("unknown parameter {other:?}"))),
            }
        }
        Ok(location)
    }
}

/// An access key and its secret.
#[derive(Clone)]
pub struct S3Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Keys").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// The bucket at `url` (see the module documentation), with `keys` or
/// else the credentials of the environment. Checks nothing over the
/// network: the first request tells.
pub fn connect(url: &str, keys: Option<&S3Keys>) -> Result<Objects, ObjectError> {
    let location = S3Location::parse(url)?;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(&location.bucket).with_region(&location.region);
    if let Some(keys) = keys {
        builder = builder.with_access_key_id(&keys.access_key_id).with_secret_access_key(&keys.secret_access_key);
    }
    if let Some(endpoint) = &location.endpoint {
        builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
    }
    let store = Arc::new(builder.build().map_err(|e| ObjectError::Unavailable(e.to_string()))?);
    Ok(Objects::new(store.clone(), Some(store), PART_SIZE, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_read_from_urls() {
        let l = S3Location::parse("s3://media?endpoint=http%3A%2F%2F127.0.0.1%3A8333&region=eu-west-1").unwrap();
        assert_eq!(l.bucket, "media");
        assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(l.region, "eu-west-1");
        assert_eq!(S3Location::parse("s3://media").unwrap().endpoint, None);
        assert!(S3Location::parse("http://media").is_err());
        assert!(S3Location::parse("s3://media?colour=blue").is_err());
    }
}
