//! Helpers shared by Tandem's fuzz targets: a cursor over the fuzzer's bytes that never
//! fails (missing bytes read as zero), and the split of one input into several frames.

/// A cursor over fuzzer input. Reads past the end give zeros / empty slices, so a target
/// never has to handle "input too short" itself.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// One length-prefixed frame: a little-endian `u16` length, then that many bytes (or
    /// what is left). `None` once the input is used up.
    pub fn frame(&mut self) -> Option<&'a [u8]> {
        if self.data.is_empty() {
            return None;
        }
        let len = usize::from(self.u16());
        Some(self.bytes(len))
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
}

/// Writes `frames` in the layout [`Input::frame`] reads (for seed corpora and tests).
pub fn join_frames<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        let len = u16::try_from(f.len()).expect("frame longer than 65535 bytes");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// The HA node of the `heartbeat_decode` target (shared with the seed generator, so that
/// seeds drive the same node).
pub mod ha {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;
    use tandem_core::config::{Backup, Recovery, Role};
    use tandem_core::ha::HaSettings;

    /// The pair's key.
    pub const KEY: &[u8] = b"fuzz pair key, 32 bytes long....";
    /// The heartbeat port.
    pub const PORT: u16 = 20001;
    /// The node's epoch.
    pub const EPOCH: u64 = 1_000_000;

    fn addr(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    /// (source on this node, destination on the partner) of pair `i`; pairs 0 and 1 are
    /// configured, 2 and 3 are not.
    pub fn pair(i: u8) -> (IpAddr, IpAddr) {
        (addr(10 * i + 1), addr(10 * i + 2))
    }

    /// The node's settings for a variant byte: bit 0 role backup, bit 1 recovery manual,
    /// bit 2 hatimeout 20 ms (else 2 s), bit 3 replication. `partner` gives the other node's.
    pub fn settings(variant: u8, partner: bool) -> HaSettings {
        let backup = (variant & 1 != 0) != partner;
        HaSettings {
            backup: Some(Backup {
                role: if backup { Role::Backup } else { Role::Primary },
                recovery: if variant & 2 == 0 {
                    Recovery::Auto
                } else {
                    Recovery::Manual
                },
                port: PORT,
            }),
            heartbeats: [pair(0), pair(1)]
                .into_iter()
                .map(|(a, b)| if partner { (b, a) } else { (a, b) })
                .collect(),
            hatimeout: if variant & 4 == 0 {
                Duration::from_secs(2)
            } else {
                Duration::from_millis(20)
            },
            replication: variant & 8 != 0,
            config_digest: 77,
            ..HaSettings::default()
        }
    }
}

/// The configuration of the `replication_receiver` target.
pub const REPLICATION_CONFIG: &str = "executor start\nexecutor set nfa 192.0.2.2\n\
cluster add 192.0.2.100\n\
port add 192.0.2.100@80 method mac selectionalgorithm affinity stickytime 60 repstrategy both\n\
port add 192.0.2.100@8080 method nat repstrategy both\n\
server add 192.0.2.100@80@192.0.2.11+192.0.2.12\n\
server add 192.0.2.100@8080@192.0.2.11+192.0.2.12 returnaddress 192.0.2.200 mapport 80\n";

/// The configuration of the `advisor_state` target (shared with the seed generator, so that
/// seeds are the exports of a scheduler with the same targets): two ports of a dual-stack
/// cluster, a port-wide and a cluster-specific advisor on each, a custom one among them.
pub const ADVISOR_CONFIG: &str = "cluster add 192.0.2.100+2001:db8::100\n\
port add 192.0.2.100@80\n\
port add 2001:db8::100@443\n\
server add 192.0.2.100@80@198.51.100.1+198.51.100.2\n\
server add 2001:db8::100@443@2001:db8::1+2001:db8::2\n\
advisor start http 80\n\
advisor start connect 192.0.2.100@80\n\
advisor start ping 443\n\
advisor start ADV_x1 2001:db8::100@443\n\
advisor retries ping 443 2\n";
