//! The diagnostics pull between two simulated nodes, over the partner channel's frames.

use super::harness::*;
use std::time::Duration;

#[test]
fn each_node_pulls_the_partners_bundle_over_a_lossy_channel() {
    let mut p = HaPair::started(&PairOptions::default(), Duration::from_secs(10));
    for link in &mut p.links {
        link[0].loss = 0.2;
        link[1].loss = 0.2;
    }
    for (n, partner) in [(A, B), (B, A)] {
        let now = p.now;
        let id = p.nodes[n]
            .node
            .request_bundle(now)
            .expect("partner in contact");
        let done = p.run_until_cond(Duration::from_secs(20), |p| {
            p.nodes[n].node.bundle_counters().pulled > 0
                || p.nodes[n].node.bundle_counters().failed > 0
        });
        assert!(done.is_some(), "no outcome");
        let got = p.nodes[n].node.bundle_outcome(id).expect("an outcome");
        assert_eq!(got, Ok(bundle_of(partner)));
    }
}

#[test]
fn a_pull_from_a_dead_partner_ends_with_the_reason() {
    let mut p = HaPair::started(&PairOptions::default(), Duration::from_secs(10));
    let now = p.now;
    let id = p.nodes[A].node.request_bundle(now).unwrap();
    p.kill(B);
    p.run_for(Duration::from_secs(8));
    let err = p.nodes[A]
        .node
        .bundle_outcome(id)
        .expect("an outcome")
        .unwrap_err();
    assert!(err.contains("partner"), "{err}");
    // No partner in contact now: refused at once.
    let now = p.now;
    let err = p.nodes[A].node.request_bundle(now).unwrap_err();
    assert!(err.contains("no partner in contact"), "{err}");
}
