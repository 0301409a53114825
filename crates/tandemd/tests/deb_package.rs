//! The Debian package, end to end on this machine: `packaging/build-deb.sh` builds it from the
//! built binaries (cargo-deb), `dpkg -i` installs it, the files are where Debian puts them,
//! the unit is installed but neither enabled nor started, the installed unit passes
//! `systemd-analyze verify`, and the installed `tandemd --check-config` passes on the shipped
//! `/etc/tandem/default.cfg` and fails with FILE:LINE on a bad file. The package is purged at
//! the end, also on failure. Needs root, dpkg, cargo-deb (CI installs it) and systemd-analyze.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PACKAGE: &str = "tandem";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The machine-wide lock (held while the file is open): one package test installs at a time
/// (dpkg is machine-wide).
fn machine_lock() -> std::fs::File {
    let f = std::fs::File::create("/tmp/tandem-deb-package.lock").unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    f
}

/// Purges the package when dropped (test end or panic).
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let out = run(Command::new("dpkg").args(["--purge", PACKAGE]));
        if !out.status.success() {
            eprintln!("dpkg --purge {PACKAGE}: {}", text(&out.stderr));
        }
    }
}

#[test]
fn deb_package_installs_checks_its_example_configuration_and_purges() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "dpkg -i needs root");
    let _lock = machine_lock();
    let tmp = std::env::temp_dir().join(format!("tandem-deb-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    // The binaries the test suite built (the whole workspace), packaged as they are.
    let out = run(Command::new(root().join("packaging/build-deb.sh"))
        .arg(&tmp)
        .env("TANDEM_DEB_PREBUILT", "1"));
    assert!(
        out.status.success(),
        "build-deb.sh failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let deb = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("no .deb in {}", tmp.display()));

    // Nothing left of an earlier run, then install; purged whatever happens next.
    run(Command::new("dpkg").args(["--purge", PACKAGE]));
    let _purge = Purge;
    let out = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(
        out.status.success(),
        "dpkg -i {}:\n{}{}",
        deb.display(),
        text(&out.stdout),
        text(&out.stderr)
    );

    let listed = text(&run(Command::new("dpkg").args(["-L", PACKAGE])).stdout);
    for path in [
        "/usr/sbin/tandemd",
        "/usr/bin/tandemctl",
        "/usr/bin/tandem-gwm",
        "/usr/lib/systemd/system/tandemd.service",
        "/usr/share/man/man8/tandemd.8.gz",
        "/usr/share/man/man1/tandemctl.1.gz",
        "/usr/share/bash-completion/completions/tandemctl",
        "/usr/share/zsh/vendor-completions/_tandemctl",
        "/usr/share/fish/vendor_completions.d/tandemctl.fish",
        "/etc/tandem/default.cfg",
        "/usr/share/doc/tandem/README.first-pair.md",
    ] {
        assert!(
            listed.lines().any(|l| l == path),
            "{path} not in dpkg -L {PACKAGE}:\n{listed}"
        );
        assert!(Path::new(path).exists(), "{path} listed but missing");
    }
    // A man page per tandemctl command group beside tandemctl.1.
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("/usr/share/man/man1/tandemctl-") && l.ends_with(".1.gz")),
        "no per-group tandemctl man page:\n{listed}"
    );
    // The example configuration is a conffile (kept on upgrade), and the unit is not enabled.
    let conffiles =
        text(&run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE])).stdout);
    assert!(
        conffiles.contains("/etc/tandem/default.cfg"),
        "default.cfg is not a conffile: {conffiles}"
    );
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/tandemd.service").exists(),
        "the package enabled the unit"
    );
    let out = run(Command::new("systemd-analyze").args([
        "verify",
        "--man=no",
        "/usr/lib/systemd/system/tandemd.service",
    ]));
    assert!(
        out.status.success(),
        "systemd-analyze verify of the installed unit: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // The shipped example passes, as the installed daemon checks it.
    let out = run(Command::new("/usr/sbin/tandemd").args([
        "--check-config",
        "/etc/tandem/default.cfg",
        "--config-dir",
        "/etc/tandem",
    ]));
    assert!(
        out.status.success() && text(&out.stdout).starts_with("/etc/tandem/default.cfg: OK ("),
        "tandemd --check-config /etc/tandem/default.cfg: {out:?}"
    );
    // A bad file: non-zero, and the error names FILE:LINE.
    let bad = tmp.join("bad.cfg");
    std::fs::write(
        &bad,
        "# a comment\ncluster add 192.0.2.100\nport add 192.0.2.100@80 method nosuchmethod\n",
    )
    .unwrap();
    let out = run(Command::new("/usr/sbin/tandemd")
        .arg("--check-config")
        .arg(&bad)
        .arg("--config-dir")
        .arg(&tmp));
    let err = text(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&format!("{}:3", bad.display())),
        "tandemd --check-config on a bad file: {out:?}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The unit in the tree passes `systemd-analyze verify` (ExecStart pointed at the built
/// binary, since verify insists that it exists; man pages are checked by the package test).
#[test]
fn unit_file_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(root().join("packaging/tandemd.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/sbin/tandemd "), "{unit}");
    let built = tandem_lab::find_binary("tandemd").expect("the built tandemd");
    let dir = std::env::temp_dir().join(format!("tandem-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("tandemd.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/sbin/tandemd", &built.display().to_string()),
    )
    .unwrap();
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
