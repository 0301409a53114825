//! The default bound of the connection tables, from the machine's memory.
//!
//! The rule itself is in core ([`tandem_core::forward::default_max_connections`]: a quarter of
//! the memory at 1 KiB a record); this module only reads the memory: `MemTotal` from
//! /proc/meminfo, or this process's cgroup (v2) `memory.max` when that is lower (a container).

/// The memory this process may use, in bytes: the lower of `MemTotal` and the cgroup limit.
/// `None` when neither can be read.
pub fn memory_bytes() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| mem_total(&s));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| {
            let path = s.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
            std::fs::read_to_string(format!("/sys/fs/cgroup{}/memory.max", path.trim())).ok()
        })
        .and_then(|s| s.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// `MemTotal` of a /proc/meminfo text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `maxconnections` when the configuration does not set it; logged at start.
pub fn default_max_connections() -> usize {
    match memory_bytes() {
        Some(bytes) => {
            let n = tandem_core::forward::default_max_connections(bytes);
            tracing::info!(
                memory_mib = bytes >> 20,
                maxconnections = n,
                "connection tables bounded at a quarter of memory (executor set maxconnections N to change)"
            );
            n
        }
        None => {
            let n = tandem_core::forward::DEFAULT_MAX_CONNECTIONS;
            tracing::warn!(
                maxconnections = n,
                "cannot read the memory size; connection tables bounded at the built-in default"
            );
            n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_memtotal() {
        let text = "MemTotal:        8048576 kB\nMemFree:          123 kB\n";
        assert_eq!(mem_total(text), Some(8_048_576 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots kB\n"), None);
        // This machine's memory is readable, and gives a limit within the rule's bounds.
        let bytes = memory_bytes().expect("/proc/meminfo readable");
        let n = tandem_core::forward::default_max_connections(bytes);
        assert!((1 << 16..=1 << 26).contains(&n), "{n}");
    }
}
