//! The server under test: one this tool starts (the `chinwag` binary on a
//! temp data dir, so it can also read its memory), or one already running.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct ServerUnderTest {
    pub base_url: String,
    child: Option<Child>,
    pid: Option<u32>,
    /// Where the store's files live (for the fsync probe), when known.
    pub data_dir: Option<PathBuf>,
    _temp: Option<TempDir>,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl ServerUnderTest {
    /// Starts `exe serve` on a free port with load-friendly limits.
    pub fn start(exe: &Path, data_dir: Option<PathBuf>, extra_args: &[String]) -> Result<Self> {
        let (dir, temp) = match data_dir {
            Some(dir) => (dir, None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "chinwag-bench-{}-{}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                (dir.clone(), Some(TempDir(dir)))
            }
        };
        let mut child = Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .args(extra_args)
            // The benchmark measures the engine, not the abuse limits (set
            // through the environment, so `--server-arg` flags still win).
            .envs(bench_config().env_vars())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("chinwag listening on ") else {
            let _ = child.kill();
            bail!("server did not start: {line:?}");
        };
        Ok(ServerUnderTest {
            base_url: url.to_owned(),
            pid: Some(child.id()),
            child: Some(child),
            data_dir: Some(dir),
            _temp: temp,
        })
    }

    /// A server someone else runs; `pid` enables memory figures.
    pub fn external(base_url: &str, pid: Option<u32>) -> Self {
        ServerUnderTest {
            base_url: base_url.trim_end_matches('/').to_owned(),
            child: None,
            pid,
            data_dir: None,
            _temp: None,
        }
    }

    /// Resident memory of the server process, when it can be read.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_of(self.pid?)
    }

    /// The server's process id, when known.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
}

impl Drop for ServerUnderTest {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `VmRSS` of a process, in bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The test settings with every per-user and per-address limit lifted too:
/// the load generator is one user on many sockets, from a few addresses.
fn bench_config() -> chinwag_server::ServerConfig {
    let many = 1_000_000;
    chinwag_server::ServerConfig {
        send_rate_per_s: many,
        send_burst: many,
        typing_rate_per_s: many,
        max_connections_per_ip: many as usize,
        max_connections_per_user: many as usize,
        max_channels_per_user: many as usize,
        ..chinwag_server::ServerConfig::for_test()
    }
}
