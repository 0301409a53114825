//! The weight overlay in the data plane: advisor down, quiesce, all-down, manager weights,
//! over real frames through the engine.

mod common;

use common::*;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Instant;
use tandem_core::config::Config;
use tandem_core::forward::{Engine, Plan, Verdict};
use tandem_core::health::{AdvisorInput, Overlay, SaspInput, ServerId, WeightSource};

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

fn id(last: u8) -> ServerId {
    ServerId {
        cluster: IpAddr::from(CLUSTER),
        port: 80,
        server: ip(last),
    }
}

fn advisor_down(cfg: &Config, lasts: &[u8]) -> Overlay {
    let advisor: BTreeMap<ServerId, AdvisorInput> = lasts
        .iter()
        .map(|l| {
            (
                id(*l),
                AdvisorInput {
                    down: true,
                    ..AdvisorInput::default()
                },
            )
        })
        .collect();
    Overlay::compute(cfg, &advisor, &BTreeMap::new(), &SaspInput::default())
}

fn install(e: &Engine, cfg: &Config, overlay: &Overlay, now: Instant) -> Vec<Vec<u8>> {
    e.install(Plan::compile(cfg, overlay, true, OUR_MAC, &e.counters), now)
        .into_iter()
        .map(|f| f.bytes)
        .collect()
}

/// A SYN from `client`:`port`; the last byte of the server it went to.
fn syn(e: &Engine, client: [u8; 4], port: u16, now: Instant) -> Option<u8> {
    let mut f = tcp_from(CLIENT_MAC, (client, port), (CLUSTER, 80), SYN);
    match handle(e, &mut f, now) {
        Verdict::Transmit(_) => Some(f[5]),
        _ => None,
    }
}

/// Completes the handshake of `client`:`port`; the server's last byte.
fn ack(e: &Engine, client: [u8; 4], port: u16, now: Instant) -> Option<u8> {
    let mut f = tcp_from(CLIENT_MAC, (client, port), (CLUSTER, 80), ACK);
    match handle(e, &mut f, now) {
        Verdict::Transmit(_) => Some(f[5]),
        _ => None,
    }
}

fn resets(frames: &[Vec<u8>]) -> usize {
    frames
        .iter()
        .filter(|f| f.len() > 47 && f[12..14] == [8, 0] && f[23] == 6 && f[47] & 0x04 != 0)
        .count()
}

const THREE: &str = "server add 192.0.2.100@80@192.0.2.11+192.0.2.12+192.0.2.13\n";

#[test]
fn advisor_down_stops_new_connections_and_keeps_open_ones() {
    let now = Instant::now();
    let cfg = config(&format!("port add 192.0.2.100@80\n{THREE}"));
    let e = engine(&cfg, now);
    let open = (1000..1100)
        .find(|p| syn(&e, CLIENT, *p, now) == Some(11))
        .expect("a connection on .11");
    assert_eq!(ack(&e, CLIENT, open, now), Some(11));
    let frames = install(&e, &cfg, &advisor_down(&cfg, &[11]), now);
    assert_eq!(resets(&frames), 0, "reset no: nothing is ended");
    let mut per: HashMap<u8, u32> = HashMap::new();
    for p in 20000..20100 {
        *per.entry(syn(&e, CLIENT, p, now).expect("forwarded"))
            .or_default() += 1;
    }
    assert_eq!(per.get(&11), None, "down server got a new connection");
    assert_eq!((per[&12], per[&13]), (50, 50));
    assert_eq!(
        ack(&e, CLIENT, open, now),
        Some(11),
        "open connection continues"
    );
    let plan = e.plan();
    let s = plan
        .port(IpAddr::from(CLUSTER), 80, 6)
        .unwrap()
        .server(ip(11))
        .unwrap();
    assert_eq!(
        (s.weight, s.weight_source, s.accepts_new),
        (0, WeightSource::AdvisorDown, false)
    );
}

#[test]
fn reset_yes_resets_clients_of_a_server_an_advisor_marks_down() {
    let now = Instant::now();
    let cfg = config(&format!("port add 192.0.2.100@80 reset yes\n{THREE}"));
    let e = engine(&cfg, now);
    let mut on: HashMap<u8, u16> = HashMap::new();
    for p in 1000..1100 {
        let s = syn(&e, CLIENT, p, now).unwrap();
        ack(&e, CLIENT, p, now).unwrap();
        on.entry(s).or_insert(p);
    }
    let before = e.conns.len();
    let frames = install(&e, &cfg, &advisor_down(&cfg, &[11]), now);
    let on11 = before - e.conns.len();
    assert!(on11 > 0, "connections of .11 ended");
    assert_eq!(resets(&frames), on11, "one reset per connection of .11");
    assert_eq!(
        ack(&e, CLIENT, on[&12], now),
        Some(12),
        ".12 keeps its clients"
    );
    // Up again: nothing more is reset.
    let frames = install(&e, &cfg, &Overlay::default(), now);
    assert_eq!(resets(&frames), 0);
}

#[test]
fn quiesce_keeps_affinity_clients_and_their_connections() {
    let now = Instant::now();
    let mut cfg = config(&format!(
        "port add 192.0.2.100@80 selectionalgorithm affinity stickytime 60 reset yes\n{THREE}"
    ));
    let e = engine(&cfg, now);
    let sticky = [203, 0, 113, 50];
    let x = syn(&e, sticky, 1000, now).unwrap();
    ack(&e, sticky, 1000, now).unwrap();
    cfg.clusters
        .get_mut(&IpAddr::from(CLUSTER))
        .unwrap()
        .ports
        .get_mut(&80)
        .unwrap()
        .servers
        .get_mut(&ip(x))
        .unwrap()
        .quiesced = true;
    let overlay = Overlay::compute(
        &cfg,
        &BTreeMap::new(),
        &BTreeMap::new(),
        &SaspInput::default(),
    );
    let frames = install(&e, &cfg, &overlay, now);
    assert_eq!(resets(&frames), 0, "quiesce ends no connection");
    assert_eq!(
        ack(&e, sticky, 1000, now),
        Some(x),
        "open connection continues"
    );
    for p in 1001..1011 {
        assert_eq!(syn(&e, sticky, p, now), Some(x), "affinity client moved");
    }
    for host in 1..=60u8 {
        let s = syn(&e, [198, 51, 100, host], 2000, now).expect("forwarded");
        assert_ne!(s, x, "quiesced server got a new client");
    }
}

#[test]
fn advisor_down_breaks_affinity() {
    let now = Instant::now();
    let cfg = config(&format!(
        "port add 192.0.2.100@80 selectionalgorithm affinity stickytime 60\n{THREE}"
    ));
    let e = engine(&cfg, now);
    let sticky = [203, 0, 113, 50];
    let x = syn(&e, sticky, 1000, now).unwrap();
    install(&e, &cfg, &advisor_down(&cfg, &[x]), now);
    let y = syn(&e, sticky, 1001, now).expect("forwarded");
    assert_ne!(y, x, "affinity to a down server holds");
    for p in 1002..1012 {
        assert_eq!(syn(&e, sticky, p, now), Some(y), "new affinity holds");
    }
}

#[test]
fn all_down_spreads_new_connections_over_every_server() {
    let now = Instant::now();
    let cfg = config(&format!("port add 192.0.2.100@80\n{THREE}"));
    let e = engine(&cfg, now);
    install(&e, &cfg, &advisor_down(&cfg, &[11, 12, 13]), now);
    {
        let plan = e.plan();
        let port = plan.port(IpAddr::from(CLUSTER), 80, 6).unwrap();
        assert!(port.all_down);
        for s in &port.servers {
            assert_eq!((s.weight, s.weight_source), (10, WeightSource::AllDown));
        }
    }
    let mut per: HashMap<u8, u32> = HashMap::new();
    for p in 3000..3300 {
        *per.entry(syn(&e, CLIENT, p, now).expect("not dropped"))
            .or_default() += 1;
    }
    assert_eq!((per[&11], per[&12], per[&13]), (100, 100, 100));
    // One back: it alone takes new connections.
    install(&e, &cfg, &advisor_down(&cfg, &[11, 12]), now);
    assert!(
        !e.plan()
            .port(IpAddr::from(CLUSTER), 80, 6)
            .unwrap()
            .all_down
    );
    for p in 4000..4030 {
        assert_eq!(syn(&e, CLIENT, p, now), Some(13));
    }
}

#[test]
fn manager_weights_steer_new_connections_in_proportion() {
    let now = Instant::now();
    let mut cfg = config(&format!("port add 192.0.2.100@80\n{THREE}"));
    cfg.health.manager.running = true;
    let e = engine(&cfg, now);
    let weights: BTreeMap<ServerId, u32> = [(id(11), 2), (id(12), 4), (id(13), 14)].into();
    let overlay = Overlay::compute(&cfg, &BTreeMap::new(), &weights, &SaspInput::default());
    install(&e, &cfg, &overlay, now);
    let mut per: HashMap<u8, u32> = HashMap::new();
    for p in 5000..5200 {
        *per.entry(syn(&e, CLIENT, p, now).unwrap()).or_default() += 1;
    }
    assert_eq!((per[&11], per[&12], per[&13]), (20, 40, 140));
    let plan = e.plan();
    let s = plan
        .port(IpAddr::from(CLUSTER), 80, 6)
        .unwrap()
        .server(ip(13))
        .unwrap();
    assert_eq!((s.weight, s.weight_source), (14, WeightSource::Manager));
}

/// The manager over the engine's own counters: .11 holds 50 long-lived connections, .12 and
/// .13 are idle; within three intervals .11's weight is below theirs and new connections
/// follow the weights.
#[test]
fn manager_lowers_a_server_holding_long_lived_connections() {
    use std::time::Duration;
    use tandem_core::manager::{Manager, samples};
    let t0 = Instant::now();
    // .12 and .13 take no new connections while .11 gets its 50, then join at weight 10.
    let mut cfg = config(&format!(
        "port add 192.0.2.100@80\n{THREE}server set 192.0.2.100@80@192.0.2.12+192.0.2.13 weight 0\n"
    ));
    let e = engine(&cfg, t0);
    for p in 1000..1050 {
        assert_eq!(syn(&e, CLIENT, p, t0), Some(11));
        assert_eq!(ack(&e, CLIENT, p, t0), Some(11));
    }
    let cmd = tandem_core::config::parse_line(
        "server set 192.0.2.100@80@192.0.2.12+192.0.2.13 weight 10",
    )
    .unwrap()
    .unwrap();
    cfg.apply(&cmd).unwrap();
    // `manager start` (its grammar is helper G's).
    cfg.health.manager.running = true;
    let mut m = Manager::new();
    m.configure(&cfg, t0);
    let mut t = t0;
    let mut seen = Vec::new();
    for _ in 0..3 {
        assert!(m.poll_timeout().is_some_and(|d| d <= t));
        m.handle_timeout(t, &samples(&cfg, &e.counters), &BTreeMap::new());
        let overlay = Overlay::compute(&cfg, &BTreeMap::new(), m.weights(), &SaspInput::default());
        install(&e, &cfg, &overlay, t);
        let plan = e.plan();
        let port = plan.port(IpAddr::from(CLUSTER), 80, 6).unwrap();
        seen.push([11, 12, 13].map(|l| port.server(ip(l)).unwrap().weight));
        t += Duration::from_secs(2);
    }
    assert_eq!(seen, [[10, 17, 17], [11, 19, 19], [11, 19, 19]]);
    let mut per: HashMap<u8, u32> = HashMap::new();
    for p in 6000..6098 {
        *per.entry(syn(&e, [198, 51, 100, 9], p, t).expect("forwarded"))
            .or_default() += 1;
    }
    assert_eq!((per[&11], per[&12], per[&13]), (22, 38, 38));
}
