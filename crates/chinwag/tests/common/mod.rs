//! End-to-end harness: the real `chinwag` binary on a free loopback port,
//! driven by real HTTP and WebSocket clients.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod cluster;

pub const PASSWORD: &str = "correct horse battery";

/// A running server process and its data directory.
pub struct TestServer {
    child: Option<Child>,
    pub base: String,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    args: Vec<String>,
    pub http: reqwest::Client,
    /// `--store URL` when the suite runs on PostgreSQL (kept across restarts).
    store: Vec<String>,
    /// Environment of the process (beyond the test settings).
    env: Vec<(String, String)>,
}

/// Whether this run's servers keep their data in PostgreSQL
/// (`CHINWAG_TEST_STORE=postgres`) instead of the embedded store.
pub fn on_postgres() -> bool {
    std::env::var("CHINWAG_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// A fresh database on this test binary's private PostgreSQL, as `--store`
/// flags; none on the embedded store.
fn store_args() -> Vec<String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SERVER: std::sync::OnceLock<chinwag_store::postgres::LocalPostgres> = std::sync::OnceLock::new();
    static DATABASES: AtomicUsize = AtomicUsize::new(0);
    if !on_postgres() {
        return Vec::new();
    }
    let server = SERVER
        .get_or_init(|| chinwag_store::postgres::LocalPostgres::start(false).expect("start a private PostgreSQL"));
    let name = format!("e2e_{}", DATABASES.fetch_add(1, Ordering::SeqCst));
    vec!["--store".into(), server.create_database(&name).expect("create a database")]
}

impl TestServer {
    /// Starts a server on a fresh data directory with extra flags.
    pub fn start_with(args: &[&str]) -> TestServer {
        Self::start_in(tempfile::tempdir().expect("temp dir"), args)
    }

    /// Starts a server with extra flags and environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let mut server = Self::prepare(tempfile::tempdir().expect("temp dir"), args);
        server.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        server.spawn();
        server
    }

    /// Starts a server on a prepared data directory (which it then owns).
    pub fn start_in(temp: tempfile::TempDir, args: &[&str]) -> TestServer {
        let mut server = Self::prepare(temp, args);
        server.spawn();
        server
    }

    fn prepare(temp: tempfile::TempDir, args: &[&str]) -> TestServer {
        let dir = temp.path().to_path_buf();
        TestServer {
            child: None,
            base: String::new(),
            dir,
            _temp: Some(temp),
            args: args.iter().map(|s| s.to_string()).collect(),
            http: reqwest::Client::new(),
            // A test that names its own store keeps it.
            store: if args.contains(&"--store") { Vec::new() } else { store_args() },
            env: Vec::new(),
        }
    }

    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    fn spawn(&mut self) {
        self.spawn_on("127.0.0.1:0");
    }

    fn spawn_on(&mut self, listen: &str) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chinwag"))
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(&self.dir)
            .args(&self.args)
            .args(&self.store)
            // Tests sign up and log in many users from one address; the
            // limits themselves are tested with flags, which win over these.
            .envs(chinwag_server::ServerConfig::for_test().env_vars())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", std::env::var("CHINWAG_TEST_LOG").unwrap_or("warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chinwag");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read address line");
        let url = line
            .trim()
            .strip_prefix("chinwag listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        self.base = url;
        self.child = Some(child);
    }

    pub fn ws_url(&self) -> String {
        format!("{}/v1/ws", self.base.replace("http://", "ws://"))
    }

    /// Flags for the next (re)start.
    pub fn set_args(&mut self, args: &[&str]) {
        self.args = args.iter().map(|s| s.to_string()).collect();
    }

    /// The server process's id (for /proc readings).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Runs `chinwag admin` against this server; (success, stdout+stderr).
    pub fn admin(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_chinwag"))
            .arg("admin")
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run chinwag admin");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Starts again on the same data directory (a new port).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts again on the same data directory and the same port, so that
    /// clients reconnect to where they were.
    pub fn restart_same_port(&mut self) {
        self.kill();
        let addr = self.base.trim_start_matches("http://").to_string();
        self.spawn_on(&addr);
    }

    /// One unlabelled value from this node's `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.call("GET", "/metrics", None, None).await;
        let text = text.as_str().expect("metrics text");
        let value = text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok());
        value.unwrap_or_else(|| panic!("no {name} in metrics"))
    }

    /// Any HTTP call; returns status and JSON body (`null` when empty).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(token), Some(body)).await
    }

    /// `GET url` (absolute, or relative to the server), with a token or none.
    pub async fn fetch(&self, url: &str, token: Option<&str>, range: Option<&str>) -> reqwest::Response {
        let url = if url.starts_with('/') { format!("{}{url}", self.base) } else { url.to_owned() };
        let mut request = self.http.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(range) = range {
            request = request.header(reqwest::header::RANGE, range);
        }
        request.send().await.expect("fetch")
    }

    /// `POST /v1/uploads`; status and body.
    pub async fn upload(&self, token: &str, name: &str, content_type: &str, bytes: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/uploads", self.base))
            .query(&[("filename", name)])
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes)
            .send()
            .await
            .expect("upload");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Signs up and logs in; returns the user's id and a device token.
    pub async fn user(&self, name: &str) -> Account {
        let (status, body) =
            self.call("POST", "/v1/users", None, Some(json!({"username": name, "password": PASSWORD}))).await;
        assert_eq!(status, 201, "signup {name}: {body}");
        let id = body["user"]["id"].as_i64().expect("user id");
        let token = self.login(name).await;
        Account { id, name: name.to_string(), token }
    }

    /// A new device token for an existing user.
    pub async fn login(&self, name: &str) -> String {
        let (status, body) =
            self.call("POST", "/v1/sessions", None, Some(json!({"username": name, "password": PASSWORD}))).await;
        assert_eq!(status, 201, "login {name}: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// A WebSocket authenticated with `token`, past its `ready` frame.
    pub async fn connect(&self, token: &str) -> (Client, Value) {
        let mut client = Client::open(&self.ws_url()).await;
        client.send(json!({"type": "auth", "token": token})).await;
        let ready = client.next().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        (client, ready)
    }

    /// The setup most conversation tests start from: alice, bob and
    /// their direct channel.
    pub async fn alice_and_bob(&self) -> (Account, Account, i64) {
        let alice = self.user("alice").await;
        let bob = self.user("bob").await;
        let channel = self.direct(&alice, &bob).await;
        (alice, bob, channel)
    }

    pub async fn direct(&self, a: &Account, b: &Account) -> i64 {
        let (status, body) = self.post("/v1/channels/direct", &a.token, json!({"user_id": b.id})).await;
        assert!(status == 200 || status == 201, "{body}");
        body["channel"]["id"].as_i64().unwrap()
    }

    pub async fn group(&self, creator: &Account, members: &[&Account]) -> i64 {
        let ids: Vec<i64> = members.iter().map(|m| m.id).collect();
        let (status, body) =
            self.post("/v1/channels", &creator.token, json!({"name": "group", "member_ids": ids})).await;
        assert_eq!(status, 201, "{body}");
        body["channel"]["id"].as_i64().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Account {
    pub id: i64,
    pub name: String,
    pub token: String,
}

/// A WebSocket client speaking JSON frames.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read while looking for another one, handed out first.
    pending: std::collections::VecDeque<Value>,
}

/// How long a test waits for an expected frame.
pub const WAIT: Duration = Duration::from_secs(10);

impl Client {
    pub async fn open(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws connect");
        Client::from_stream(ws)
    }

    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client { ws, pending: Default::default() }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Ws::text(frame.to_string())).await.expect("ws send");
    }

    pub async fn send_raw(&mut self, msg: Ws) {
        self.ws.send(msg).await.expect("ws send raw");
    }

    /// The next JSON frame (answering pings); panics on close or timeout.
    pub async fn next(&mut self) -> Value {
        match self.next_within(WAIT).await {
            Some(Ok(v)) => v,
            Some(Err(close)) => panic!("socket closed: {close:?}"),
            None => panic!("no frame within {WAIT:?}"),
        }
    }

    /// The next frame, or the close code and reason, or `None` on timeout.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Result<Value, (Option<u16>, String)>> {
        if let Some(frame) = self.pending.pop_front() {
            return Some(Ok(frame));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()?;
            match msg {
                Some(Ok(Ws::Text(t))) => return Some(Ok(serde_json::from_str(&t).expect("json frame"))),
                Some(Ok(Ws::Close(frame))) => {
                    return Some(Err(frame
                        .map(|f| (Some(u16::from(f.code)), f.reason.to_string()))
                        .unwrap_or((None, String::new()))))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Some(Err((None, e.to_string()))),
                None => return Some(Err((None, "stream ended".into()))),
            }
        }
    }

    /// Skips frames until one of type `kind` arrives.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.next_within(WAIT).await {
                Some(Ok(_)) => continue,
                Some(Err((code, _))) => return code,
                None => panic!("socket not closed within {WAIT:?}"),
            }
        }
    }

    /// Asserts nothing of type `kind` arrives within `wait`.
    pub async fn quiet(&mut self, kind: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Some(Ok(frame)) = self.next_within(deadline - tokio::time::Instant::now()).await {
            assert_ne!(frame["type"], kind, "unexpected frame {frame}");
        }
    }

    /// Sends `text` and waits for its ack (or error); other frames that
    /// arrive meanwhile stay queued for `next`.
    pub async fn send_text(&mut self, channel: i64, cmid: &str, text: &str) -> Value {
        self.send(json!({"type": "send", "client_msg_id": cmid, "channel_id": channel, "text": text})).await;
        let mut skipped = Vec::new();
        let answer = loop {
            let frame = self.next().await;
            if (frame["type"] == "ack" && frame["client_msg_id"] == cmid) || frame["type"] == "error" {
                break frame;
            }
            skipped.push(frame);
        };
        self.pending.extend(skipped);
        answer
    }
}

/// A local webhook receiver that answers 204 and counts requests.
pub async fn counting_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("receiver address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// Runs `chinwag serve` with `args` on a fresh data dir, expecting it to
/// refuse to start; returns what it said on stderr.
pub fn serve_refuses(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run chinwag serve");
    assert!(!out.status.success(), "started with {args:?}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

pub fn close_code(code: CloseCode) -> u16 {
    code.into()
}

/// The next `count` events of an SDK client that `pick` keeps (others are
/// skipped), each within 20 s.
pub async fn sdk_events<T>(
    client: &mut chinwag_client::Client,
    count: usize,
    pick: impl Fn(chinwag_client::Event) -> Option<T>,
) -> Vec<T> {
    let mut got = Vec::new();
    while got.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(20), client.next_event())
            .await
            .expect("event in time")
            .expect("client open");
        got.extend(pick(event));
    }
    got
}
