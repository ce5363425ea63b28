//! The dependency rule of docs/architecture.md, checked: each crate
//! depends only on the crates above it, and no crate but the binary names
//! a backend (the roles see only the seams' traits).

use std::path::{Path, PathBuf};

/// The crates in layer order and the chinwag crates each may use.
const RULE: &[(&str, &[&str])] = &[
    ("proto", &[]),
    ("store", &["proto"]),
    ("bus", &["proto"]),
    ("media", &["proto"]),
    ("server", &["proto", "store", "bus", "media"]),
    ("client", &["proto"]),
    ("bench", &["proto", "client", "server"]),
    ("chinwag", &["proto", "store", "bus", "media", "server", "client", "bench"]),
];

/// Names that belong to one backend; only the binary may write them.
const BACKEND_NAMES: &[&str] = &[
    "SqliteStore",
    "SqliteConfig",
    "chinwag_store::sqlite",
    "PgStore",
    "PgConfig",
    "LocalPostgres",
    "chinwag_store::postgres",
    "LocalBus",
    "LocalDiscovery",
    "LocalPresence",
    "LocalRateLimiter",
    "NatsCluster",
    "NatsBus",
    "NatsPresence",
    "NatsDiscovery",
    "NatsRateLimiter",
    "LocalNats",
    "chinwag_bus::nats",
    "chinwag_media::fs",
    "chinwag_media::s3",
    "chinwag_media::local",
    "LocalSeaweed",
];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn each_crate_depends_only_on_the_crates_above_it() {
    for (name, allowed) in RULE {
        let manifest = std::fs::read_to_string(crates_dir().join(name).join("Cargo.toml")).unwrap();
        let manifest: toml::Value = toml::from_str(&manifest).unwrap();
        // Normal dependencies only: tests may use anything.
        let deps = manifest.get("dependencies").and_then(|d| d.as_table()).cloned().unwrap_or_default();
        for dep in deps.keys().filter_map(|d| d.strip_prefix("chinwag-")) {
            assert!(allowed.contains(&dep), "crate {name} depends on chinwag-{dep}, which the rule does not allow");
        }
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn only_the_binary_names_a_backend() {
    // The bus and store crates hold the embedded backends themselves;
    // every other crate sees only traits.
    for role in ["server", "client", "bench", "proto"] {
        let mut files = Vec::new();
        rust_files(&crates_dir().join(role).join("src"), &mut files);
        for file in files {
            if file.components().any(|c| c.as_os_str() == "sqlite") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let own_backend = role == "bus"
                && (file.ends_with("registry.rs") || file.ends_with("lib.rs") || file.ends_with("discovery.rs"));
            for name in BACKEND_NAMES {
                if own_backend && name.starts_with("Local") {
                    continue;
                }
                assert!(!text.contains(name), "{} names the backend {name}", file.display());
            }
        }
    }
}
