//! The behaviour every object store must have, written once. A backend's
//! test module calls `object_store_contract_tests!(open)` with an async
//! `open()` returning `(guard, store)`; the guard keeps what the store
//! needs alive (an S3 service, a directory). A backend in another crate
//! enables the `contract-tests` feature.
#![allow(missing_docs)]

use crate::objects::{ObjectError, ObjectKey, ObjectStore};
use futures_util::StreamExt;
use std::io::{Read, Write};
use std::time::Duration;

/// `len` bytes of a pattern that differs at every offset of a part.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + i / 251) as u8).wrapping_add(seed)).collect()
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(name).unwrap()
}

/// A temp file holding `bytes`.
fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file.flush().unwrap();
    file
}

async fn read_all(store: &dyn ObjectStore, key: &ObjectKey, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let read = store.get(key, range).await.unwrap();
    let mut body = read.body;
    let mut out = Vec::new();
    while let Some(piece) = body.next().await {
        out.extend_from_slice(&piece.unwrap());
    }
    out
}

pub async fn what_is_put_is_read_back_whole(store: &dyn ObjectStore) {
    // Three parts and a bit on S3 (5 MiB each): the multipart path.
    let bytes = pattern(16 * 1024 * 1024 + 123, 1);
    let source = file_with(&bytes);
    let k = key("u/1/whole");
    assert_eq!(store.put_file(&k, source.path()).await.unwrap(), bytes.len() as u64);
    let read = store.get(&k, None).await.unwrap();
    assert_eq!(read.size, bytes.len() as u64);
    assert_eq!(read.range, 0..bytes.len() as u64);
    assert!(read_all(store, &k, None).await == bytes, "the bytes differ");
    // An empty file is an object too.
    let empty = file_with(b"");
    store.put_file(&key("u/1/empty"), empty.path()).await.unwrap();
    assert_eq!(store.get(&key("u/1/empty"), None).await.unwrap().size, 0);
}

pub async fn ranges_return_exactly_their_bytes(store: &dyn ObjectStore) {
    let bytes = pattern(100_000, 2);
    let k = key("u/2/ranged");
    store.put_file(&k, file_with(&bytes).path()).await.unwrap();
    assert_eq!(read_all(store, &k, Some(10..20)).await, &bytes[10..20]);
    assert_eq!(read_all(store, &k, Some(99_990..100_000)).await, &bytes[99_990..]);
    let read = store.get(&k, Some(0..1)).await.unwrap();
    assert_eq!((read.size, read.range), (100_000, 0..1));
    // Past the end: clipped; starting past the end: refused.
    assert_eq!(read_all(store, &k, Some(99_000..200_000)).await, &bytes[99_000..]);
    match store.get(&k, Some(100_000..100_010)).await {
        Err(ObjectError::BadRange { size: 100_000 }) => {}
        other => panic!("expected BadRange, got {other:?}"),
    }
}

pub async fn a_put_replaces_and_a_delete_removes(store: &dyn ObjectStore) {
    let k = key("u/3/replaced");
    store.put_file(&k, file_with(b"first").path()).await.unwrap();
    store.put_file(&k, file_with(b"second, longer").path()).await.unwrap();
    assert_eq!(read_all(store, &k, None).await, b"second, longer");
    store.delete(&k).await.unwrap();
    assert!(matches!(store.get(&k, None).await, Err(ObjectError::NotFound)));
    store.delete(&k).await.expect("deleting what is gone is fine");
    assert!(matches!(store.get(&key("u/3/never"), None).await, Err(ObjectError::NotFound)));
}

pub async fn a_failed_put_leaves_nothing(store: &dyn ObjectStore) {
    let k = key("u/4/missing-source");
    let missing = std::env::temp_dir().join("chinwag-no-such-upload-file");
    assert!(matches!(store.put_file(&k, &missing).await, Err(ObjectError::Io(..))));
    assert!(matches!(store.get(&k, None).await, Err(ObjectError::NotFound)));
}

/// `GET` of an `http://` URL on loopback; status line, headers and body.
fn fetch(url: &str) -> (String, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (String::from_utf8_lossy(&answer[..split]).into_owned(), answer[split + 4..].to_vec())
}

fn status(head: &str) -> u16 {
    head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub async fn signed_urls_serve_the_object_until_tampered_with(store: &dyn ObjectStore) {
    let k = key("u/5/signed");
    store.put_file(&k, file_with(b"signed bytes").path()).await.unwrap();
    let disposition = "attachment; filename=\"report.pdf\"";
    let Some(url) = store.signed_url(&k, Duration::from_secs(60), "application/pdf", disposition).await.unwrap() else {
        return; // This store cannot sign: chinwag serves its bytes itself.
    };
    let (head, body) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || fetch(&url)
    })
    .await
    .unwrap();
    assert_eq!(status(&head), 200, "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: application/pdf"), "{head}");
    assert!(head.contains("content-disposition: attachment; filename=\"report.pdf\""), "{head}");
    assert_eq!(body, b"signed bytes");
    let tampered = url.replace("u/5/signed", "u/5/other");
    let (head, _) = tokio::task::spawn_blocking(move || fetch(&tampered)).await.unwrap();
    assert_eq!(status(&head), 403, "{head}");
}

#[macro_export]
macro_rules! object_store_contract_tests {
    ($open:path) => {
        mod object_store_contract_suite {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let (_guard, store) = $open().await;
                        $crate::contract::$name(&store).await;
                    }
                };
            }
            case!(what_is_put_is_read_back_whole);
            case!(ranges_return_exactly_their_bytes);
            case!(a_put_replaces_and_a_delete_removes);
            case!(a_failed_put_leaves_nothing);
            case!(signed_urls_serve_the_object_until_tampered_with);
        }
    };
}
