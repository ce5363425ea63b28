//! The durability floor: how many `fdatasync`s per second the disk under a
//! directory allows (each group commit costs one).

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Overwrites 4 KiB and syncs it, as often as possible for `for_time`.
pub fn fsyncs_per_second(dir: &Path, for_time: Duration) -> std::io::Result<f64> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("fsync-probe-{}", std::process::id()));
    let mut file = std::fs::File::create(&path)?;
    let block = [7u8; 4096];
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < for_time {
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&block)?;
        file.sync_data()?;
        count += 1;
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}
