//! The XDP steering program (`bpf/steer.c`): loading, attaching and its maps.

use anyhow::{Context, Result, anyhow};
use aya::Ebpf;
use aya::maps::{HashMap, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::fd::RawFd;

/// The compiled program (`bpf/build.sh`; the test `bpf_object_matches_source` checks it).
pub const STEER_OBJECT: &[u8] = include_bytes!("../../bpf/steer.o");

/// The program attached to one interface. Dropping it detaches the program.
pub struct Steering {
    bpf: Ebpf,
    /// `native` (driver mode) or `generic` (skb mode).
    pub mode: &'static str,
    /// Why native mode was refused, when generic runs.
    pub native_refused: Option<String>,
    steered: BTreeSet<IpAddr>,
}

impl Steering {
    /// Loads the program and attaches it to `ifindex`: native (driver) mode first, generic
    /// (skb) mode when the driver refuses.
    pub fn attach(ifindex: u32) -> Result<Steering> {
        let mut bpf = Ebpf::load(STEER_OBJECT).context("loading the XDP program")?;
        let prog: &mut Xdp = bpf
            .program_mut("tandem_steer")
            .ok_or_else(|| anyhow!("the XDP object has no tandem_steer program"))?
            .try_into()
            .context("tandem_steer is not an XDP program")?;
        prog.load()
            .context("loading the XDP program into the kernel")?;
        let (mode, native_refused) = match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
            Ok(_) => ("native", None),
            Err(native) => {
                let native = format!("{native:#}");
                prog.attach_to_if_index(ifindex, XdpMode::Skb)
                    .with_context(|| {
                        format!("attaching the XDP program (native mode refused: {native})")
                    })?;
                ("generic", Some(native))
            }
        };
        Ok(Steering {
            bpf,
            mode,
            native_refused,
            steered: BTreeSet::new(),
        })
    }

    /// Sends the frames of queue `queue` to socket `fd`.
    pub fn set_socket(&mut self, queue: u32, fd: RawFd) -> Result<()> {
        let map = self
            .bpf
            .map_mut("xsks")
            .ok_or_else(|| anyhow!("the XDP object has no xsks map"))?;
        let mut xsks = XskMap::try_from(map)?;
        xsks.set(queue, fd, 0)
            .with_context(|| format!("registering the socket of queue {queue}"))
    }

    /// Makes `addrs` the steered addresses (IPv4 and IPv6 destinations, ARP and neighbour
    /// solicitation targets).
    pub fn set_addresses(&mut self, addrs: &[IpAddr]) -> Result<()> {
        let wanted: BTreeSet<IpAddr> = addrs.iter().copied().collect();
        if wanted == self.steered {
            return Ok(());
        }
        for a in self
            .steered
            .difference(&wanted)
            .copied()
            .collect::<Vec<_>>()
        {
            self.update(a, false)?;
            self.steered.remove(&a);
        }
        for a in wanted
            .difference(&self.steered)
            .copied()
            .collect::<Vec<_>>()
        {
            self.update(a, true)?;
            self.steered.insert(a);
        }
        Ok(())
    }

    fn update(&mut self, a: IpAddr, add: bool) -> Result<()> {
        let done: Result<(), aya::maps::MapError> = match a {
            IpAddr::V4(v4) => {
                let map = self.bpf.map_mut("v4_addrs").context("no v4_addrs map")?;
                let mut m: HashMap<_, u32, u8> = HashMap::try_from(map)?;
                let key = u32::from_ne_bytes(v4.octets());
                if add {
                    m.insert(key, 1, 0)
                } else {
                    m.remove(&key)
                }
            }
            IpAddr::V6(v6) => {
                let map = self.bpf.map_mut("v6_addrs").context("no v6_addrs map")?;
                let mut m: HashMap<_, [u8; 16], u8> = HashMap::try_from(map)?;
                let key = v6.octets();
                if add {
                    m.insert(key, 1, 0)
                } else {
                    m.remove(&key)
                }
            }
        };
        done.with_context(|| format!("updating the steered address {a}"))
    }

    /// Frames sent to the sockets and frames passed to the kernel, summed over CPUs.
    pub fn counters(&self) -> (u64, u64) {
        let Some(map) = self.bpf.map("counters") else {
            return (0, 0);
        };
        let Ok(arr) = PerCpuArray::<_, u64>::try_from(map) else {
            return (0, 0);
        };
        let sum = |i: u32| arr.get(&i, 0).map(|v| v.iter().sum::<u64>()).unwrap_or(0);
        (sum(0), sum(1))
    }
}

#[cfg(test)]
mod tests {
    use super::STEER_OBJECT;
    use std::path::Path;

    /// The committed object is what `bpf/build.sh` makes of `bpf/steer.c` (CI installs
    /// clang and libbpf-dev; without them this fails, loudly).
    #[test]
    fn bpf_object_matches_source() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bpf");
        let out = std::env::temp_dir().join(format!("tandem-steer-{}.o", std::process::id()));
        let status = std::process::Command::new("sh")
            .arg(dir.join("build.sh"))
            .arg(&out)
            .status()
            .expect("running bpf/build.sh");
        assert!(
            status.success(),
            "bpf/build.sh failed: it needs clang, llvm-strip and libbpf-dev (apt-get install clang libbpf-dev)"
        );
        let built = std::fs::read(&out).expect("reading the rebuilt object");
        let _ = std::fs::remove_file(&out);
        assert!(
            built == STEER_OBJECT,
            "bpf/steer.o is stale: run crates/tandemd/bpf/build.sh and commit steer.o"
        );
    }
}
