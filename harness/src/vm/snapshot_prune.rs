//! Snapshots no run has used for a week are removed when a new one is
//! made. Every fresh clone builds its own agent, so its snapshots have new
//! keys (four per run of the default kernels, ~50 MB each on disk, 512 MB
//! apparent): on a machine whose cache outlives the checkouts, such as a CI
//! runner's `~/.cache`, they would pile up without end.
//!
//! "Used" is a stamp file a test's lookup refreshes at most once an hour
//! (one `stat` per test otherwise); a snapshot without one counts from its
//! `state` file. A template a killed run left half-made (`.<key>-…`) goes
//! once it is a day old.
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Unused this long, a snapshot is removed.
pub const UNUSED_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// A half-made template this old was left by a killed run.
const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How stale the stamp may get before a lookup refreshes it.
const STAMP_EVERY: Duration = Duration::from_secs(3600);
const STAMP: &str = "last-used";

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).ok()?.modified().ok()
}

/// Note that the snapshot in `dir` is being used (best effort: a cache
/// that cannot be written is noticed elsewhere).
pub fn mark_used(dir: &Path, now: SystemTime) {
    let stamp = dir.join(STAMP);
    let fresh = modified(&stamp).is_some_and(|t| now.duration_since(t).unwrap_or_default() < STAMP_EVERY);
    if !fresh {
        let _ = std::fs::File::create(&stamp).and_then(|f| f.set_modified(now));
    }
}

/// When the snapshot in `dir` was last used.
fn last_used(dir: &Path) -> Option<SystemTime> {
    modified(&dir.join(STAMP)).or_else(|| modified(&dir.join("state"))).or_else(|| modified(dir))
}

/// Remove what in `root` (the snapshots directory) is unused for
/// [`UNUSED_FOR`], never `keep`; the names removed.
pub fn prune(root: &Path, keep: &str, now: SystemTime) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if !path.is_dir() || name == keep {
            continue;
        }
        let (when, limit) =
            if name.starts_with('.') { (modified(&path), ABANDONED_AFTER) } else { (last_used(&path), UNUSED_FOR) };
        let age = when.map(|t| now.duration_since(t).unwrap_or_default());
        if age.is_some_and(|a| a > limit) && std::fs::remove_dir_all(&path).is_ok() {
            let _ = std::fs::remove_file(root.join(format!("{name}.lock")));
            removed.push(name);
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(root: &Path, key: &str, used_days_ago: Option<u64>, now: SystemTime) {
        let d = root.join(key);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("state"), b"s").unwrap();
        std::fs::write(root.join(format!("{key}.lock")), b"1").unwrap();
        let f = std::fs::File::options().write(true).open(d.join("state")).unwrap();
        f.set_modified(now - Duration::from_secs(30 * 24 * 3600)).unwrap();
        if let Some(days) = used_days_ago {
            std::fs::write(d.join(STAMP), b"").unwrap();
            let f = std::fs::File::options().write(true).open(d.join(STAMP)).unwrap();
            f.set_modified(now - Duration::from_secs(days * 24 * 3600)).unwrap();
        }
    }

    #[test]
    fn only_snapshots_unused_for_a_week_go_and_never_the_one_just_made() {
        let root = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        snapshot(root.path(), "used-yesterday", Some(1), now);
        snapshot(root.path(), "used-long-ago", Some(9), now);
        snapshot(root.path(), "never-stamped", None, now); // its state is 30 days old
        snapshot(root.path(), "just-made", Some(30), now);
        let half_made = root.path().join(".abc-123");
        std::fs::create_dir_all(&half_made).unwrap();
        let removed = prune(root.path(), "just-made", now);
        assert_eq!(removed, vec!["never-stamped".to_string(), "used-long-ago".to_string()]);
        assert!(root.path().join("used-yesterday/state").exists());
        assert!(root.path().join("just-made/state").exists());
        assert!(!root.path().join("used-long-ago.lock").exists());
        assert!(root.path().join("used-yesterday.lock").exists());
        // A half-made template of a run still going (minutes old) stays.
        assert!(half_made.exists());
        // Two days on, the half-made one was left by a killed run; the one
        // used yesterday stays, and the one kept before goes once not kept.
        let removed = prune(root.path(), "x", now + ABANDONED_AFTER * 2);
        assert_eq!(removed, vec![".abc-123".to_string(), "just-made".to_string()]);
    }

    #[test]
    fn a_lookup_refreshes_a_stale_stamp_and_leaves_a_fresh_one() {
        let root = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        snapshot(root.path(), "k", Some(9), now);
        let dir = root.path().join("k");
        mark_used(&dir, now);
        assert_eq!(modified(&dir.join(STAMP)), Some(now));
        mark_used(&dir, now + Duration::from_secs(60));
        assert_eq!(modified(&dir.join(STAMP)), Some(now), "refreshed within the hour");
        assert!(prune(root.path(), "other", now).is_empty());
    }
}
