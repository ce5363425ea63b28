//! Photos and files end to end, over real sockets, with the files on
//! local disk and on a real S3 service (SeaweedFS): upload, send, every
//! member fetches by the signed URL, strangers get 404, ranges, limits,
//! image checks, location stripping, and no loss on SIGKILL.

mod common;

use chinwag_media::local::LocalSeaweed;
use chinwag_media::testdata;
use common::*;
use reqwest::header;
use serde_json::{json, Value};

async fn scenarios(server: &mut TestServer) {
    let (alice, bob, channel) = server.alice_and_bob().await;
    let carol = server.user("carol").await;
    let (mut a, _) = server.connect(&alice.token).await;
    let (mut b, _) = server.connect(&bob.token).await;

    // A photo with a GPS position in its EXIF, and a PDF.
    let photo = testdata::jpeg_with_gps(800, 600);
    let (status, body) = server.upload(&alice.token, "beach.jpg", "image/jpeg", photo.clone()).await;
    assert_eq!(status, 201, "{body}");
    let photo_upload = &body["upload"];
    assert_eq!((photo_upload["width"].as_u64(), photo_upload["height"].as_u64()), (Some(800), Some(600)));
    assert_eq!(photo_upload["content_type"], "image/jpeg");
    let pdf = b"%PDF-1.7\n% a document\n".repeat(200);
    let (status, body) = server.upload(&alice.token, "report.pdf", "application/pdf", pdf.clone()).await;
    assert_eq!(status, 201, "{body}");
    let pdf_upload = body["upload"].clone();
    assert_eq!(pdf_upload["size"].as_u64(), Some(pdf.len() as u64));
    assert!(pdf_upload.get("width").is_none());

    // Sent with no text; Bob's socket gets both, with signed URLs.
    let ids = json!([photo_upload["id"], pdf_upload["id"]]);
    a.send(json!({"type": "send", "client_msg_id": "m1", "channel_id": channel, "attachments": ids})).await;
    let message = b.next_of("message").await;
    let files = message["attachments"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2, "{message}");
    assert_eq!((files[0]["name"].as_str(), files[1]["name"].as_str()), (Some("beach.jpg"), Some("report.pdf")));
    assert_eq!(message["text"], "");
    let photo_url = files[0]["url"].as_str().unwrap().to_owned();
    assert!(photo_url.starts_with("http://"), "absolute: {photo_url}");
    let thumbnail_url = files[0]["thumbnail_url"].as_str().unwrap().to_owned();
    assert!(files[1].get("thumbnail_url").is_none());

    // The URL alone fetches it (an <img src> sends no header); what Bob
    // gets carries no location.
    let got = server.fetch(&photo_url, None, None).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(got.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let served = got.bytes().await.unwrap();
    assert!(!testdata::contains(&served, &testdata::GPS_LATITUDE), "the position was served");
    assert!(image_size(&served) == (800, 600));
    let thumb = server.fetch(&thumbnail_url, None, None).await;
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(image_size(&thumb.bytes().await.unwrap()), (320, 240));
    // Files that are not images are downloads, never pages.
    let document = server.fetch(files[1]["url"].as_str().unwrap(), None, None).await;
    assert_eq!(document.status(), 200);
    let disposition = document.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment; filename=\"report.pdf\""), "{disposition}");
    assert_eq!(document.bytes().await.unwrap(), pdf);

    // Ranges (video scrubbing).
    let part = server.fetch(files[1]["url"].as_str().unwrap(), None, Some("bytes=10-19")).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()[header::CONTENT_RANGE], format!("bytes 10-19/{}", pdf.len()).as_str());
    assert_eq!(part.bytes().await.unwrap(), &pdf[10..20]);
    let past = server.fetch(files[1]["url"].as_str().unwrap(), None, Some("bytes=999999-")).await;
    assert_eq!(past.status(), 416);

    // Members with their token; strangers get 404 whatever they try.
    let plain = format!("/v1/media/{}", pdf_upload["id"].as_str().unwrap());
    assert_eq!(server.fetch(&plain, Some(&bob.token), None).await.status(), 200);
    assert_eq!(server.fetch(&plain, Some(&carol.token), None).await.status(), 404);
    assert_eq!(server.fetch(&plain, None, None).await.status(), 404);
    assert_eq!(server.fetch(&plain, Some("not a token"), None).await.status(), 404);
    let tampered = photo_url.replace("sig=", "sig=00");
    assert_eq!(server.fetch(&tampered, None, None).await.status(), 404);
    let expires: i64 = photo_url.split("expires=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
    let stretched = photo_url.replace(&format!("expires={expires}"), &format!("expires={}", expires + 60));
    assert_eq!(server.fetch(&stretched, None, None).await.status(), 404, "a longer life is a new signature");
    let expired = photo_url.replace(&format!("expires={expires}"), "expires=1000");
    assert_eq!(server.fetch(&expired, None, None).await.status(), 404);

    // History signs URLs too; HTTP sends take attachments.
    let (status, history) = server.get(&format!("/v1/channels/{channel}/messages"), &bob.token).await;
    assert_eq!(status, 200);
    let listed = history["messages"][0]["attachments"][0]["url"].as_str().unwrap().to_owned();
    assert_eq!(server.fetch(&listed, None, None).await.status(), 200);
    let (status, body) = server.upload(&bob.token, "note.txt", "text/plain", b"hello".to_vec()).await;
    assert_eq!(status, 201);
    let note = body["upload"]["id"].as_str().unwrap().to_owned();
    let post = |token: String, ids: Value, cmid: &'static str| {
        let server = &*server;
        async move {
            server
                .post(
                    &format!("/v1/channels/{channel}/messages"),
                    &token,
                    json!({"client_msg_id": cmid, "attachments": ids}),
                )
                .await
        }
    };
    let (status, body) = post(alice.token.clone(), json!([note]), "m2").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "someone else's upload");
    let (status, body) = post(bob.token.clone(), json!([note, note]), "m2").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(bob.token.clone(), json!([note]), "m2").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["message"]["attachments"][0]["name"], "note.txt");

    // Bytes that are not what they claim, and images no one should decode.
    let png = testdata::png(10, 10);
    let (status, body) = server.upload(&alice.token, "x.jpg", "image/jpeg", png).await;
    assert_eq!((status, body["error"]["code"].as_str()), (415, Some("unsupported_media")));
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let before = rss(server.pid());
    let (status, body) = server.upload(&alice.token, "bomb.png", "image/png", testdata::png_bomb()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("too_large")), "{body}");
    assert!(rss(server.pid()) < before + 100 * 1024, "decoding a bomb grew the server by over 100 MB");

    // SIGKILL right after a 201 loses nothing.
    let (status, body) = server.upload(&alice.token, "last.bin", "application/octet-stream", vec![7; 70_000]).await;
    assert_eq!(status, 201);
    let last = body["upload"]["id"].as_str().unwrap().to_owned();
    drop((a, b));
    server.restart();
    let kept = server.fetch(&format!("/v1/media/{last}"), Some(&alice.token), None).await;
    assert_eq!(kept.status(), 200);
    assert_eq!(kept.bytes().await.unwrap().as_ref(), vec![7u8; 70_000].as_slice());
}

/// Width and height of an encoded image.
fn image_size(bytes: &[u8]) -> (u32, u32) {
    let picture = image::load_from_memory(bytes).expect("an image");
    (picture.width(), picture.height())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_on_local_disk() {
    let mut server = TestServer::start();
    scenarios(&mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_on_s3() {
    let s3 = tokio::task::spawn_blocking(LocalSeaweed::start).await.unwrap().expect("start SeaweedFS (weed)");
    let url = s3.url();
    let keys = s3.keys().clone();
    let mut server = TestServer::start_with_env(
        &["--media-store", &url],
        &[("AWS_ACCESS_KEY_ID", &keys.access_key_id), ("AWS_SECRET_ACCESS_KEY", &keys.secret_access_key)],
    );
    scenarios(&mut server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_store_serves_the_bytes_when_media_redirects() {
    let s3 = tokio::task::spawn_blocking(LocalSeaweed::start).await.unwrap().expect("start SeaweedFS (weed)");
    let keys = s3.keys().clone();
    let server = TestServer::start_with_env(
        &["--media-store", &s3.url(), "--media-redirect", "true"],
        &[("AWS_ACCESS_KEY_ID", &keys.access_key_id), ("AWS_SECRET_ACCESS_KEY", &keys.secret_access_key)],
    );
    let (alice, bob, channel) = server.alice_and_bob().await;
    let photo = testdata::png(640, 480);
    let (status, body) = server.upload(&alice.token, "sea.png", "image/png", photo.clone()).await;
    assert_eq!(status, 201, "{body}");
    let id = body["upload"]["id"].as_str().unwrap().to_owned();
    let (status, sent) = server
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &alice.token,
            json!({"client_msg_id": "p1", "attachments": [id]}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let file = &sent["message"]["attachments"][0];

    // The signed URL answers with a redirect to the store's own signed URL...
    let no_follow = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let url = file["url"].as_str().unwrap();
    let url = if url.starts_with('/') { format!("{}{url}", server.base) } else { url.to_owned() };
    let answer = no_follow.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(&s3.endpoint()), "{location}");
    // ...which serves the bytes with the type and disposition chinwag chose.
    let direct = reqwest::get(&location).await.unwrap();
    assert_eq!(direct.status(), 200);
    assert_eq!(direct.headers()[header::CONTENT_TYPE], "image/png");
    assert!(direct.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("inline"));
    assert_eq!(direct.bytes().await.unwrap().to_vec(), photo);
    // A member's token is redirected too; a stranger's gets nothing.
    let by_token =
        no_follow.get(format!("{}/v1/media/{id}", server.base)).bearer_auth(&bob.token).send().await.unwrap();
    assert_eq!(by_token.status(), 302);
    let stranger = server.user("mallory").await;
    let refused =
        no_follow.get(format!("{}/v1/media/{id}", server.base)).bearer_auth(&stranger.token).send().await.unwrap();
    assert_eq!(refused.status(), 404);
    // Thumbnails are small: chinwag serves them, whole.
    let thumb = server.fetch(file["thumbnail_url"].as_str().unwrap(), None, None).await;
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()[header::ACCEPT_RANGES], "none");
    // The web client's pages may load images from the store.
    let page = server.http.get(format!("{}/", server.base)).send().await.unwrap();
    let policy = page.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(policy.contains(&format!("img-src 'self' data: blob: {};", s3.endpoint())), "{policy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_and_quotas_are_enforced() {
    let server = TestServer::start_with(&["--upload-max-bytes", "1000", "--upload-quota-bytes", "1500"]);
    let alice = server.user("alice").await;
    let (status, body) = server.upload(&alice.token, "big.bin", "application/octet-stream", vec![1; 1001]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("too_large")));
    assert_eq!(server.upload(&alice.token, "a.bin", "application/octet-stream", vec![1; 1000]).await.0, 201);
    let (status, body) = server.upload(&alice.token, "b.bin", "application/octet-stream", vec![1; 600]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("too_large")), "over the quota");
    let (status, _) = server.upload("nobody", "c.bin", "application/octet-stream", vec![1; 10]).await;
    assert_eq!(status, 401);
}
