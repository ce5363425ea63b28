//! Opening connections and migrating the schema (`PRAGMA user_version`).

use crate::{BackupInfo, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Each entry moves the schema one version forward; never edit a shipped one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE devices (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    name       TEXT,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX devices_by_user ON devices(user_id);
CREATE TABLE channels (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    name            TEXT,
    created_by      INTEGER NOT NULL REFERENCES users(id),
    direct_key      TEXT UNIQUE,
    last_message_id INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);
CREATE TABLE members (
    channel_id INTEGER NOT NULL REFERENCES channels(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    read_up_to INTEGER NOT NULL DEFAULT 0,
    joined_at  INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members(user_id, channel_id);
CREATE TABLE messages (
    channel_id    INTEGER NOT NULL REFERENCES channels(id),
    message_id    INTEGER NOT NULL,
    sender_id     INTEGER NOT NULL REFERENCES users(id),
    client_msg_id TEXT NOT NULL,
    text          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (channel_id, message_id)
);
CREATE UNIQUE INDEX messages_idempotency ON messages(sender_id, client_msg_id);
"#,
    r#"
ALTER TABLE users ADD COLUMN last_active_at INTEGER;
CREATE TABLE contacts (
    owner_id   INTEGER NOT NULL REFERENCES users(id),
    contact_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX contacts_by_contact ON contacts(contact_id, owner_id);
CREATE TABLE mentions (
    user_id   INTEGER NOT NULL REFERENCES users(id),
    msg_rowid INTEGER NOT NULL,
    PRIMARY KEY (user_id, msg_rowid)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text, content = 'messages', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.rowid, new.text);
END;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
"#,
    r#"
DROP TRIGGER messages_fts_insert;
CREATE TABLE search_progress (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_rowid INTEGER NOT NULL
);
INSERT INTO search_progress (id, indexed_rowid) VALUES (1, (SELECT coalesce(max(rowid), 0) FROM messages));
"#,
    r#"
CREATE TABLE push_targets (
    device_id  INTEGER PRIMARY KEY REFERENCES devices(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    target     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX push_targets_by_user ON push_targets(user_id);
CREATE TABLE mutes (
    user_id    INTEGER NOT NULL REFERENCES users(id),
    channel_id INTEGER NOT NULL REFERENCES channels(id),
    PRIMARY KEY (user_id, channel_id)
) WITHOUT ROWID;
CREATE TABLE push_outbox (
    id         INTEGER PRIMARY KEY,
    device_id  INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    payload    TEXT NOT NULL,
    count      INTEGER NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1,
    attempts   INTEGER NOT NULL DEFAULT 0,
    due_at     INTEGER NOT NULL,
    UNIQUE (device_id, channel_id)
);
CREATE INDEX push_outbox_due ON push_outbox(due_at);
"#,
    r#"
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
"#,
    r#"
DROP INDEX messages_idempotency;
CREATE UNIQUE INDEX messages_idempotency ON messages(channel_id, sender_id, client_msg_id);
"#,
    r#"
CREATE TABLE blocks (
    owner_id   INTEGER NOT NULL REFERENCES users(id),
    blocked_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner_id, blocked_id)
) WITHOUT ROWID;
CREATE INDEX blocks_by_blocked ON blocks(blocked_id, owner_id);
CREATE TABLE departures (
    channel_id INTEGER NOT NULL REFERENCES channels(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    left_at    INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
) WITHOUT ROWID;
CREATE TABLE invitations (
    channel_id INTEGER NOT NULL REFERENCES channels(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    invited_by INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
) WITHOUT ROWID;
CREATE INDEX invitations_by_user ON invitations(user_id, created_at);
"#,
    r#"
ALTER TABLE push_outbox ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
ALTER TABLE messages ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    owner_id     INTEGER NOT NULL REFERENCES users(id),
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    width        INTEGER,
    height       INTEGER,
    stored       INTEGER NOT NULL DEFAULT 0,
    attached     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_by_owner ON uploads(owner_id);
CREATE INDEX uploads_unattached ON uploads(created_at) WHERE attached = 0;
CREATE TABLE attachments (
    upload_id  TEXT NOT NULL REFERENCES uploads(id),
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (upload_id, channel_id, message_id)
) WITHOUT ROWID;
CREATE INDEX attachments_by_message ON attachments(channel_id, message_id);
"#,
    r#"
ALTER TABLE messages ADD COLUMN reply_to INTEGER;
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN reactions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE messages ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN last_change_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_changes ON messages(channel_id, change_seq) WHERE change_seq > 0;
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
"#,
];

fn pragmas(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // What a delete or an edit frees inside a page is zeroed when the page
    // is written anyway: a deleted text does not linger in the file.
    conn.pragma_update(None, "secure_delete", "FAST")?;
    // 64 MiB of page cache per connection (negative = KiB): the hot parts
    // of the indexes stay in memory instead of being re-read every time.
    conn.pragma_update(None, "cache_size", -65_536)?;
    Ok(())
}

/// Makes the database and its WAL and shared-memory files readable by
/// their owner only, whatever the umask: they hold every message and
/// password hash. SQLite gives the WAL and SHM files the database file's
/// mode when it creates them, so the database file is created 0600 first.
fn restrict_files(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |e: std::io::Error| StoreError::Backend(Box::new(e));
    std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).map_err(io)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
    }
    Ok(())
}

/// The one write connection; creates and migrates the database.
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(Box::new(e)))?;
    }
    restrict_files(path)?;
    let conn = Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!("journal_mode is {mode}, not wal").into()));
    }
    pragmas(&conn)?;
    // Checkpoints run on their own thread (see `checkpoint_loop`).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    migrate(&conn)?;
    Ok(conn)
}

/// The connection of the background checkpointer.
pub(super) fn open_checkpointer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// A read-only connection for a reader thread.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    pragmas(&conn)?;
    Ok(conn)
}

/// Copies the database to `dest` as one consistent snapshot (`VACUUM
/// INTO`, a read transaction, so writers go on). The copy is written
/// beside `dest`, synced, then linked into place: `dest` either does not
/// exist or is a whole backup, and an existing file is never overwritten.
pub(super) fn backup(source: &Path, dest: &Path) -> Result<BackupInfo, StoreError> {
    let io = |e: std::io::Error| StoreError::Backend(Box::new(e));
    if dest.exists() {
        return Err(StoreError::Backend(format!("{} already exists", dest.display()).into()));
    }
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    match std::fs::remove_file(&partial) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let conn = open_reader(source)?;
    let target = partial.to_str().ok_or_else(|| StoreError::Backend("backup path is not UTF-8".into()))?;
    conn.execute("VACUUM INTO ?1", [target])?;
    drop(conn);
    let file = std::fs::File::open(&partial).map_err(io)?;
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    file.sync_all().map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    let linked = std::fs::hard_link(&partial, dest);
    std::fs::remove_file(&partial).map_err(io)?;
    linked.map_err(io)?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(BackupInfo { bytes })
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!("database schema {version} is newer than this binary knows").into()));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1))?;
    }
    Ok(())
}
