//! `tandem_core::ha::Node::handle_datagram` with arbitrary datagrams, from addresses among
//! the configured pairs, into a node (A) that runs as one half of a real pair: its partner
//! (B) is a second `Node`, and the two exchange their genuine heartbeats and replication
//! frames between the fuzzer's injections.
//!
//! Both nodes have the replication configuration of the `replication_receiver` target
//! (repstrategy both) and two heartbeat pairs (192.0.2.1 ↔ 192.0.2.2, 198.51.100.1 ↔
//! 198.51.100.2). The first byte picks a variant: bit 0 keyed pair, bit 1 A is the backup,
//! bit 2 hatimeout 0.1 s (else 2 s), bit 3 recovery manual.
//!
//! Then operations `ctrl, dt, len(u16 le), bytes` until the input ends:
//!
//! * `ctrl` bits 0-1: where the datagram comes from: the partner's address on pair 0 or
//!   pair 1, A's own address (reflected), or an address of no pair; bit 2: from another UDP
//!   port than the heartbeat port; bit 3: the bytes are not sent as they are but select one of
//!   B's earlier genuine datagrams (first byte) and XOR the rest onto it (a replay, or a
//!   bit-flipped genuine frame); bit 4: the link is down for this step (genuine traffic lost);
//!   bit 5: the data plane queues records on A; bit 6: the operator runs `takeover` on A;
//!   bit 7: B crashes and restarts (a higher epoch).
//! * `dt`: time advance before the step, in 10 ms.
//!
//! Checked besides "no panic": timers never livelock and each call emits a bounded number of
//! datagrams and events; datagrams go only to the partner's pair addresses; on a keyed pair, what the fuzzer injects can only be forged or
//! replayed, so A must end every step in the same HA state (state and sub-state) as a twin
//! pair that got an empty datagram instead of each injection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tandem_core::config::{Config, load_file};
use tandem_core::ha::{Event, HaSettings, Node, ProductVersion, State, SubState, Transmit};
use tandem_core::replication::{AffinityRecord, ConnectionRecord, Record};
use tandem_fuzz::Input;

const KEY: &[u8] = b"fuzz pair key, 32 bytes long....";
const PORT: u16 = 20001;
const A: usize = 0;
const B: usize = 1;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Heartbeat pairs: (address on A, address on B).
fn pairs() -> [(IpAddr, IpAddr); 2] {
    [
        (ip("192.0.2.1"), ip("192.0.2.2")),
        (ip("198.51.100.1"), ip("198.51.100.2")),
    ]
}

fn config(variant: u8, node: usize) -> &'static Config {
    static C: OnceLock<Vec<Config>> = OnceLock::new();
    let all = C.get_or_init(|| {
        let mut v = Vec::new();
        for variant in 0..16u8 {
            for node in [A, B] {
                let backup = (variant & 2 != 0) == (node == A);
                let mut t = String::from(tandem_fuzz::REPLICATION_CONFIG);
                t.push_str(if variant & 4 != 0 {
                    "executor set hatimeout 0.1\n"
                } else {
                    "executor set hatimeout 2\n"
                });
                for (a, b) in pairs() {
                    let (src, dst) = if node == A { (a, b) } else { (b, a) };
                    t.push_str(&format!("highavailability heartbeat add {src} {dst}\n"));
                }
                t.push_str(&format!(
                    "highavailability backup add {} {} {PORT}\n",
                    if backup { "backup" } else { "primary" },
                    if variant & 8 != 0 { "manual" } else { "auto" },
                ));
                if variant & 1 != 0 {
                    t.push_str("highavailability key /etc/tandem/ha.key\n");
                }
                v.push(load_file(&t, "fuzz.cfg", &Config::default()).expect("valid config"));
            }
        }
        v
    });
    &all[usize::from(variant & 15) * 2 + node]
}

fn records() -> Vec<Record> {
    let mac = ConnectionRecord {
        proto: tandem_core::config::Protocol::Tcp,
        client: "203.0.113.7:40000".parse().unwrap(),
        cluster: "192.0.2.100:80".parse().unwrap(),
        server: ip("192.0.2.11"),
        nat: None,
        client_mac: [2, 0, 0, 0, 2, 0],
        client_ack: 777,
        closing: false,
        ended: false,
        idle_ms: 10,
        staletimeout_s: 300,
    };
    let nat = ConnectionRecord {
        client: "203.0.113.8:40001".parse().unwrap(),
        cluster: "192.0.2.100:8080".parse().unwrap(),
        server: ip("192.0.2.12"),
        nat: Some(tandem_core::forward::NatMapping {
            returnaddress: ip("192.0.2.200"),
            nat_port: 40001,
            server_port: 80,
        }),
        ..mac
    };
    let aff = AffinityRecord {
        cluster: ip("192.0.2.100"),
        port: 80,
        client: ip("203.0.113.7"),
        server: ip("192.0.2.11"),
        age_ms: 5,
        stickytime_s: 60,
    };
    vec![
        Record::Connection(mac),
        Record::Connection(nat),
        Record::Affinity(aff),
    ]
}

struct Pair {
    nodes: [Node; 2],
    epochs: [u64; 2],
    /// Genuine datagrams in flight: (to, local address, from, bytes).
    flight: Vec<(usize, IpAddr, SocketAddr, Vec<u8>)>,
    variant: u8,
}

impl Pair {
    fn new(variant: u8, now: Instant) -> Pair {
        let mut p = Pair {
            nodes: [A, B].map(|_| Node::new(0, ProductVersion::new(9, 0, 5, 8), 1)),
            epochs: [1_000_000, 2_000_000],
            flight: Vec::new(),
            variant,
        };
        p.nodes = [A, B].map(|n| p.fresh(n, now));
        for n in [A, B] {
            p.drain(n, now);
        }
        p
    }

    fn fresh(&self, n: usize, now: Instant) -> Node {
        let cfg = config(self.variant, n);
        let mut node = Node::new(
            self.epochs[n],
            ProductVersion::new(9, 0, 5, 8),
            7 + n as u32,
        );
        if self.variant & 1 != 0 {
            node.set_key(now, Some(KEY.to_vec()));
        }
        let mut settings = HaSettings::from_config(cfg);
        settings.config_digest = 77;
        node.configure(now, cfg, settings);
        node.executor_started(now);
        node
    }

    fn restart(&mut self, n: usize, now: Instant) {
        self.epochs[n] += 1000;
        self.flight.retain(|f| f.0 != n);
        self.nodes[n] = self.fresh(n, now);
        self.drain(n, now);
    }

    /// Carries out node `n`'s events and queues its datagrams for the partner.
    fn drain(&mut self, n: usize, now: Instant) {
        for _ in 0..64 {
            let mut busy = false;
            let mut sent = 0;
            while let Some(Transmit {
                source,
                destination,
                bytes,
            }) = self.nodes[n].poll_transmit()
            {
                sent += 1;
                assert!(sent < 100_000, "a node sends without end");
                let to = 1 - n;
                let partner = |(a, b): (IpAddr, IpAddr)| if to == A { a } else { b };
                assert!(
                    pairs().into_iter().any(|p| partner(p) == destination.ip()),
                    "sent to {destination}, not to the partner"
                );
                // Acknowledgements go back to the port a batch came from (since b3be72f no
                // source-port filter): a batch injected from another port is answered
                // there, which the partner, listening on the heartbeat port, never sees.
                if destination.port() == PORT {
                    let from = SocketAddr::new(source, PORT);
                    self.flight.push((to, destination.ip(), from, bytes));
                }
            }
            let mut events = 0;
            while let Some(e) = self.nodes[n].poll_event() {
                events += 1;
                assert!(events < 100_000, "a node emits events without end");
                match e {
                    Event::TakeSnapshot => {
                        self.nodes[n].full_sync(now, records());
                        busy = true;
                    }
                    Event::Install(r) => self.nodes[n].note_installed(r.len() as u64),
                    // Advisor states of the partner (a genuine Active sends them with
                    // `send_health`, which this pair never calls): decoded as tandemd does.
                    Event::PartnerHealth(chunk) => {
                        let _ = tandem_core::advisor::TargetState::decode_all(&chunk);
                    }
                    // The partner's diagnostics request: answered with a bundle, as tandemd's
                    // worker does.
                    Event::BuildBundle(id) => {
                        self.nodes[n].bundle_built(now, id, Ok(vec![n as u8; 3000]));
                        busy = true;
                    }
                    // A configuration entry from the partner: the harness has no daemon to
                    // commit it, so it reports the entry as failed (nothing changes).
                    Event::SyncApply(_) => {
                        self.nodes[n].sync_apply_failed(now, "fuzz harness".into());
                        busy = true;
                    }
                    Event::Machine(_) | Event::Note(_) | Event::SyncDiscarded(_) => {}
                }
            }
            if !busy {
                return;
            }
        }
        panic!("snapshots requested without end");
    }

    fn timeouts(&mut self, now: Instant) {
        for n in [A, B] {
            let mut rounds = 0;
            while self.nodes[n].poll_timeout().is_some_and(|t| t <= now) {
                rounds += 1;
                assert!(rounds < 1000, "timers livelock on node {n}");
                self.nodes[n].handle_timeout(now);
                self.drain(n, now);
            }
        }
    }

    /// Delivers the genuine datagrams (or loses them); logs B's delivered ones, for replays.
    fn exchange(&mut self, now: Instant, lost: bool, log: Option<&mut Vec<Vec<u8>>>) {
        let mut log = log;
        for _ in 0..8 {
            let flight = std::mem::take(&mut self.flight);
            if flight.is_empty() {
                return;
            }
            for (to, local, from, bytes) in flight {
                // Only delivered ones: replaying a lost datagram is a late delivery, not a
                // replay.
                if to == A
                    && !lost
                    && let Some(log) = log.as_deref_mut()
                    && log.len() < 256
                {
                    log.push(bytes.clone());
                }
                if !lost {
                    self.nodes[to].handle_datagram(now, local, from, &bytes);
                    self.drain(to, now);
                }
            }
        }
    }

    fn ha(&self, n: usize) -> (State, SubState) {
        let m = self.nodes[n].machine();
        (m.state(), m.sub_state())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let variant = input.u8();
    let keyed = variant & 1 != 0;
    let mut now = Instant::now();
    let mut fuzzed = Pair::new(variant, now);
    // The twin pair gets the same genuine traffic and an empty datagram for each injection
    // (keyed variants only).
    let mut twin = keyed.then(|| Pair::new(variant, now));
    let mut genuine: Vec<Vec<u8>> = Vec::new();

    while !input.is_empty() {
        let ctrl = input.u8();
        let dt = input.u8();
        let bytes = input.frame().unwrap_or_default();
        now += Duration::from_millis(u64::from(dt) * 10);
        let lost = ctrl & 0x10 != 0;

        for p in std::iter::once(&mut fuzzed).chain(twin.as_mut()) {
            p.timeouts(now);
            if ctrl & 0x80 != 0 {
                p.restart(B, now);
            }
            if ctrl & 0x20 != 0 {
                p.nodes[A].push_records(records());
            }
            if ctrl & 0x40 != 0 {
                let _ = p.nodes[A].takeover(now);
            }
            p.drain(A, now);
        }

        // The injection, into the fuzzed pair only.
        let pair = pairs()[usize::from(ctrl & 1)];
        let (local, from_ip) = match ctrl & 3 {
            0 | 1 => (pair.0, pair.1),
            2 => (pair.0, pair.0),
            _ => (pair.0, ip("203.0.113.66")),
        };
        let port = if ctrl & 4 != 0 { 40000 } else { PORT };
        let datagram = if ctrl & 8 != 0 && !genuine.is_empty() {
            let (&k, mask) = bytes.split_first().unwrap_or((&0, &[]));
            let mut g = genuine[usize::from(k) % genuine.len()].clone();
            for (b, m) in g.iter_mut().zip(mask) {
                *b ^= m;
            }
            g
        } else {
            bytes.to_vec()
        };
        let from = SocketAddr::new(from_ip, port);
        fuzzed.nodes[A].handle_datagram(now, local, from, &datagram);
        fuzzed.drain(A, now);
        // The twin gets an empty datagram at the same moment: handling any datagram may
        // flush queued records, and that timing is not what is compared.
        if let Some(t) = twin.as_mut() {
            t.nodes[A].handle_datagram(now, local, from, &[]);
            t.drain(A, now);
        }

        fuzzed.exchange(now, lost, Some(&mut genuine));
        fuzzed.timeouts(now);
        let _ = fuzzed.nodes[A].status(now);
        let _ = fuzzed.nodes[A].channel_status(now);
        if let Some(t) = twin.as_mut() {
            t.exchange(now, lost, None);
            t.timeouts(now);
            assert_eq!(
                fuzzed.ha(A),
                t.ha(A),
                "a forged or replayed datagram had another effect than an empty one on a keyed node"
            );
        }
    }
});
