use super::*;
use std::time::{Duration, UNIX_EPOCH};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tandem-halog-{name}-{}-{}",
        std::process::id(),
        crate::ha::random_u64()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

#[test]
fn timestamps_are_rfc3339_utc() {
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    let t = UNIX_EPOCH + Duration::from_millis(1_796_000_000_123);
    assert_eq!(rfc3339(t), "2026-11-30T00:53:20.123Z");
    // A leap day.
    let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
    assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
}

#[test]
fn lines_are_appended_with_a_timestamp_and_the_directory_is_made() {
    let dir = temp_dir("append").join("deeper");
    let log = HaLog::new(&dir);
    log.append("partner found (compatible)");
    log.append("two\nlines");
    let text = read(&dir, "ha.log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].ends_with("Z partner found (compatible)"), "{text}");
    assert!(lines[0].starts_with("20"), "{text}");
    assert_eq!(lines[2], "    lines");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o750);
    assert_eq!(log.failures(), 0);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn the_log_rotates_by_size_and_keeps_three() {
    let dir = temp_dir("rotate");
    let log = HaLog::with_limit(&dir, 300);
    for i in 0..100 {
        log.append(&format!(
            "event number {i:03} with some text to fill the line"
        ));
    }
    let names: Vec<String> = log
        .files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["ha.log", "ha.log.1", "ha.log.2", "ha.log.3"]);
    for n in &names {
        let size = std::fs::metadata(dir.join(n)).unwrap().len();
        assert!(size <= 300, "{n}: {size} bytes");
    }
    // The newest line is in ha.log, older ones in the rotated files, in order.
    assert!(read(&dir, "ha.log").contains("event number 099"));
    let older = read(&dir, "ha.log.1");
    let last_of_older: u32 = older.lines().last().unwrap()[38..41].parse().unwrap();
    let first_of_newest: u32 = read(&dir, "ha.log").lines().next().unwrap()[38..41]
        .parse()
        .unwrap();
    assert_eq!(last_of_older + 1, first_of_newest);
    assert!(!dir.join("ha.log.4").exists());
    // A line longer than the limit still gets written (alone in its file).
    log.append(&"x".repeat(1000));
    assert!(read(&dir, "ha.log").contains(&"x".repeat(1000)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_log_reopened_after_restart_rotates_at_the_same_size() {
    let dir = temp_dir("reopen");
    HaLog::with_limit(&dir, 200).append(&"a".repeat(150));
    let log = HaLog::with_limit(&dir, 200);
    log.append(&"b".repeat(150));
    assert!(read(&dir, "ha.log.1").contains(&"a".repeat(150)));
    assert!(read(&dir, "ha.log").contains(&"b".repeat(150)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ha_out_and_ha_result_hold_the_last_command() {
    let dir = temp_dir("last");
    let log = HaLog::new(&dir);
    let who = Origin::Admin { uid: 0, pid: 42 };
    log.last_command(
        "highavailability status",
        &who,
        &Reply::ok("State: Active\n".into(), serde_json::Value::Null),
    );
    assert_eq!(read(&dir, "ha.out"), "State: Active\n");
    let result = read(&dir, "ha.result");
    assert!(
        result.starts_with("success\ncommand: highavailability status\nby: uid 0 pid 42\ntime: 20"),
        "{result}"
    );
    log.last_command(
        "highavailability reach add 198.51.100.300",
        &who,
        &Reply::err("bad address".into()),
    );
    assert_eq!(read(&dir, "ha.out"), "");
    assert!(
        read(&dir, "ha.result")
            .starts_with("error: bad address\ncommand: highavailability reach add")
    );
    assert!(!dir.join(".ha.out.tmp").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_write_failure_is_counted_and_the_next_write_tries_again() {
    let base = temp_dir("fail");
    std::fs::create_dir_all(&base).unwrap();
    // The log directory's path is a regular file: nothing can be written.
    let dir = base.join("not-a-dir");
    std::fs::write(&dir, b"file").unwrap();
    let log = HaLog::new(&dir);
    log.append("lost");
    log.last_command(
        "highavailability status",
        &Origin::Internal,
        &Reply::err("x".into()),
    );
    assert_eq!(log.failures(), 3);
    // The directory becomes possible again: the next write succeeds.
    std::fs::remove_file(&dir).unwrap();
    log.append("kept");
    assert_eq!(log.failures(), 3);
    assert!(read(&dir, "ha.log").contains("kept"));
    // The directory removed under a running log: created again.
    std::fs::remove_dir_all(&dir).unwrap();
    log.append("again");
    assert!(read(&dir, "ha.log").contains("again"));
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn commands_are_classified_as_changing_and_ha() {
    let c = |line: &str| {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let cmd = config::parse_words(&refs).ok().flatten();
        classify(cmd.as_ref(), &words)
    };
    assert_eq!(c("highavailability reach add 192.0.2.9"), (true, true));
    assert_eq!(c("high status"), (false, true));
    assert_eq!(c("highavailability takeover"), (true, true));
    assert_eq!(c("executor status"), (false, false));
    assert_eq!(c("cluster add 192.0.2.100"), (true, false));
    assert_eq!(c("diagnostics /tmp/x.tar.gz"), (true, false));
    assert_eq!(c("highavailability reach add nonsense"), (true, true));
    assert_eq!(c("ha start primary"), (true, true));
    assert_eq!(c("bogus words"), (true, false));
}
