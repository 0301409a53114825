//! Cleanup on SIGINT / SIGTERM / SIGHUP.
//!
//! The signal handler itself only writes the signal number into a pipe (async-signal-safe). A
//! dedicated thread reads the pipe, marks the process [`interrupted`], cleans up every lab that
//! is still alive in this process (killing its processes, deleting its namespaces) and exits
//! with status `128 + signal`. A third signal while that runs exits at once.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use anyhow::{Result, anyhow};

static INSTALL: Once = Once::new();
static INSTALL_ERROR: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
static SIGNALS_SEEN: AtomicUsize = AtomicUsize::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// True once SIGINT/SIGTERM/SIGHUP arrived (after [`install_signal_cleanup`]). Long loops may
/// poll it to stop early; the cleanup and exit happen regardless.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: only async-signal-safe calls (errno access, write, _exit).
    unsafe {
        let errno = *libc::__errno_location();
        if SIGNALS_SEEN.fetch_add(1, Ordering::SeqCst) >= 2 {
            libc::_exit(128 + sig);
        }
        let fd = PIPE_WRITE.load(Ordering::SeqCst);
        if fd >= 0 {
            let byte = sig as u8;
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
        *libc::__errno_location() = errno;
    }
}

/// Installs (once per process; later calls do nothing) handlers for SIGINT, SIGTERM and SIGHUP
/// that clean up every live [`crate::Lab`] of this process and then exit with `128 + signal`.
/// [`crate::Lab::new`] calls this, so a Ctrl-C or a test runner's timeout never leaves
/// namespaces or processes behind.
pub fn install_signal_cleanup() -> Result<()> {
    INSTALL.call_once(|| {
        if let Err(e) = install() {
            *INSTALL_ERROR.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    });
    match INSTALL_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        Some(e) => Err(anyhow!("installing signal handlers: {e}")),
        None => Ok(()),
    }
}

fn install() -> Result<(), String> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    let [read_fd, write_fd] = fds;
    PIPE_WRITE.store(write_fd, Ordering::SeqCst);
    std::thread::Builder::new()
        .name("tandem-lab-signals".into())
        .spawn(move || signal_thread(read_fd))
        .map_err(|e| format!("spawning the signal thread: {e}"))?;
    for sig in SIGNALS {
        // SAFETY: a zeroed sigaction with a valid handler, empty mask and SA_RESTART.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(format!(
                    "sigaction({sig}): {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
    }
    Ok(())
}

fn signal_thread(read_fd: libc::c_int) {
    let mut byte = 0u8;
    loop {
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            break;
        }
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return; // pipe closed or broken: nothing more we can do
    }
    let sig = libc::c_int::from(byte);
    INTERRUPTED.store(true, Ordering::SeqCst);
    eprintln!("tandem-lab: caught signal {sig}, cleaning up labs");
    let removed = crate::lab::cleanup_registered();
    if removed > 0 {
        eprintln!("tandem-lab: cleaned up {removed} lab(s)");
    }
    std::process::exit(128 + sig);
}
