//! Configuration files on a real file system (a tmpfs for the full-disk case; needs root).

use super::*;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "tandemd-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small tmpfs mounted on a fresh directory, unmounted on drop.
struct Tmpfs(TempDir);

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let d = TempDir::new("files-tmpfs");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tandem-test")
            .arg(&d.0)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(d)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0.0).status();
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn only_plain_names_inside_the_directory_are_accepted() {
    let dir = ConfigDir::new("/etc/tandem".into());
    for bad in [
        "../x",
        "../../etc/x",
        "/etc/passwd",
        "a/b",
        ".",
        "..",
        "a\0b",
        ".hidden",
        "",
    ] {
        let e = format!("{:#}", dir.resolve(bad).unwrap_err());
        assert!(
            e.contains("bad file name") && e.contains("/etc/tandem") && e.contains("--config-dir"),
            "{bad:?}: {e}"
        );
    }
    assert!(format!("{:#}", dir.resolve("../x").unwrap_err()).contains("contains '/'"));
    assert!(format!("{:#}", dir.resolve(&"x".repeat(201)).unwrap_err()).contains("longer"));
    assert_eq!(
        dir.resolve("tandem.cfg").unwrap(),
        Path::new("/etc/tandem/tandem.cfg")
    );
}

#[test]
fn save_then_read_round_trips_and_leaves_no_temporary_file() {
    let d = TempDir::new("files-rt");
    let dir = ConfigDir::new(d.0.clone());
    let p = dir.save("a.cfg", "executor start\n").unwrap();
    assert_eq!(p, d.0.join("a.cfg"));
    assert_eq!(dir.read("a.cfg").unwrap().1, "executor start\n");
    // Replacing keeps the file's mode.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    dir.save("a.cfg", "cluster add 192.0.2.100\n").unwrap();
    assert_eq!(dir.read("a.cfg").unwrap().1, "cluster add 192.0.2.100\n");
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(names(&d.0), ["a.cfg"]);
    // The directory is never created by a file command.
    let gone = ConfigDir::new(d.0.join("missing"));
    let e = format!("{:#}", gone.save("a.cfg", "x").unwrap_err());
    assert!(
        e.contains("--config-dir") && e.contains("No such file"),
        "{e}"
    );
}

#[test]
fn symbolic_links_fifos_devices_and_big_files_are_refused_without_blocking() {
    let d = TempDir::new("files-bad");
    let outside = TempDir::new("files-outside");
    std::fs::write(outside.0.join("target"), "executor start\n").unwrap();
    std::os::unix::fs::symlink(outside.0.join("target"), d.0.join("link.cfg")).unwrap();
    let fifo =
        std::ffi::CString::new(d.0.join("fifo.cfg").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let dev =
        std::ffi::CString::new(d.0.join("zero.cfg").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid C string; /dev/zero's numbers (needs root).
    let r = unsafe { libc::mknod(dev.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) };
    assert_eq!(
        r,
        0,
        "mknod needs root: {}",
        std::io::Error::last_os_error()
    );
    let big = std::fs::File::create(d.0.join("big.cfg")).unwrap();
    big.set_len(MAX_CONFIG_BYTES + 1).unwrap();

    let dir = ConfigDir::new(d.0.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = dir.clone();
    std::thread::spawn(move || {
        let r: Vec<String> = ["link.cfg", "fifo.cfg", "zero.cfg", "big.cfg", "none.cfg"]
            .iter()
            .map(|n| format!("{:#}", reader.read(n).unwrap_err()))
            .collect();
        let _ = tx.send(r);
    });
    let t0 = Instant::now();
    let errs = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("reading a FIFO or device blocked");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(errs[0].contains("symbolic link"), "{}", errs[0]);
    assert!(errs[1].contains("not a regular file"), "{}", errs[1]);
    assert!(errs[2].contains("not a regular file"), "{}", errs[2]);
    assert!(errs[3].contains("larger than 16 MB"), "{}", errs[3]);
    assert!(errs[4].contains("No such file"), "{}", errs[4]);

    // Saving over a link is refused, and the link's target is untouched.
    let e = format!("{:#}", dir.save("link.cfg", "x\n").unwrap_err());
    assert!(e.contains("symbolic link"), "{e}");
    assert_eq!(
        std::fs::read_to_string(outside.0.join("target")).unwrap(),
        "executor start\n"
    );
    assert!(format!("{:#}", dir.save("fifo.cfg", "x\n").unwrap_err()).contains("not a regular"));
    // --config at start takes any path, links included.
    assert_eq!(
        read_start_config(&d.0.join("link.cfg")).unwrap(),
        "executor start\n"
    );
}

#[test]
fn a_full_file_system_during_save_leaves_the_previous_file_intact() {
    let fs = Tmpfs::new("64k");
    let root = fs.0.0.clone();
    let dir = ConfigDir::new(root.clone());
    let old = "# the previous configuration\nexecutor start\n".repeat(20);
    dir.save("tandem.cfg", &old).unwrap();
    // Fill the file system.
    let mut filler = std::fs::File::create(root.join("filler")).unwrap();
    let chunk = [0x5au8; 4096];
    let full = loop {
        if let Err(e) = filler.write_all(&chunk) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC), "{full}");
    let new = "cluster add 192.0.2.100\n".repeat(500);
    let e = format!("{:#}", dir.save("tandem.cfg", &new).unwrap_err());
    assert!(
        e.contains("No space left") && e.contains("previous file is unchanged"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(root.join("tandem.cfg")).unwrap(),
        old.as_bytes()
    );
    assert_eq!(names(&root), ["filler", "tandem.cfg"]);
    // Room again: the save goes through.
    drop(filler);
    std::fs::remove_file(root.join("filler")).unwrap();
    dir.save("tandem.cfg", &new).unwrap();
    assert_eq!(dir.read("tandem.cfg").unwrap().1, new);
    assert_eq!(names(&root), ["tandem.cfg"]);
}
