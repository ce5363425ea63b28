//! Both backends against the contract: files in a temp directory, and S3
//! on a real SeaweedFS.

use crate::backend::Objects;
use crate::local::LocalSeaweed;

async fn files() -> (tempfile::TempDir, Objects) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::fs::open(dir.path()).unwrap();
    (dir, store)
}

async fn s3() -> (LocalSeaweed, Objects) {
    let service = tokio::task::spawn_blocking(LocalSeaweed::start).await.unwrap().expect("start SeaweedFS (weed)");
    let store = crate::s3::connect(&service.url(), Some(service.keys())).unwrap();
    (service, store)
}

mod on_files {
    use super::*;
    crate::object_store_contract_tests!(files);
}

mod on_s3 {
    use super::*;
    crate::object_store_contract_tests!(s3);
}
