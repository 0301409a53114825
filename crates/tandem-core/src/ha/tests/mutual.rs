//! Mutual high availability: two nodes, two HA instances each (one per cluster group), joined
//! by one simulated link, in simulated time. As the daemon does, each node routes every
//! datagram by its instance byte ([`datagram::instance_of`]) to the instance's [`HaNode`], and
//! each record to the instance of its cluster; the instances are configured from a real
//! role-`both` configuration ([`Groups::from_config`], [`Groups::settings`]).

use super::harness::{MAX_STEPS, addr};
use crate::config::{Config, Protocol, Recovery, Role};
use crate::ha::datagram;
use crate::ha::heartbeat::{ProductVersion, State};
use crate::ha::machine::HaSettings;
use crate::ha::mutual::{self, Groups};
use crate::ha::node::{Event, Node as HaNode};
use crate::replication::{ConnectionRecord, Record};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const NFA: [[u8; 4]; 2] = [[192, 0, 2, 1], [192, 0, 2, 2]];
/// Cluster of node A's group (primaryhost 192.0.2.1) and of node B's (192.0.2.2).
const CLUSTER: [[u8; 4]; 2] = [[192, 0, 2, 100], [192, 0, 2, 200]];

fn ip(a: [u8; 4]) -> IpAddr {
    addr(a[0], a[1], a[2], a[3])
}

/// Node `n`'s configuration: its nfa, the nfa heartbeat pair, two clusters one per node,
/// each with a replicating port, role both.
fn config_text(n: usize, recovery: &str) -> String {
    let (me, partner) = (ip(NFA[n]), ip(NFA[1 - n]));
    format!(
        "executor set nfa {me}\n\
         cluster add {c0} primaryhost {p0}\n\
         cluster add {c1} primaryhost {p1}\n\
         port add {c0}@80 repstrategy connection\n\
         port add {c1}@80 repstrategy connection\n\
         server add {c0}@80@198.51.100.11\n\
         server add {c1}@80@198.51.100.12\n\
         highavailability heartbeat add {me} {partner}\n\
         highavailability backup add both {recovery} 20001\n",
        c0 = ip(CLUSTER[0]),
        c1 = ip(CLUSTER[1]),
        p0 = ip(NFA[0]),
        p1 = ip(NFA[1]),
    )
}

fn load(text: &str) -> Config {
    crate::config::load_file(text, "mutual", &Config::default()).expect("mutual configuration")
}

fn connection(cluster: IpAddr, port: u16) -> Record {
    let server = if cluster == ip(CLUSTER[0]) {
        addr(198, 51, 100, 11)
    } else {
        addr(198, 51, 100, 12)
    };
    Record::Connection(ConnectionRecord {
        proto: Protocol::Tcp,
        client: SocketAddr::new(addr(203, 0, 113, 7), port),
        cluster: SocketAddr::new(cluster, 80),
        server,
        nat: None,
        client_mac: [2, 0, 0, 0, 0, 7],
        client_ack: 1,
        closing: false,
        ended: false,
        idle_ms: 0,
        staletimeout_s: 300,
    })
}

struct Host {
    nodes: [HaNode; 2],
    alive: bool,
    /// What the data plane forwards, per instance, as the events said.
    forwarding: [bool; 2],
    groups: Groups,
    /// The connection table: (cluster, client port) → record.
    table: BTreeMap<(IpAddr, u16), Record>,
    snapshot_wanted: [bool; 2],
    epoch: u64,
    /// Scripts run, with the instance (goActive / goStandby per group).
    scripts: Vec<(u8, &'static str)>,
}

struct InFlight {
    at: Instant,
    to: usize,
    from: SocketAddr,
    local: IpAddr,
    bytes: Vec<u8>,
}

struct MutualPair {
    now: Instant,
    hosts: [Host; 2],
    inflight: Vec<InFlight>,
}

const KEY: &[u8] = b"mutual key";

fn host(n: usize, recovery: &str, epoch: u64, now: Instant) -> Host {
    let config = load(&config_text(n, recovery));
    let groups = Groups::from_config(&config)
        .expect("a valid mutual configuration")
        .expect("role both");
    let mut base = HaSettings::from_config(&config);
    base.config_digest = 77;
    let settings = [0, 1].map(|i| groups.settings(&config, &base, i));
    let nodes = [0u8, 1].map(|i| {
        let mut node = HaNode::new(epoch, ProductVersion::new(9, 0, 5, 8), 100 + u32::from(i));
        node.set_instance(i);
        node.set_key(now, Some(KEY.to_vec()));
        node.configure(now, &config, settings[usize::from(i)].clone());
        node
    });
    Host {
        nodes,
        alive: true,
        forwarding: [false; 2],
        groups,
        table: BTreeMap::new(),
        snapshot_wanted: [false; 2],
        epoch,
        scripts: Vec::new(),
    }
}

impl MutualPair {
    fn new(recovery: &str) -> MutualPair {
        let now = Instant::now();
        let mut p = MutualPair {
            now,
            hosts: [
                host(0, recovery, 1_000_000, now),
                host(1, recovery, 1_000_001, now),
            ],
            inflight: Vec::new(),
        };
        p.start(0);
        p.start(1);
        p
    }

    fn start(&mut self, n: usize) {
        let now = self.now;
        for i in 0..2 {
            self.hosts[n].nodes[i].executor_started(now);
        }
        self.drain(n);
    }

    fn kill(&mut self, n: usize) {
        let h = &mut self.hosts[n];
        h.alive = false;
        h.forwarding = [false; 2];
        h.table.clear();
    }

    fn restart(&mut self, n: usize, recovery: &str) {
        let epoch = self.hosts[n].epoch + 10_000;
        self.hosts[n] = host(n, recovery, epoch, self.now);
        self.start(n);
    }

    fn state(&self, n: usize, instance: usize) -> State {
        self.hosts[n].nodes[instance].machine().state()
    }

    /// Which node forwards each cluster group (None: none or both).
    fn forwarder(&self, instance: usize) -> Option<usize> {
        let f: Vec<usize> = (0..2)
            .filter(|&n| self.hosts[n].alive && self.hosts[n].forwarding[instance])
            .collect();
        (f.len() == 1).then(|| f[0])
    }

    /// New connections on node `n` for `cluster`: in its table, queued to the instance of
    /// the cluster (as the data plane's records are).
    fn open(&mut self, n: usize, cluster: IpAddr, first: u16, count: u16) {
        let h = &mut self.hosts[n];
        let inst = usize::from(h.groups.instance_of_cluster(cluster).expect("a cluster"));
        let records: Vec<Record> = (first..first + count)
            .map(|p| connection(cluster, p))
            .collect();
        for r in &records {
            if let Record::Connection(c) = r {
                h.table.insert((cluster, c.client.port()), *r);
            }
        }
        h.nodes[inst].push_records(records);
        self.drain(n);
    }

    fn holds(&self, n: usize, cluster: IpAddr, first: u16, count: u16) -> usize {
        (first..first + count)
            .filter(|p| self.hosts[n].table.contains_key(&(cluster, *p)))
            .count()
    }

    fn drain(&mut self, n: usize) {
        loop {
            let now = self.now;
            let mut progressed = false;
            for i in 0..2 {
                while let Some(t) = self.hosts[n].nodes[i].poll_transmit() {
                    progressed = true;
                    if self.hosts[n].alive {
                        self.inflight.push(InFlight {
                            at: now + Duration::from_millis(1),
                            to: 1 - n,
                            from: SocketAddr::new(t.source, t.destination.port()),
                            local: t.destination.ip(),
                            bytes: t.bytes,
                        });
                    }
                }
                while let Some(e) = self.hosts[n].nodes[i].poll_event() {
                    progressed = true;
                    let h = &mut self.hosts[n];
                    match e {
                        Event::Machine(a) => {
                            if let Some(f) = a.forwarding() {
                                h.forwarding[i] = f;
                            }
                            if let crate::ha::Action::RunScript { name, .. } = a {
                                h.scripts.push((i as u8, name));
                            }
                        }
                        Event::TakeSnapshot => h.snapshot_wanted[i] = true,
                        Event::Install(records) => {
                            let mut installed = 0;
                            for r in records {
                                if let Record::Connection(c) = r {
                                    h.table.insert((c.cluster.ip(), c.client.port()), r);
                                    installed += 1;
                                }
                            }
                            h.nodes[i].note_installed(installed);
                        }
                        Event::Note(_)
                        | Event::PartnerHealth(_)
                        | Event::BuildBundle(_)
                        | Event::SyncApply(_)
                        | Event::SyncDiscarded(_) => {}
                    }
                }
                if self.hosts[n].snapshot_wanted[i] && self.hosts[n].alive {
                    let h = &mut self.hosts[n];
                    h.snapshot_wanted[i] = false;
                    // Only the instance's clusters (Engine::snapshot_records_for).
                    let records: Vec<Record> = h
                        .table
                        .iter()
                        .filter(|((c, _), _)| h.groups.instance_of_cluster(*c) == Some(i as u8))
                        .map(|(_, r)| *r)
                        .collect();
                    h.nodes[i].full_sync(now, records);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn next_event(&self) -> Option<Instant> {
        let mut t = self.inflight.iter().map(|f| f.at).min();
        for h in self.hosts.iter().filter(|h| h.alive) {
            for node in &h.nodes {
                if let Some(at) = node.poll_timeout() {
                    t = Some(t.map_or(at, |x: Instant| x.min(at)));
                }
            }
        }
        t
    }

    fn step(&mut self) {
        let now = self.now;
        let (due, rest): (Vec<InFlight>, Vec<InFlight>) = std::mem::take(&mut self.inflight)
            .into_iter()
            .partition(|f| f.at <= now);
        self.inflight = rest;
        for f in due {
            if !self.hosts[f.to].alive {
                continue;
            }
            // The daemon's receive path: route by the instance byte.
            let inst = usize::from(datagram::instance_of(&f.bytes).min(1));
            self.hosts[f.to].nodes[inst].handle_datagram(now, f.local, f.from, &f.bytes);
            self.drain(f.to);
        }
        for n in 0..2 {
            if !self.hosts[n].alive {
                continue;
            }
            for i in 0..2 {
                if self.hosts[n].nodes[i]
                    .poll_timeout()
                    .is_some_and(|t| t <= now)
                {
                    self.hosts[n].nodes[i].handle_timeout(now);
                }
            }
            self.drain(n);
        }
    }

    fn run_until_cond(&mut self, limit: Duration, cond: impl Fn(&MutualPair) -> bool) -> bool {
        let until = self.now + limit;
        for _ in 0..MAX_STEPS {
            if cond(self) {
                return true;
            }
            let Some(next) = self.next_event().filter(|&t| t <= until) else {
                self.now = until;
                return cond(self);
            };
            self.now = next.max(self.now);
            self.step();
        }
        panic!("livelock");
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until_cond(d, |p| p.now >= until);
    }

    /// Each node Active for its own group, Standby for the other's, all Synchronized.
    fn settled_own(&self) -> bool {
        (0..2).all(|n| {
            (0..2).all(|i| {
                let want = if i == n {
                    State::Active
                } else {
                    State::Standby
                };
                self.state(n, i) == want
                    && self.hosts[n].nodes[i].machine().sub_state()
                        == crate::ha::SubState::Synchronized
            })
        }) && self.forwarder(0) == Some(0)
            && self.forwarder(1) == Some(1)
    }
}

#[test]
fn groups_follow_the_primaryhosts_and_both_nodes_number_them_alike() {
    let a = load(&config_text(0, "auto"));
    let b = load(&config_text(1, "auto"));
    let ga = Groups::from_config(&a).unwrap().unwrap();
    let gb = Groups::from_config(&b).unwrap().unwrap();
    for (i, cluster) in CLUSTER.iter().enumerate() {
        assert_eq!(ga.groups[i].primaryhost, gb.groups[i].primaryhost);
        assert_eq!(ga.groups[i].clusters, gb.groups[i].clusters);
        assert_eq!(ga.groups[i].clusters, vec![ip(*cluster)]);
        assert_eq!(ga.groups[i].local, i == 0);
        assert_eq!(gb.groups[i].local, i == 1);
    }
    let base = HaSettings::from_config(&a);
    let role = |g: &Groups, c: &Config, i| g.settings(c, &base, i).backup.unwrap().role;
    assert_eq!(role(&ga, &a, 0), Role::Primary);
    assert_eq!(role(&ga, &a, 1), Role::Backup);
    assert_eq!(role(&gb, &b, 0), Role::Backup);
    assert_eq!(role(&gb, &b, 1), Role::Primary);
    assert_eq!(ga.instance_of_cluster(ip(CLUSTER[1])), Some(1));
    assert_eq!(ga.instance_of_cluster(addr(192, 0, 2, 9)), None);
    // A non-mutual configuration has no groups.
    let plain = load("cluster add 192.0.2.100\nhighavailability backup add primary auto 20001\n");
    assert_eq!(Groups::from_config(&plain), Ok(None));
}

#[test]
fn ipv6_primaryhosts_group_the_same_way() {
    let cfg = load(
        "executor set nfa 2001:db8::2\n\
         cluster add 2001:db8::100 primaryhost 2001:db8::1\n\
         cluster add 2001:db8::200 primaryhost 2001:db8::2\n\
         cluster add 2001:db8::201 primaryhost 2001:db8::2\n\
         highavailability heartbeat add 2001:db8::2 2001:db8::1\n\
         highavailability backup add both manual 20001\n",
    );
    let g = Groups::from_config(&cfg).unwrap().unwrap();
    assert_eq!(
        g.groups[0].primaryhost,
        "2001:db8::1".parse::<IpAddr>().unwrap()
    );
    assert!(!g.groups[0].local);
    assert!(g.groups[1].local);
    assert_eq!(g.groups[1].clusters.len(), 2);
    let s = g.settings(&cfg, &HaSettings::from_config(&cfg), 1);
    assert_eq!(s.backup.unwrap().role, Role::Primary);
    assert_eq!(s.backup.unwrap().recovery, Recovery::Manual);
}

#[test]
fn role_both_refuses_configurations_that_cannot_run() {
    let err = |text: &str| Groups::from_config(&load(text)).unwrap_err();
    let tail = "highavailability heartbeat add 192.0.2.1 192.0.2.2\n\
                highavailability backup add both auto 20001\n";
    let e = err(&format!(
        "executor set nfa 192.0.2.1\ncluster add 192.0.2.100 primaryhost 192.0.2.1\n{tail}"
    ));
    assert!(e.contains("at least two clusters"), "{e}");
    let e = err(&format!(
        "executor set nfa 192.0.2.1\ncluster add 192.0.2.100 primaryhost 192.0.2.1\n\
         cluster add 192.0.2.200\n{tail}"
    ));
    assert!(e.contains("cluster 192.0.2.200 has no primaryhost"), "{e}");
    let e = err(&format!(
        "executor set nfa 192.0.2.1\ncluster add 192.0.2.100 primaryhost 192.0.2.1\n\
         cluster add 192.0.2.200 primaryhost 192.0.2.9\n{tail}"
    ));
    assert!(e.contains("primaryhost 192.0.2.9 is neither"), "{e}");
    let e = err(
        "executor set nfa 192.0.2.1\ncluster add 192.0.2.100+192.0.2.200 primaryhost 192.0.2.1\n\
         highavailability heartbeat add 192.0.2.5 192.0.2.6\n\
         highavailability backup add both auto 20001\n",
    );
    assert!(
        e.contains("heartbeat pair between the two nodes' nfas"),
        "{e}"
    );
    let e = err("cluster add 192.0.2.100+192.0.2.200\nhighavailability backup add both auto 1\n");
    assert!(e.contains("executor set nfa"), "{e}");
    // primaryhost without role both: reported, not silently ignored.
    let w = mutual::warnings(&load(
        "cluster add 192.0.2.100 primaryhost 192.0.2.1\nhighavailability backup add primary auto 1\n",
    ));
    assert!(w[0].contains("used only with role both"), "{w:?}");
}

#[test]
fn each_node_is_active_for_its_own_group_and_replicates_it_to_the_other() {
    let mut p = MutualPair::new("auto");
    assert!(
        p.run_until_cond(Duration::from_secs(20), |p| p.settled_own()),
        "states: A {:?}/{:?}, B {:?}/{:?}",
        p.state(0, 0),
        p.state(0, 1),
        p.state(1, 0),
        p.state(1, 1)
    );
    let (c0, c1) = (ip(CLUSTER[0]), ip(CLUSTER[1]));
    p.open(0, c0, 1000, 50);
    p.open(1, c1, 2000, 50);
    p.run_for(Duration::from_secs(2));
    // Both ways: A holds B's connections and B holds A's.
    assert_eq!(p.holds(1, c0, 1000, 50), 50);
    assert_eq!(p.holds(0, c1, 2000, 50), 50);
    // Every datagram went to the instance it names: none dropped as for another instance.
    for h in &p.hosts {
        for n in &h.nodes {
            assert_eq!(n.counters().wrong_instance, 0);
        }
    }
    // Scripts per group: node A ran goActive for instance 0 and goStandby for instance 1.
    assert!(p.hosts[0].scripts.contains(&(0, "goActive")));
    assert!(p.hosts[0].scripts.contains(&(1, "goStandby")));
}

#[test]
fn a_failed_node_s_group_moves_to_the_other_and_auto_gives_it_back_after_the_hand_over() {
    let mut p = MutualPair::new("auto");
    assert!(p.run_until_cond(Duration::from_secs(20), |p| p.settled_own()));
    let (c0, c1) = (ip(CLUSTER[0]), ip(CLUSTER[1]));
    p.open(0, c0, 1000, 50);
    p.open(1, c1, 2000, 50);
    p.run_for(Duration::from_secs(1));
    p.kill(0);
    assert!(
        p.run_until_cond(Duration::from_secs(10), |p| p.forwarder(0) == Some(1)
            && p.forwarder(1) == Some(1)),
        "B serves both groups"
    );
    assert_eq!(p.state(1, 0), State::Active);
    assert_eq!(
        p.holds(1, c0, 1000, 50),
        50,
        "A's replicated connections survive on B"
    );
    // New connections of A's group on B while A is away.
    p.open(1, c0, 3000, 20);
    p.restart(0, "auto");
    assert!(
        p.run_until_cond(Duration::from_secs(30), |p| p.settled_own()),
        "auto: A takes its group back"
    );
    // The hand-over gave A every record of its group, old and new, and B's group stayed on B.
    assert_eq!(p.holds(0, c0, 1000, 50), 50);
    assert_eq!(p.holds(0, c0, 3000, 20), 20);
    assert_eq!(
        p.holds(0, c1, 2000, 50),
        50,
        "A resynchronised as B's backup"
    );
}

#[test]
fn manual_keeps_the_group_until_takeover_of_its_primaryhost() {
    let mut p = MutualPair::new("manual");
    assert!(p.run_until_cond(Duration::from_secs(20), |p| p.settled_own()));
    p.kill(1);
    assert!(
        p.run_until_cond(Duration::from_secs(10), |p| p.forwarder(1) == Some(0)
            && p.forwarder(0) == Some(0))
    );
    p.restart(1, "manual");
    p.run_for(Duration::from_secs(15));
    // Manual: B stays Standby for its own group; A keeps both.
    assert_eq!(p.forwarder(1), Some(0));
    assert_eq!(p.state(1, 1), State::Standby);
    assert_eq!(p.forwarder(0), Some(0));
    // `takeover 192.0.2.2` on B: the instance of that primaryhost's group.
    let inst = p.hosts[1]
        .groups
        .by_primaryhost(ip(NFA[1]))
        .expect("a group")
        .instance;
    let now = p.now;
    p.hosts[1].nodes[usize::from(inst)]
        .takeover(now)
        .expect("takeover of B's group");
    p.drain(1);
    assert!(p.run_until_cond(Duration::from_secs(10), |p| p.settled_own()));
}

#[test]
fn a_datagram_for_an_instance_the_node_does_not_run_is_a_counted_drop() {
    let mut p = MutualPair::new("auto");
    assert!(p.run_until_cond(Duration::from_secs(20), |p| p.settled_own()));
    // A heartbeat of instance 1 given to instance 0 (a shell that routes wrongly, or a
    // non-mutual node hearing a mutual partner): dropped and counted, state unchanged.
    let now = p.now;
    let hb = crate::ha::heartbeat::Heartbeat {
        version: ProductVersion::new(9, 0, 5, 8),
        epoch: 1,
        seq: 1,
        ack_epoch: 0,
        ack: 0,
        role: Role::Primary,
        state: State::Active,
        sub_state: crate::ha::SubState::Synchronized,
        recovery: Recovery::Auto,
        reach_count: 0,
        reach_total: 0,
        config_digest: 77,
        request: crate::ha::Request::None,
        maintenance: false,
        handover: false,
        hatimeout_ms: 2000,
        interval_ms: 500,
        records: Vec::new(),
    };
    let bytes = crate::ha::heartbeat::encode_for(&hb, 1, Some(KEY));
    assert_eq!(datagram::instance_of(&bytes), 1);
    let from = SocketAddr::new(ip(NFA[1]), 20001);
    p.hosts[0].nodes[0].handle_datagram(now, ip(NFA[0]), from, &bytes);
    assert_eq!(p.hosts[0].nodes[0].counters().wrong_instance, 1);
    let frame = datagram::seal_for(1, datagram::Direction::KeyProbe, 1, 2, &[], Some(KEY));
    assert_eq!(datagram::instance_of(&frame), 1);
    p.hosts[0].nodes[0].handle_datagram(now, ip(NFA[0]), from, &frame);
    assert_eq!(p.hosts[0].nodes[0].counters().wrong_instance, 2);
    assert!(p.settled_own());
    // Instance 0's datagrams are byte-compatible with a non-mutual node's (byte zero).
    assert_eq!(
        datagram::instance_of(&crate::ha::heartbeat::encode(&hb, None)),
        0
    );
}
