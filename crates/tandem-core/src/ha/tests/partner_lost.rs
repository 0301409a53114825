//! The partner-lost notice (appliance helper): when two-way contact went, until it is back.

use super::harness::*;
use crate::ha::heartbeat::State;
use std::time::Duration;

#[test]
fn partner_lost_is_timed_from_the_loss_and_cleared_when_found() {
    let o = PairOptions::default();
    let mut p = HaPair::started(&o, Duration::from_secs(10));
    assert_eq!(p.nodes[A].m().status(p.now).partner_lost_ms, None);
    // The secondary dies: the Active stays Active and knows since when it is alone.
    p.kill(B);
    let lost = p
        .run_until_cond(Duration::from_secs(10), |p| {
            p.nodes[A].m().status(p.now).partner_lost_ms.is_some()
        })
        .expect("partner lost");
    p.run_for(Duration::from_secs(3));
    let st = p.nodes[A].m().status(p.now);
    assert_eq!(st.state, State::Active);
    let age = st.partner_lost_ms.expect("still lost");
    let since = u64::try_from((p.now - lost).as_millis()).unwrap();
    assert!(
        age >= since && age <= since + 1000,
        "age {age} ms, lost {since} ms ago"
    );
    // It comes back: the notice goes.
    p.restart(B);
    p.run_until_cond(Duration::from_secs(10), |p| {
        p.nodes[A].m().status(p.now).partner_lost_ms.is_none()
    })
    .expect("partner found again");
    assert!(p.nodes[A].m().in_contact());
}

#[test]
fn one_of_two_heartbeat_pairs_silent_is_not_a_lost_partner() {
    // Two networks: the appliance's public and sync pairs. Only the sync one fails.
    let o = PairOptions {
        pairs: 2,
        ..PairOptions::default()
    };
    let mut p = HaPair::started(&o, Duration::from_secs(10));
    for l in &mut p.links[1] {
        l.up = false;
    }
    p.run_for(Duration::from_secs(10));
    let st = p.nodes[B].m().status(p.now);
    assert_eq!(st.state, State::Standby, "one network cut: no takeover");
    assert_eq!(st.partner_lost_ms, None);
    assert_eq!(st.heartbeats[1].status, crate::ha::PairLiveness::Down);
    // Both cut: lost, and the Standby takes over.
    for l in &mut p.links[0] {
        l.up = false;
    }
    p.run_for(Duration::from_secs(5));
    let st = p.nodes[B].m().status(p.now);
    assert_eq!(st.state, State::Active, "both networks cut: takeover");
    assert!(st.partner_lost_ms.is_some());
}
