//! `LbSession` against the real sans-IO GWM (`sasp::gwm`, branch `gwm`), both sides in
//! memory: push and pull, all and changed only, quiesce, shutdown.
//!
//! Not compiled on branch `sasp` (it has no `sasp::gwm`): once both branches are merged,
//! add `mod interop;` to `sasp/tests/mod.rs`. It passed against `gwm` at 41745ad.

use crate::config::{SaspGwm, SaspMode};
use crate::sasp::gwm::{ConnId, Gwm, GwmSettings, MemberHealth, MemberKey};
use crate::sasp::lb::*;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// Moves bytes both ways until neither side has anything to send.
fn pump(lb: &mut LbSession, gwm: &mut Gwm, c: ConnId, now: Instant) {
    for _ in 0..100 {
        let mut moved = false;
        while let Some(b) = lb.poll_transmit() {
            gwm.handle_bytes(now, c, &b);
            moved = true;
        }
        while let Some(b) = gwm.poll_transmit(c) {
            lb.handle_bytes(now, &b);
            moved = true;
        }
        if let Some(reason) = gwm.poll_close(c) {
            panic!("the GWM closes the connection: {reason}");
        }
        if !moved {
            return;
        }
    }
    panic!("the two sides never go quiet");
}

/// Runs both sides for `secs` seconds in 500 ms steps.
fn run(lb: &mut LbSession, gwm: &mut Gwm, c: ConnId, now: &mut Instant, secs: u64) {
    for _ in 0..secs * 2 {
        *now += Duration::from_millis(500);
        gwm.handle_timeout(*now);
        lb.handle_timeout(*now);
        pump(lb, gwm, c, *now);
    }
}

#[test]
fn lb_session_and_gwm_interoperate() {
    let modes = [
        (SaspMode::Push, false),
        (SaspMode::Pull, false),
        (SaspMode::Push, true),
        (SaspMode::Pull, true),
    ];
    for (mode, changed_only) in modes {
        let t0 = Instant::now();
        let mut gwm = Gwm::new(GwmSettings::default());
        let c = gwm.accept(t0, "lb".into()).unwrap();
        let [m1, m2] = [1u8, 2]
            .map(|i| MemberId::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)), 80, PROTOCOL_TCP));
        let groups = Groups::from([("192.0.2.100@80".to_string(), BTreeSet::from([m1, m2]))]);
        let gwm_cfg = SaspGwm {
            mode,
            changed_only,
            ..SaspGwm::default()
        };
        let mut lb = LbSession::new(LbSettings::new("tandem-192.0.2.1", &gwm_cfg), groups).unwrap();
        lb.handle_connected(t0);
        pump(&mut lb, &mut gwm, c, t0);
        for (m, load) in [(m1, 1.0), (m2, 3.0)] {
            let key = MemberKey {
                address: m.address,
                port: m.port,
                protocol: m.protocol,
            };
            let health = MemberHealth {
                contact: true,
                load: Some(load),
                confident: true,
                last_error: None,
            };
            gwm.set_member_health(t0, key, health);
        }
        let mut now = t0;
        run(&mut lb, &mut gwm, c, &mut now, 20);
        assert_eq!(
            lb.state(),
            SessionState::Connected,
            "{mode:?} {changed_only}"
        );
        let table = &lb.weights()["192.0.2.100@80"];
        assert!(table[&m1].contact() && table[&m1].confident(), "{table:?}");
        assert!(
            table[&m1].weight > table[&m2].weight,
            "the less loaded member weighs more: {table:?}"
        );
        lb.set_quiesce(now, m1, true);
        run(&mut lb, &mut gwm, c, &mut now, 20);
        let table = &lb.weights()["192.0.2.100@80"];
        assert!(table[&m1].quiesce(), "{mode:?} {changed_only}: {table:?}");
        assert_eq!(effective_weight(&table[&m1], 20), 0);
        assert!(effective_weight(&table[&m2], 20) > 0);
        let events: Vec<LbEvent> = std::iter::from_fn(|| lb.poll_event()).collect();
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, LbEvent::Error { .. } | LbEvent::Closed { .. })),
            "{events:?}"
        );
        lb.shutdown(now);
        pump(&mut lb, &mut gwm, c, now);
        let events: Vec<LbEvent> = std::iter::from_fn(|| lb.poll_event()).collect();
        assert_eq!(
            events,
            [LbEvent::Closed {
                reason: "shut down".into()
            }]
        );
    }
}
