//! The web client in real headless Chromium, driven through WebDriver
//! (Debian's `chromium` and `chromium-driver`): two people sign up, chat,
//! see presence and read state, make a group, reload, and keep chatting
//! across a server restart. Screenshots land in `target/screenshots/`.

mod common;

use common::*;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::json;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ENTER: &str = "\u{E007}";

/// A chromedriver process on a free port.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    #[allow(clippy::disallowed_methods, reason = "runs before any async work, waiting for a child process")]
    fn start() -> ChromeDriver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed: run ./scripts/test");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        ChromeDriver { child, url: format!("http://127.0.0.1:{port}") }
    }

    async fn browser(&self, profile: &tempfile::TempDir) -> Browser {
        self.browser_with(profile, &[]).await
    }

    /// A browser with more command-line switches.
    async fn browser_with(&self, profile: &tempfile::TempDir, extra: &[&str]) -> Browser {
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,800",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({ "binary": "/usr/bin/chromium", "args": args }));
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("start a Chromium session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `script` (a JS expression) until it is truthy.
async fn wait_js(b: &Browser, what: &str, script: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let value = b.execute(&format!("return !!({script});"), vec![]).await.unwrap();
        if value == json!(true) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let page = b.execute("return document.body.innerText;", vec![]).await.unwrap();
            panic!("timed out waiting for {what}; page text:\n{}", page.as_str().unwrap_or(""));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn js(b: &Browser, script: &str) -> serde_json::Value {
    b.execute(script, vec![]).await.unwrap()
}

async fn type_into(b: &Browser, css: &str, text: &str) {
    let el = b.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

/// Clicks the element; when the page re-rendered it between the lookup
/// and the click (a stale reference), looks it up again.
async fn click(b: &Browser, css: &str) {
    for _ in 0..50 {
        match b.find(Locator::Css(css)).await.unwrap().click().await {
            Ok(()) => return,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("clicking {css}: {e}"),
        }
    }
    panic!("{css} kept being re-rendered");
}

async fn sign_up(b: &Browser, base: &str, name: &str) {
    b.goto(base).await.unwrap();
    wait_js(b, "the auth form", "!document.getElementById('auth-view').hidden").await;
    click(b, "#auth-switch").await;
    type_into(b, "#auth-username", name).await;
    type_into(b, "#auth-password", PASSWORD).await;
    click(b, "#auth-submit").await;
    wait_js(b, "the app after sign-up", &format!("document.getElementById('me').textContent === '{name}'")).await;
}

/// Starts (or opens) the direct chat with `name` from the sidebar.
async fn open_direct(b: &Browser, name: &str) {
    type_into(b, "#new-direct-name", name).await;
    click(b, "#new-direct button").await;
    let title = format!("document.getElementById('chat-title').textContent === '{name}'");
    wait_js(b, &format!("the chat with {name}"), &title).await;
}

/// The direct channel between `token`'s user and `other`, over the API.
async fn direct_with(server: &TestServer, token: &str, other: &str) -> i64 {
    let (_, found) = server.get(&format!("/v1/users?username={other}"), token).await;
    let (_, direct) = server.post("/v1/channels/direct", token, json!({"user_id": found["user"]["id"]})).await;
    direct["channel"]["id"].as_i64().unwrap()
}

async fn send(b: &Browser, text: &str) {
    let el = b.find(Locator::Css("#composer-text")).await.unwrap();
    el.send_keys(text).await.unwrap();
    el.send_keys(ENTER).await.unwrap();
}

/// The texts of the open conversation, in order.
async fn texts(b: &Browser) -> Vec<String> {
    let v = js(b, "return [...document.querySelectorAll('#messages .msg .text')].map(e => e.textContent);").await;
    serde_json::from_value(v).unwrap()
}

async fn wait_text(b: &Browser, text: &str) {
    let script = format!(
        "[...document.querySelectorAll('#messages .msg .text')].some(e => e.textContent === {})",
        serde_json::to_string(text).unwrap()
    );
    wait_js(b, &format!("message {text:?}"), &script).await;
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_chat_in_real_browsers() {
    let mut server = TestServer::start_with(&["--presence-offline-grace-ms", "300"]);
    let driver = ChromeDriver::start();
    let (alice_profile, bob_profile) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = driver.browser(&alice_profile).await;
    let bob = driver.browser(&bob_profile).await;
    sign_up(&alice, &server.base, "alice").await;
    sign_up(&bob, &server.base, "bob").await;
    // Push notifications are offered through a service worker.
    let sw = js(&alice, "return fetch('/sw.js').then(r => r.text());").await;
    assert!(sw.as_str().unwrap().contains("showNotification"));
    assert_eq!(js(&alice, "return document.getElementById('notify').textContent;").await, json!("Notify me"));

    // Alice starts a direct chat by username and writes; Bob sees it appear.
    open_direct(&alice, "bob").await;
    wait_js(&alice, "bob online", "document.getElementById('chat-status').textContent === 'online'").await;
    send(&alice, "hello bob").await;
    wait_js(&alice, "own message sent", "document.querySelector('#messages .msg.mine')?.dataset.state === 'sent'")
        .await;
    wait_js(&bob, "the new conversation", "document.querySelector('.conv .badge')?.textContent === '1'").await;
    click(&bob, ".conv").await;
    wait_text(&bob, "hello bob").await;
    // Bob read it: Alice's message turns "seen", Bob's badge is gone.
    wait_js(&alice, "seen", "document.querySelector('#messages .msg.mine')?.dataset.state === 'seen'").await;
    wait_js(&bob, "badge cleared", "!document.querySelector('.conv .badge')").await;
    send(&bob, "hi alice!").await;
    wait_text(&alice, "hi alice!").await;
    send(&bob, "second line").await;
    wait_text(&alice, "second line").await;

    // Text is text: markup shows literally, nothing executes.
    let xss = "<img src=x onerror=alert(1)>";
    send(&alice, xss).await;
    wait_text(&bob, xss).await;
    assert_eq!(
        js(&bob, "return document.querySelectorAll('#messages img, #conversations img').length;").await,
        json!(0)
    );
    assert!(bob.get_alert_text().await.is_err(), "no alert may be open");

    // A group of three, created in the page; Carol reads over a socket.
    let carol_token = {
        let (s, _) =
            server.call("POST", "/v1/users", None, Some(json!({"username": "carol", "password": PASSWORD}))).await;
        assert_eq!(s, 201);
        server.login("carol").await
    };
    let (mut carol, _) = server.connect(&carol_token).await;
    click(&alice, "#new-group-open").await;
    type_into(&alice, "#group-name", "trio").await;
    type_into(&alice, "#group-members", "bob, carol").await;
    click(&alice, "#group-form button[type=submit]").await;
    wait_js(&alice, "the group", "document.getElementById('chat-title').textContent === 'trio'").await;
    wait_js(&alice, "3 members", "document.getElementById('chat-status').textContent === '3 members'").await;
    let group = carol.next_of("channel").await["channel"]["id"].as_i64().unwrap();
    send(&alice, "welcome to trio").await;
    assert_eq!(carol.next_of("message").await["text"], "welcome to trio");
    carol.send_text(group, "x", "carol here").await;
    wait_text(&alice, "carol here").await;

    // Reloading keeps the session and the history.
    bob.refresh().await.unwrap();
    wait_js(&bob, "the app after reload", "document.getElementById('me').textContent === 'bob'").await;
    wait_js(&bob, "conversations", "document.querySelectorAll('.conv').length === 2").await;
    click(&bob, ".conv[data-channel-id='1']").await;
    wait_text(&bob, xss).await;
    assert_eq!(texts(&bob).await, vec!["hello bob", "hi alice!", "second line", xss]);

    // Desktop screenshots, for people to look at.
    let dir = screenshot_dir();
    std::fs::write(dir.join("desktop-chat.png"), alice.screenshot().await.unwrap()).unwrap();

    // The server restarts mid-conversation: banners, reconnect, nothing lost.
    click(&alice, ".conv[data-channel-id='1']").await;
    wait_text(&alice, xss).await;
    server.kill();
    wait_js(&alice, "the reconnect banner", "!document.getElementById('banner').hidden").await;
    send(&alice, "sent while the server was down").await;
    wait_js(&alice, "pending", "document.querySelector('#messages .msg.mine:last-child')?.dataset.state === 'pending'")
        .await;
    server.restart_same_port();
    wait_js(&alice, "banner gone", "document.getElementById('banner').hidden").await;
    wait_text(&bob, "sent while the server was down").await;
    send(&bob, "got it after the restart").await;
    wait_text(&alice, "got it after the restart").await;
    let expected = vec![
        "hello bob",
        "hi alice!",
        "second line",
        xss,
        "sent while the server was down",
        "got it after the restart",
    ];
    assert_eq!(texts(&alice).await, expected);
    assert_eq!(texts(&bob).await, expected);
    wait_js(&alice, "no pending left", "!document.querySelector('#messages .msg[data-state=pending]')").await;

    // Presence: Bob leaves; Alice sees him go offline with a "last seen".
    bob.goto("about:blank").await.unwrap();
    wait_js(&alice, "bob offline", "document.getElementById('chat-status').textContent.startsWith('last seen')").await;

    // Phone width: the list and the chat are separate screens.
    alice.set_window_size(390, 844).await.unwrap();
    std::fs::write(dir.join("phone-chat.png"), alice.screenshot().await.unwrap()).unwrap();
    click(&alice, "#back").await;
    wait_js(&alice, "the list on a phone", "getComputedStyle(document.getElementById('sidebar')).display !== 'none'")
        .await;
    std::fs::write(dir.join("phone-list.png"), alice.screenshot().await.unwrap()).unwrap();

    // Search finds the message and jumps to it.
    type_into(&alice, "#search-input", "welcome").await;
    click(&alice, "#search-form button").await;
    wait_js(&alice, "a search hit", "document.querySelectorAll('#search-results .hit').length === 1").await;
    click(&alice, "#search-results .hit").await;
    wait_js(
        &alice,
        "the highlighted message",
        "document.querySelector('#messages .msg.highlight .text')?.textContent === 'welcome to trio'",
    )
    .await;

    // Logging out returns to the login form and revokes the token.
    alice.set_window_size(1280, 800).await.unwrap();
    click(&alice, "#logout").await;
    wait_js(&alice, "the login form", "!document.getElementById('auth-view').hidden").await;
    assert_eq!(js(&alice, "return localStorage.getItem('chinwag.token');").await, serde_json::Value::Null);

    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// The page runs whole under its Content-Security-Policy (no violation is
/// reported while people chat), an injected inline script does not run
/// (and is reported), and people who share a display name are told apart
/// by their usernames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_works_under_its_security_policy_and_tells_namesakes_apart() {
    let server = TestServer::start();
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let alice = driver.browser(&profile).await;
    sign_up(&alice, &server.base, "alice").await;
    let alice_id = js(&alice, "return fetch('/v1/users/me', {headers: {Authorization: 'Bearer ' + localStorage.getItem('chinwag.token')}}).then(r => r.json()).then(d => d.user.id);").await;
    let bob = server.user("bob").await;
    // Mallory calls herself "bob".
    let (s, _) = server
        .call(
            "POST",
            "/v1/users",
            None,
            Some(json!({"username": "mallory", "password": PASSWORD, "display_name": "bob"})),
        )
        .await;
    assert_eq!(s, 201);
    let mallory_token = server.login("mallory").await;
    let (_, mallory) = server.get("/v1/users/me", &mallory_token).await;
    let (s, group) = server
        .post("/v1/channels", &bob.token, json!({"name": "club", "member_ids": [alice_id, mallory["user"]["id"]]}))
        .await;
    assert_eq!(s, 201, "{group}");
    let group = group["channel"]["id"].as_i64().unwrap();
    let (mut b, _) = server.connect(&bob.token).await;
    let (mut m, _) = server.connect(&mallory_token).await;
    b.send_text(group, "b1", "I am the real bob").await;
    m.send_text(group, "m1", "no, I am bob").await;
    wait_js(&alice, "the group", "document.querySelectorAll('.conv').length === 1").await;
    click(&alice, ".conv").await;
    wait_text(&alice, "no, I am bob").await;
    let names =
        js(&alice, "return [...document.querySelectorAll('#messages .msg .who')].map(e => e.textContent);").await;
    let names: Vec<String> = serde_json::from_value(names).unwrap();
    assert!(names.contains(&"bob (@bob)".to_string()) && names.contains(&"bob (@mallory)".to_string()), "{names:?}");
    send(&alice, "hello both").await;
    wait_js(&alice, "sent", "document.querySelector('#messages .msg.mine')?.dataset.state === 'sent'").await;

    let violations = || server.metric("chinwag_csp_violations_total");
    assert_eq!(violations().await, 0.0, "the page itself broke its policy");
    let ran = js(
        &alice,
        "const s = document.createElement('script'); s.textContent = 'window.injected = true'; \
         document.body.appendChild(s); return window.injected === true;",
    )
    .await;
    assert_eq!(ran, json!(false), "an injected inline script ran");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while violations().await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the violation was not reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    alice.close().await.unwrap();
}

/// A new message adds one element and leaves the others (and the other
/// conversations' rows) as they were; the limits come from the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_message_redraws_only_what_changed() {
    let server = TestServer::start();
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let alice = driver.browser(&profile).await;
    sign_up(&alice, &server.base, "alice").await;
    let asked = "performance.getEntriesByType('resource').some(e => e.name.endsWith('/v1/limits'))";
    wait_js(&alice, "the limits asked of the server", asked).await;
    assert_eq!(js(&alice, "return document.getElementById('auth-username').maxLength;").await, json!(32));
    let me = js(&alice, "return fetch('/v1/users/me', {headers: {Authorization: 'Bearer ' + localStorage.getItem('chinwag.token')}}).then(r => r.json()).then(d => d.user.id);").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let with_bob = server.post("/v1/channels/direct", &bob.token, json!({"user_id": me})).await.1["channel"]["id"]
        .as_i64()
        .unwrap();
    let with_carol = server.post("/v1/channels/direct", &carol.token, json!({"user_id": me})).await.1["channel"]["id"]
        .as_i64()
        .unwrap();
    let (mut b, _) = server.connect(&bob.token).await;
    let (mut c, _) = server.connect(&carol.token).await;
    b.send_text(with_bob, "b1", "first").await;
    c.send_text(with_carol, "c1", "from carol").await;
    wait_js(&alice, "two conversations", "document.querySelectorAll('.conv').length === 2").await;
    click(&alice, &format!(".conv[data-channel-id='{with_bob}']")).await;
    wait_text(&alice, "first").await;
    // Tag the elements on screen; a redraw would lose the tags.
    js(
        &alice,
        &format!(
            "document.querySelector('#messages .msg').tagged = true; \
             document.querySelector(\".conv[data-channel-id='{with_carol}']\").parentElement.tagged = true;"
        ),
    )
    .await;
    b.send_text(with_bob, "b2", "second").await;
    wait_text(&alice, "second").await;
    let kept = js(
        &alice,
        &format!(
            "return [document.querySelectorAll('#messages .msg').length, \
             document.querySelector('#messages .msg').tagged === true, \
             document.querySelector(\".conv[data-channel-id='{with_carol}']\").parentElement.tagged === true];"
        ),
    )
    .await;
    assert_eq!(kept, json!([2, true, true]), "the first message or carol's row was redrawn");
    alice.close().await.unwrap();
}

/// In a cluster the page (served by an api node that holds no sockets)
/// picks a gateway through discovery, within its security policy; when
/// that gateway is killed it moves to the other one and catches up; when
/// every gateway it knew is replaced, it reloads for a policy naming the
/// new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_the_page_moves_to_another_gateway_when_its_own_dies() {
    if cluster::repeated_pass() {
        return;
    }
    let mut cluster = cluster::TestCluster::start(1, 2, &["--presence-offline-grace-ms", "300"]);
    cluster.until_gateways(2).await;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let alice = driver.browser(&profile).await;
    sign_up(&alice, &cluster.api().base, "alice").await;
    wait_js(&alice, "connected", "document.getElementById('banner').hidden").await;
    // Which gateway the page chose; Bob takes the other.
    let mut held = Vec::new();
    for gateway in &cluster.gateways {
        held.push(gateway.metric("chinwag_connections").await);
    }
    let theirs = held.iter().position(|&n| n == 1.0).unwrap_or_else(|| panic!("sockets per gateway: {held:?}"));
    let other = 1 - theirs;
    let bob = cluster.api().user("bob").await;
    let (mut b, _) = cluster.connect(other, &bob.token).await;
    open_direct(&alice, "bob").await;
    send(&alice, "hello across gateways").await;
    let first = b.next_of("message").await;
    assert_eq!(first["text"], "hello across gateways");
    let channel = first["channel_id"].as_i64().unwrap();

    // Alice's gateway dies; Bob writes meanwhile. Discovery still lists
    // the dead gateway for a while: the page tries the other one.
    cluster.gateways[theirs].kill();
    wait_js(&alice, "the reconnect banner", "!document.getElementById('banner').hidden").await;
    b.send_text(channel, "b1", "written while you moved").await;
    wait_js(&alice, "reconnected", "document.getElementById('banner').hidden").await;
    wait_text(&alice, "written while you moved").await;
    assert_eq!(cluster.gateways[other].metric("chinwag_connections").await, 2.0);
    send(&alice, "back on the other gateway").await;
    // (Bob's own message comes back to him first.)
    assert_eq!(b.next_of("message").await["text"], "written while you moved");
    assert_eq!(b.next_of("message").await["text"], "back on the other gateway");
    assert_eq!(
        texts(&alice).await,
        vec!["hello across gateways", "written while you moved", "back on the other gateway"]
    );
    assert_eq!(cluster.api().metric("chinwag_csp_violations_total").await, 0.0, "a gateway was outside the policy");
    std::fs::write(screenshot_dir().join("cluster-chat.png"), alice.screenshot().await.unwrap()).unwrap();

    // Every gateway the page knew is replaced: the new one is outside the
    // page's policy, so the page loads again and connects to it.
    cluster.add_gateway("gw-2");
    cluster.gateways[other].kill();
    drop(b);
    wait_js(&alice, "the reconnect banner", "!document.getElementById('banner').hidden").await;
    let bob_again = cluster.api().login("bob").await;
    let (mut b, _) = cluster.connect(2, &bob_again).await;
    b.send_text(channel, "b2", "on a gateway born later").await;
    // (Until the reload the old page still shows its list, and the new
    // page's banner is hidden before it starts: wait for the reloaded
    // page's list, which it draws once connected.)
    let conversation = format!(".conv[data-channel-id='{channel}']");
    let reloaded = format!(
        "performance.getEntriesByType('navigation')[0].type === 'reload' && document.querySelector(\"{conversation}\")"
    );
    wait_js(&alice, "reloaded and connected", &reloaded).await;
    click(&alice, &conversation).await;
    wait_text(&alice, "on a gateway born later").await;
    let navigation = js(&alice, "return performance.getEntriesByType('navigation')[0].type;").await;
    assert_eq!(navigation, json!("reload"));
    alice.close().await.unwrap();
}

/// Photos and files in the page: Alice attaches an image and a PDF with
/// the file picker and sends them; Bob sees the thumbnail (sized before
/// it loads) and the file card, and opens the full image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_and_files_are_attached_shown_and_opened() {
    let server = TestServer::start();
    let driver = ChromeDriver::start();
    let (alice_profile, bob_profile) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = driver.browser(&alice_profile).await;
    let bob = driver.browser(&bob_profile).await;
    sign_up(&alice, &server.base, "alice").await;
    sign_up(&bob, &server.base, "bob").await;
    open_direct(&alice, "bob").await;

    let files = tempfile::tempdir().unwrap();
    let photo = files.path().join("holiday.png");
    std::fs::write(&photo, chinwag_media::testdata::png(640, 480)).unwrap();
    let pdf = files.path().join("report.pdf");
    std::fs::write(&pdf, b"%PDF-1.7\n% a report\n".repeat(50)).unwrap();
    let picker = alice.find(Locator::Css("#attach-input")).await.unwrap();
    picker.send_keys(&format!("{}\n{}", photo.display(), pdf.display())).await.unwrap();
    wait_js(&alice, "both uploaded", "document.querySelectorAll('#uploads .upload[data-state=ready]').length === 2")
        .await;
    send(&alice, "holiday pics").await;
    wait_js(&alice, "sent", "document.querySelector('#messages .msg.mine')?.dataset.state === 'sent'").await;
    wait_js(&alice, "the tray emptied", "document.getElementById('uploads').hidden").await;

    wait_js(&bob, "the new conversation", "document.querySelector('.conv .badge')?.textContent === '1'").await;
    click(&bob, ".conv").await;
    wait_js(
        &bob,
        "the thumbnail's place kept",
        "document.querySelector('#messages .photo img')?.getAttribute('height') === '240'",
    )
    .await;
    wait_js(
        &bob,
        "the thumbnail",
        "(() => { const i = document.querySelector('#messages .photo img'); return i && i.complete && i.naturalWidth === 320; })()",
    )
    .await;
    wait_js(&bob, "the file card", "document.querySelector('#messages .file .name')?.textContent === '📎 report.pdf'")
        .await;
    assert_eq!(
        js(&bob, "return document.querySelector('#messages .file').getAttribute('download');").await,
        json!("report.pdf")
    );
    wait_text(&bob, "holiday pics").await;
    click(&bob, "#messages .photo").await;
    wait_js(
        &bob,
        "the full image",
        "document.getElementById('viewer').open && document.getElementById('viewer-image').naturalWidth === 640",
    )
    .await;
    std::fs::write(screenshot_dir().join("photo-viewer.png"), bob.screenshot().await.unwrap()).unwrap();
    click(&bob, "#viewer-close").await;
    std::fs::write(screenshot_dir().join("photos-and-files.png"), bob.screenshot().await.unwrap()).unwrap();
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// Shows a message's actions the way a long press does on a phone.
async fn show_actions(b: &Browser, text: &str) {
    let script = format!(
        "const li = [...document.querySelectorAll('#messages .msg')].find(m => m.querySelector('.text').textContent === {});
         li.dispatchEvent(new MouseEvent('contextmenu', {{bubbles: true, cancelable: true}}));
         return li.classList.contains('show-actions');",
        serde_json::to_string(text).unwrap()
    );
    assert_eq!(js(b, &script).await, json!(true), "actions of {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletes_replies_and_reactions_reach_the_other_browser_live_and_after_being_offline() {
    let server = TestServer::start();
    let driver = ChromeDriver::start();
    let (alice_profile, bob_profile) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = driver.browser(&alice_profile).await;
    let bob = driver.browser(&bob_profile).await;
    sign_up(&alice, &server.base, "alice").await;
    sign_up(&bob, &server.base, "bob").await;
    open_direct(&alice, "bob").await;
    send(&alice, "helo").await;
    send(&alice, "second thought").await;
    wait_js(&alice, "both sent", "(() => { const m = [...document.querySelectorAll('#messages .msg.mine')]; return m.length === 2 && m.every(x => x.dataset.id); })()")
        .await;
    wait_js(&bob, "the conversation", "document.querySelector('.conv')").await;
    click(&bob, ".conv").await;
    wait_text(&bob, "second thought").await;

    // Up arrow edits the last own message; here the first one, picked from its actions.
    show_actions(&alice, "helo").await;
    click(&alice, "#messages .msg.show-actions .act-edit").await;
    wait_js(&alice, "the edit bar", "!document.getElementById('composer-context').hidden").await;
    type_into(&alice, "#composer-text", "hello").await;
    alice.find(Locator::Css("#composer-text")).await.unwrap().send_keys(ENTER).await.unwrap();
    wait_text(&bob, "hello").await;
    wait_js(
        &bob,
        "the edited label",
        "[...document.querySelectorAll('#messages .meta')].some(m => m.textContent.includes('edited'))",
    )
    .await;
    let up = alice.find(Locator::Css("#composer-text")).await.unwrap();
    up.send_keys("\u{E013}").await.unwrap();
    wait_js(
        &alice,
        "Up arrow edits the last one",
        "document.getElementById('composer-text').value === 'second thought'",
    )
    .await;
    up.send_keys("\u{E00C}").await.unwrap();
    wait_js(
        &alice,
        "Esc cancels",
        "document.getElementById('composer-context').hidden && !document.getElementById('composer-text').value",
    )
    .await;

    // Bob reacts from the picker and replies; alice sees both live.
    show_actions(&bob, "hello").await;
    click(&bob, "#messages .msg.show-actions .act-react").await;
    wait_js(&bob, "the picker", "!document.getElementById('emoji-picker').hidden").await;
    click(&bob, "#emoji-picker .emoji-choice[data-emoji='👍']").await;
    wait_js(&alice, "the reaction", "document.querySelector('#messages .reaction')?.textContent === '👍 1'").await;
    assert_eq!(js(&alice, "return document.querySelector('#messages .reaction').title;").await, json!("bob"));
    show_actions(&bob, "hello").await;
    click(&bob, "#messages .msg.show-actions .act-reply").await;
    send(&bob, "quoting you").await;
    wait_text(&alice, "quoting you").await;
    wait_js(&alice, "the quote", "document.querySelector('#messages .quote')?.textContent === 'alice: hello'").await;
    click(&alice, "#messages .quote").await;
    wait_js(
        &alice,
        "the quoted message shown",
        "document.querySelector('#messages .msg.highlight .text')?.textContent === 'hello'",
    )
    .await;
    // Bob takes his reaction back by pressing it.
    click(&bob, "#messages .reaction").await;
    wait_js(&alice, "the reaction gone", "!document.querySelector('#messages .reaction')").await;

    // Bob's browser goes offline; alice edits, deletes and reacts meanwhile.
    js(&bob, "window.dispatchEvent(new Event('offline')); return 1;").await;
    wait_js(&bob, "the offline banner", "document.getElementById('banner').textContent.startsWith('Offline')").await;
    show_actions(&alice, "second thought").await;
    click(&alice, "#messages .msg.show-actions .act-delete").await;
    click(&alice, "#messages .msg.show-actions .act-delete").await;
    wait_js(
        &alice,
        "the tombstone",
        "[...document.querySelectorAll('#messages .msg.deleted .text')].some(t => t.textContent === 'Message deleted')",
    )
    .await;
    show_actions(&alice, "quoting you").await;
    click(&alice, "#messages .msg.show-actions .act-react").await;
    click(&alice, "#emoji-picker .emoji-choice[data-emoji='🎉']").await;
    show_actions(&alice, "hello").await;
    click(&alice, "#messages .msg.show-actions .act-edit").await;
    type_into(&alice, "#composer-text", "hello again").await;
    alice.find(Locator::Css("#composer-text")).await.unwrap().send_keys(ENTER).await.unwrap();
    wait_text(&alice, "hello again").await;
    assert!(texts(&bob).await.contains(&"second thought".to_string()), "bob is really offline");

    js(&bob, "window.dispatchEvent(new Event('online')); return 1;").await;
    wait_text(&bob, "hello again").await;
    wait_js(
        &bob,
        "the tombstone",
        "[...document.querySelectorAll('#messages .msg.deleted .text')].some(t => t.textContent === 'Message deleted')",
    )
    .await;
    wait_js(&bob, "alice's reaction", "document.querySelector('#messages .reaction')?.textContent === '🎉 1'").await;
    wait_js(
        &bob,
        "the quote follows the edit",
        "document.querySelector('#messages .quote')?.textContent === 'alice: hello again'",
    )
    .await;
    assert!(!texts(&bob).await.contains(&"second thought".to_string()));
    std::fs::write(screenshot_dir().join("edits-and-reactions.png"), bob.screenshot().await.unwrap()).unwrap();
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// B1 and B6: over plain HTTP on a name other than localhost (not a secure
/// context, so no `crypto.randomUUID`) the page sends, says why there are
/// no notifications, and a "typing" line ends when that message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lan_name_over_plain_http_sends_and_typing_ends_with_the_message() {
    let server = TestServer::start();
    let driver = ChromeDriver::start();
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let (alice_profile, bob_profile) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let alice = driver.browser_with(&alice_profile, &["--host-resolver-rules=MAP chat.example.test 127.0.0.1"]).await;
    let bob = driver.browser(&bob_profile).await;
    sign_up(&alice, &format!("http://chat.example.test:{port}"), "alice").await;
    assert_eq!(js(&alice, "return window.isSecureContext;").await, json!(false));
    wait_js(
        &alice,
        "the reason there are no notifications",
        "document.getElementById('notify').textContent === 'Notifications need HTTPS'",
    )
    .await;
    sign_up(&bob, &server.base, "bob").await;
    open_direct(&alice, "bob").await;
    send(&alice, "hello from the LAN").await;
    wait_js(&alice, "sent", "document.querySelector('#messages .msg.mine')?.dataset.state === 'sent'").await;
    wait_js(&bob, "the conversation", "document.querySelector('.conv')").await;
    click(&bob, ".conv").await;
    wait_text(&bob, "hello from the LAN").await;

    // Bob types, then sends: alice's "typing" line goes with the message.
    let composer = bob.find(Locator::Css("#composer-text")).await.unwrap();
    composer.send_keys("an answer").await.unwrap();
    wait_js(&alice, "bob typing", "document.getElementById('typing').textContent.includes('typing')").await;
    composer.send_keys(ENTER).await.unwrap();
    wait_text(&alice, "an answer").await;
    assert_eq!(js(&alice, "return document.getElementById('typing').textContent;").await, json!(""));
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// A TCP proxy that can stop forwarding without closing anything: the
/// network stalls (Wi-Fi gone, a laptop lid, a NAT dropping state).
struct StallingProxy {
    addr: std::net::SocketAddr,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StallingProxy {
    async fn start(target: std::net::SocketAddr) -> StallingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stalled.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    let (from_client, to_client) = inbound.into_split();
                    let (from_server, to_server) = outbound.into_split();
                    tokio::join!(forward(from_client, to_server, flag.clone()), forward(from_server, to_client, flag));
                });
            }
        });
        StallingProxy { addr, stalled }
    }

    fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies bytes one way, holding them while the proxy is stalled.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// B2: a network that stalls without closing anything is noticed within
/// the heartbeat timeout (not a minute later), and the page catches up
/// once traffic flows again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_network_is_noticed_within_the_heartbeat_timeout() {
    let server = TestServer::start_with(&["--heartbeat-interval-ms", "1000", "--heartbeat-timeout-ms", "3000"]);
    let target: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let proxy = StallingProxy::start(target).await;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let alice = driver.browser(&profile).await;
    sign_up(&alice, &format!("http://{}", proxy.addr), "alice").await;
    wait_js(&alice, "connected", "document.getElementById('banner').hidden").await;
    let bob = server.user("bob").await;
    open_direct(&alice, "bob").await;
    let channel = direct_with(&server, &bob.token, "alice").await;

    proxy.stall(true);
    let stalled_at = tokio::time::Instant::now();
    wait_js(&alice, "the lost connection shown", "!document.getElementById('banner').hidden").await;
    let noticed = stalled_at.elapsed();
    assert!(noticed < Duration::from_secs(8), "a stalled network went unnoticed for {noticed:?}");
    let (status, _) = server
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &bob.token,
            json!({"client_msg_id": "s1", "text": "sent while you stalled"}),
        )
        .await;
    assert_eq!(status, 201);
    proxy.stall(false);
    wait_text(&alice, "sent while you stalled").await;
    wait_js(&alice, "connected again", "document.getElementById('banner').hidden").await;
    alice.close().await.unwrap();
}

/// B5, B7, B8, B12, B16: long previews stay inside the sidebar, the
/// connection banner does not cover the header, the composer grows, the
/// login page does not scroll and empty error lines take no room, the
/// page has an icon, and a forced sign-out says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layout_holds_and_a_forced_sign_out_says_why() {
    let server = TestServer::start();
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let alice = driver.browser(&profile).await;
    alice.goto(&server.base).await.unwrap();
    wait_js(&alice, "the auth form", "!document.getElementById('auth-view').hidden").await;
    assert_eq!(
        js(&alice, "return document.documentElement.scrollHeight <= window.innerHeight;").await,
        json!(true),
        "the login page scrolls"
    );
    let icon = js(&alice, "return fetch(document.querySelector('link[rel=icon]').href).then(r => r.status + ' ' + r.headers.get('content-type'));").await;
    assert_eq!(icon, json!("200 image/svg+xml"));
    sign_up(&alice, &server.base, "alice").await;
    let bob = server.user("bob").await;
    open_direct(&alice, "bob").await;
    assert_eq!(js(&alice, "return document.getElementById('composer-error').offsetHeight;").await, json!(0));
    let channel = direct_with(&server, &bob.token, "alice").await;
    let long = "a-very-long-word-".repeat(60);
    let (status, _) = server
        .post(&format!("/v1/channels/{channel}/messages"), &bob.token, json!({"client_msg_id": "l1", "text": long}))
        .await;
    assert_eq!(status, 201);
    wait_text(&alice, &long).await;
    let sidebar =
        js(&alice, "const s = document.getElementById('sidebar'); return [s.scrollWidth, s.clientWidth];").await;
    assert!(sidebar[0].as_i64() <= sidebar[1].as_i64(), "the sidebar overflows: {sidebar}");

    // The composer grows with its lines, up to its limit.
    let heights = js(
        &alice,
        "const t = document.getElementById('composer-text'); const one = t.offsetHeight;
         t.value = 'one\\ntwo\\nthree'; t.dispatchEvent(new Event('input'));
         const three = t.offsetHeight;
         t.value = 'x\\n'.repeat(40); t.dispatchEvent(new Event('input'));
         const many = t.offsetHeight; t.value = ''; t.dispatchEvent(new Event('input'));
         return [one, three, many, t.offsetHeight];",
    )
    .await;
    let h: Vec<i64> = serde_json::from_value(heights).unwrap();
    assert!(h[1] > h[0] && h[2] > h[1] && h[2] <= 200 && h[3] == h[0], "composer heights {h:?}");

    // The banner sits above the layout instead of covering the header.
    js(&alice, "window.dispatchEvent(new Event('offline')); return 1;").await;
    wait_js(&alice, "the banner", "!document.getElementById('banner').hidden").await;
    let overlap = js(
        &alice,
        "return document.getElementById('banner').getBoundingClientRect().bottom <= document.querySelector('#chat .bar').getBoundingClientRect().top;",
    )
    .await;
    assert_eq!(overlap, json!(true), "the banner covers the header");
    js(&alice, "window.dispatchEvent(new Event('online')); return 1;").await;
    wait_js(&alice, "connected again", "document.getElementById('banner').hidden").await;

    // An operator disables the account: the page says so.
    let (ok, out) = server.admin(&["disable", "alice"]);
    assert!(ok, "{out}");
    wait_js(&alice, "the login form", "!document.getElementById('auth-view').hidden").await;
    wait_js(&alice, "the reason", "document.getElementById('auth-error').textContent.includes('disabled')").await;
    assert_eq!(js(&alice, "return document.getElementById('auth-title').textContent;").await, json!("Log in"));
    std::fs::write(screenshot_dir().join("signed-out-with-a-reason.png"), alice.screenshot().await.unwrap()).unwrap();
    alice.close().await.unwrap();
}

/// B13, B15: in a group, one's message says how many have seen it (and
/// who) until all have; search results go on past the first page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_read_state_and_search_beyond_one_page() {
    let server = TestServer::start();
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let alice = driver.browser(&profile).await;
    sign_up(&alice, &server.base, "alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let alice_id = server.get("/v1/users?username=alice", &bob.token).await.1["user"]["id"].as_i64().unwrap();
    let (status, group) =
        server.post("/v1/channels", &bob.token, json!({"name": "trio", "member_ids": [alice_id, carol.id]})).await;
    assert_eq!(status, 201, "{group}");
    let channel = group["channel"]["id"].as_i64().unwrap();
    for n in 0..25 {
        let body = json!({"client_msg_id": format!("n{n}"), "text": format!("needle number {n}")});
        assert_eq!(server.post(&format!("/v1/channels/{channel}/messages"), &bob.token, body).await.0, 201);
    }
    wait_js(&alice, "the group", "document.querySelector('.conv')").await;
    click(&alice, ".conv").await;
    wait_text(&alice, "needle number 24").await;
    send(&alice, "who saw this?").await;
    wait_js(&alice, "sent", "document.querySelector('#messages .msg.mine')?.dataset.state === 'sent'").await;
    let mine = "document.querySelector('#messages .msg.mine .meta')";
    let read = |token: &str| {
        let token = token.to_owned();
        let server = &server;
        async move {
            let (status, _) = server
                .call("PUT", &format!("/v1/channels/{channel}/read"), Some(&token), Some(json!({"message_id": 26})))
                .await;
            assert_eq!(status, 204);
        }
    };
    read(&bob.token).await;
    wait_js(&alice, "seen by one", &format!("{mine}.textContent.endsWith('seen by 1 of 2')")).await;
    assert_eq!(js(&alice, &format!("return {mine}.title;")).await, json!("Seen by bob"));
    read(&carol.token).await;
    wait_js(&alice, "seen by all", &format!("{mine}.textContent.endsWith('seen by all')")).await;
    assert_eq!(js(&alice, "return document.querySelector('#messages .msg.mine').dataset.state;").await, json!("seen"));

    // Search: 20 at first, then the rest.
    type_into(&alice, "#search-input", "needle").await;
    click(&alice, "#search-form button").await;
    wait_js(&alice, "a first page", "document.querySelectorAll('#search-results .hit[data-channel-id]').length === 20")
        .await;
    click(&alice, "#search-results .more-results").await;
    wait_js(&alice, "every result", "document.querySelectorAll('#search-results .hit[data-channel-id]').length === 25")
        .await;
    assert_eq!(js(&alice, "return !!document.querySelector('#search-results .more-results');").await, json!(false));
    alice.close().await.unwrap();
}
