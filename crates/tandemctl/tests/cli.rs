//! The `tandemctl` binary as an operator runs it, without a daemon. (This test also makes
//! `cargo nextest run --workspace` build the binary that the lab tests drive.)

use std::process::Command;

fn tandemctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(args)
        .output()
        .expect("tandemctl runs")
}

#[test]
fn an_unreachable_daemon_is_a_clear_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("tandemctl-test-{}", std::process::id()));
    let sock = dir.join("none.sock");
    let out = tandemctl(&["--socket", sock.to_str().unwrap(), "executor", "status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach tandemd") && err.contains("none.sock"),
        "{err}"
    );
}

#[test]
fn help_and_bad_options() {
    let out = tandemctl(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("usage: tandemctl"));
    let out = tandemctl(&["--bogus", "executor", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option '--bogus'"));
}
