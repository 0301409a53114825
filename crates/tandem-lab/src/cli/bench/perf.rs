//! `perf stat` and `perf record` beside a measurement.

use super::*;

/// `perf stat` of tandemd's system calls, running while a measurement runs.
pub(super) struct PerfStat {
    child: std::process::Child,
    out: PathBuf,
}

impl PerfStat {
    pub(super) fn start(pid: u32) -> Option<PerfStat> {
        let out = std::env::temp_dir().join(format!(
            "tandem-bench-perfstat-{}-{pid}.txt",
            std::process::id()
        ));
        let child = std::process::Command::new("perf")
            .args([
                "stat",
                "-x",
                ",",
                "-e",
                "raw_syscalls:sys_enter",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(&out)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| progress(format!("perf stat unavailable: {e}")))
            .ok()?;
        // Give perf a moment to attach.
        std::thread::sleep(Duration::from_millis(300));
        Some(PerfStat { child, out })
    }

    /// Stops perf and returns the system calls it counted.
    pub(super) fn stop(mut self) -> Option<u64> {
        interrupt(&mut self.child);
        let text = std::fs::read_to_string(&self.out).ok()?;
        let _ = std::fs::remove_file(&self.out);
        text.lines()
            .find(|l| l.contains("raw_syscalls:sys_enter"))
            .and_then(|l| l.split(',').next())
            .and_then(|n| n.trim().parse().ok())
    }
}

/// Machine-wide `perf record -g` while a measurement runs.
pub(super) struct PerfRecord {
    child: std::process::Child,
    out: PathBuf,
    pids: bench::profile::LabPids,
}

impl PerfRecord {
    pub(super) fn start(
        dir: &Path,
        tag: &str,
        pids: bench::profile::LabPids,
    ) -> Option<PerfRecord> {
        let out = dir.join(format!("{tag}.perf.data"));
        let child = std::process::Command::new("perf")
            .args(["record", "-q", "-a", "-g", "-F", "997", "-o"])
            .arg(&out)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| progress(format!("perf record unavailable: {e}")))
            .ok()?;
        std::thread::sleep(Duration::from_millis(300));
        Some(PerfRecord { child, out, pids })
    }

    /// Stops perf (it writes its data file).
    pub(super) fn stop(mut self) -> Self {
        interrupt(&mut self.child);
        self
    }

    /// Sorts the profile into buckets, writes them next to the data, prints them.
    pub(super) fn analyze(self) -> Option<Vec<bench::profile::Breakdown>> {
        let b = bench::profile::breakdown(&self.out, &self.pids)
            .map_err(|e| progress(format!("perf script: {e:#}")))
            .ok()?;
        let text: String = b.iter().map(|x| x.to_string()).collect();
        let _ = std::fs::write(self.out.with_extension("breakdown.txt"), &text);
        for line in text.lines() {
            progress(format!("    {line}"));
        }
        Some(b)
    }
}

/// SIGINT to a perf we started (it then writes its results), then waits for it (5 s at most).
fn interrupt(child: &mut std::process::Child) {
    // SAFETY: kill(2) on the pid of our own unreaped child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let _ = wait_until(Duration::from_secs(5), "perf to exit", || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = child.kill();
        let _ = child.wait();
    }
}
