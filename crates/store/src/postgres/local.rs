//! A private PostgreSQL server in a temporary directory: `initdb`, then
//! `postgres` on a free loopback port. Tests and `chinwag bench` use it so
//! they run against a real engine without any setup on the machine
//! (Debian's `postgresql` package provides the binaries).
//!
//! PostgreSQL refuses to run as root, so when this process is root the
//! server runs as the `postgres` user the Debian package creates.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a private server could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalPostgresError {
    #[error("PostgreSQL binaries not found (install Debian's `postgresql`): looked in /usr/lib/postgresql/*/bin")]
    NotInstalled,
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("`{0}` failed: {1}")]
    Command(&'static str, String),
    #[error("PostgreSQL did not accept connections within 30 s")]
    NotReady,
}

/// A running private server; stopped (and its files removed) on drop.
pub struct LocalPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    durable: bool,
    child: Option<Child>,
    /// Stops the server and removes its files if this process dies
    /// without dropping it (a static in a test binary is never dropped).
    watchdog: Option<Child>,
}

/// The newest installed major version's `bin` directory.
fn binaries() -> Result<PathBuf, LocalPostgresError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| LocalPostgresError::NotInstalled)?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().ok_or(LocalPostgresError::NotInstalled)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let mut fields = line.split(':').skip(2);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// A command run as the server's user (itself, not through a wrapper,
/// so signals reach it).
fn as_server_user(program: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(program);
    if is_root() {
        if let Some((uid, gid)) = postgres_user() {
            command.uid(uid).gid(gid);
        }
    }
    command
}

fn free_port() -> Result<u16, LocalPostgresError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| LocalPostgresError::Io("finding a free port", e))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| LocalPostgresError::Io("finding a free port", e))
}

impl LocalPostgres {
    /// Creates a cluster and starts it. `durable: false` turns fsync off
    /// (fine for tests: a killed chinwag or PostgreSQL process loses
    /// nothing from the page cache); benchmarks run with `durable: true`.
    ///
    /// Blocking (it waits for processes): call it before async work or on
    /// a blocking thread.
    pub fn start(durable: bool) -> Result<LocalPostgres, LocalPostgresError> {
        let bin = binaries()?;
        let dir = tempfile::Builder::new()
            .prefix("chinwag-pg-")
            .tempdir()
            .map_err(|e| LocalPostgresError::Io("creating the data directory", e))?;
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map_err(|e| LocalPostgresError::Io("chown", e))?;
            if !status.success() {
                return Err(LocalPostgresError::Command("chown", status.to_string()));
            }
        }
        let data = dir.path().join("data");
        let out = as_server_user(&bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| LocalPostgresError::Io("running initdb", e))?;
        if !out.status.success() {
            return Err(LocalPostgresError::Command("initdb", String::from_utf8_lossy(&out.stderr).into_owned()));
        }
        let mut server = LocalPostgres { dir, bin, port: free_port()?, durable, child: None, watchdog: None };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), LocalPostgresError> {
        let data = self.dir.path().join("data");
        let fsync = if self.durable { "on" } else { "off" };
        let log = std::fs::File::create(self.dir.path().join("postgres.log"))
            .map_err(|e| LocalPostgresError::Io("creating the server log", e))?;
        let child = as_server_user(&self.bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.path().display()))
            .args(["-c", &format!("fsync={fsync}"), "-c", "max_connections=200", "-c", "shared_buffers=1GB"])
            // Checkpoints far apart (as a production server is tuned): no
            // burst of full-page writes every few seconds under load.
            .args(["-c", "max_wal_size=8GB", "-c", "checkpoint_timeout=15min"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| LocalPostgresError::Io("starting postgres", e))?;
        let script = format!(
            "while kill -0 {owner} 2>/dev/null; do sleep 1; done; kill -INT {server} 2>/dev/null; sleep 3; rm -rf '{dir}'",
            owner = std::process::id(),
            server = child.id(),
            dir = self.dir.path().display(),
        );
        self.child = Some(child);
        if let Some(mut old) = self.watchdog.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        self.watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        self.wait_ready()
    }

    #[allow(clippy::disallowed_methods, reason = "start() is documented as blocking; no runtime thread runs it")]
    fn wait_ready(&mut self) -> Result<(), LocalPostgresError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
                return Err(LocalPostgresError::Command("postgres", format!("exited with {status}: {log}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(LocalPostgresError::NotReady)
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, LocalPostgresError> {
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", name])
            .output()
            .map_err(|e| LocalPostgresError::Io("running createdb", e))?;
        if !out.status.success() {
            return Err(LocalPostgresError::Command("createdb", String::from_utf8_lossy(&out.stderr).into_owned()));
        }
        Ok(self.url(name))
    }

    /// Stops the server at once (SIGKILL-like immediate shutdown: clients
    /// see their connections drop). `start_again` brings it back on the
    /// same port with the same data.
    pub fn stop_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT is PostgreSQL's immediate shutdown; `kill` avoids
            // unsafe signal calls here.
            let _ = Command::new("kill").args(["-QUIT", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    /// Starts the server again after `stop_now`.
    pub fn start_again(&mut self) -> Result<(), LocalPostgresError> {
        self.spawn()
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if let Some(mut child) = self.child.take() {
            // SIGINT: fast shutdown (disconnect clients, stop cleanly).
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}
