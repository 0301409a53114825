//! `ha ...` (appliance commands): grammar, round trips, and the expansion to HA statements.

use super::*;
use crate::config::appliance::{expand, expand_stop};
use proptest::prelude::*;

const START: &str = "ha start primary floating 192.0.2.100+192.0.2.101 local 192.0.2.2 \
                     partner 192.0.2.3 sync 198.51.100.2 198.51.100.3 pinginterval 1.5";

fn lines(cmds: &[Command]) -> Vec<String> {
    cmds.iter().map(|c| c.to_string()).collect()
}

fn appliance(line: &str) -> Appliance {
    match cmd(line) {
        Command::Ha(a) => a,
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn ha_grammar_and_aliases() {
    let a = appliance(START);
    let Appliance::Start { role, options } = &a else {
        panic!("{a:?}")
    };
    assert_eq!(*role, Role::Primary);
    assert_eq!(options.floating, vec![ip("192.0.2.100"), ip("192.0.2.101")]);
    assert_eq!(options.local, Some(ip("192.0.2.2")));
    assert_eq!(options.sync, Some((ip("198.51.100.2"), ip("198.51.100.3"))));
    assert_eq!(options.pinginterval, Some(1.5));
    // Workload Deployer's names, on the secondary: primaryIP is the partner.
    let iwd = appliance(
        "ha start secondary floatingIP 192.0.2.100 primaryIP 192.0.2.2 secondaryIP 192.0.2.3 \
         primarySyncIP 198.51.100.2 secondarySyncIP 198.51.100.3 pingInterval 2",
    );
    assert_eq!(
        iwd.to_string(),
        "ha start secondary floating 192.0.2.100 local 192.0.2.3 partner 192.0.2.2 \
         sync 198.51.100.3 198.51.100.2 pinginterval 2"
    );
    // Abbreviations as everywhere (`h` stays highavailability).
    assert_eq!(appliance("ha stat"), Appliance::Status);
    assert_eq!(appliance("HA fail"), Appliance::Failover);
    assert_eq!(appliance("ha sto"), Appliance::Stop);
    assert_eq!(cmd("h status"), Command::HaStatus);
    assert!(!cmd("ha status").is_mutation());
    assert!(!cmd("ha failover").is_mutation());
    assert!(cmd("ha stop").is_mutation());
    assert!(cmd(START).is_mutation());
    // Configure keeps the by-role spellings for later.
    let c = appliance("ha configure primaryip 192.0.2.4 recovery auto");
    assert_eq!(
        c.to_string(),
        "ha configure primaryip 192.0.2.4 recovery auto"
    );
}

#[test]
fn ha_grammar_errors_say_why() {
    assert_eq!(
        parse_err("ha start primary floating 192.0.2.100 local 192.0.2.2"),
        "ha start needs 'partner' (ha start primary|secondary floating ADDR local ADDR partner ADDR ...)"
    );
    assert_eq!(
        parse_err("ha start primary floating 192.0.2.100 local 192.0.2.2 partner 192.0.2.2"),
        "local and partner are the same address 192.0.2.2"
    );
    assert_eq!(
        parse_err("ha start backup floating 192.0.2.100"),
        "unknown keyword 'backup' (expected one of: primary, secondary)"
    );
    assert_eq!(
        parse_err("ha configure"),
        "ha configure needs at least one option (floating, local, partner, sync, pinginterval, port, recovery)"
    );
    assert_eq!(
        parse_err("ha configure local 192.0.2.2 local 192.0.2.4"),
        "option 'local' given twice"
    );
    assert_eq!(
        parse_err("ha configure local 192.0.2.2 primaryip 192.0.2.4"),
        "give either local/partner/sync or primaryip/secondaryip/primarysyncip/secondarysyncip, not both"
    );
    assert_eq!(
        parse_err(
            "ha start primary floating 192.0.2.100 local 192.0.2.2 partner 192.0.2.3 primarysyncip 198.51.100.2"
        ),
        "ha start needs both primarysyncip and secondarysyncip (or sync LOCAL PARTNER)"
    );
    assert_eq!(
        parse_err("ha start primary floating 192.0.2.100 local 192.0.2.2 partner 2001:db8::3"),
        "local 192.0.2.2 and partner 2001:db8::3 must both be IPv4 or both IPv6"
    );
    assert_eq!(parse_err("ha start primary floating x"), "bad address 'x'");
    assert_eq!(parse_err("ha stop now"), "unexpected word 'now'");
    assert_eq!(
        parse_err("ha start primary pinginterval 0"),
        "bad pinginterval '0' (expected seconds, a number from 0.01 to 3600)"
    );
}

#[test]
fn ha_start_expands_to_two_networks_and_leaves_reach_targets_alone() {
    let base = sample();
    let got = expand(&appliance(START), &base).unwrap();
    assert_eq!(
        lines(&got),
        [
            "highavailability heartbeat add 192.0.2.2 192.0.2.3",
            "highavailability heartbeat add 198.51.100.2 198.51.100.3",
            "executor set hatimeout 1.5",
            "highavailability backup add primary manual 20001",
            "executor start",
        ]
    );
    // Applied through the grammar (a file, tandemctl): the same configuration.
    let mut via_apply = base.clone();
    run(&mut via_apply, START);
    let mut by_hand = base.clone();
    for c in &got {
        by_hand.apply(c).unwrap();
    }
    assert_eq!(via_apply, by_hand);
    assert_eq!(via_apply.ha.heartbeats.len(), 2);
    // Secondary, port and recovery given, executor running already.
    let mut started = base.clone();
    run(&mut started, "executor start");
    let got = expand(
        &appliance(
            "ha start secondary floating 192.0.2.101+192.0.2.100 local 192.0.2.3 partner 192.0.2.2 port 20100 recovery auto",
        ),
        &started,
    )
    .unwrap();
    assert_eq!(
        lines(&got),
        [
            "highavailability heartbeat add 192.0.2.3 192.0.2.2",
            "highavailability backup add backup auto 20100",
        ]
    );
}

#[test]
fn ha_start_refuses_with_a_reason_and_changes_nothing() {
    let mut c = sample();
    assert_eq!(
        fail(
            &mut c,
            "ha start primary floating 192.0.2.100+192.0.2.109 local 192.0.2.2 partner 192.0.2.3"
        ),
        "floating address 192.0.2.109 is not a cluster: add it first (cluster add 192.0.2.109, with its ports and servers)"
    );
    assert_eq!(
        fail(
            &mut c,
            "ha start primary floating 192.0.2.100 local 192.0.2.2 partner 192.0.2.3"
        ),
        "cluster 192.0.2.101 is not among the floating addresses: in a pair every cluster moves with Active, list them all (floating 192.0.2.100+192.0.2.101)"
    );
    run(&mut c, START);
    assert_eq!(
        fail(&mut c, START),
        "high availability is already configured (role primary): use 'ha configure' to change it, or 'ha stop' first"
    );
}

#[test]
fn ha_configure_changes_in_place() {
    let mut c = sample();
    run(&mut c, START);
    // New partner address and ping interval: the public pair moves, the
    // sync pair and the backup statement stay (no backup delete: never a pass through Idle).
    let got = expand(
        &appliance("ha configure partner 192.0.2.4 pinginterval 3"),
        &c,
    )
    .unwrap();
    assert_eq!(
        lines(&got),
        [
            "highavailability heartbeat delete 192.0.2.2",
            "highavailability heartbeat delete 198.51.100.2",
            "highavailability heartbeat add 192.0.2.2 192.0.2.4",
            "highavailability heartbeat add 198.51.100.2 198.51.100.3",
            "executor set hatimeout 3",
        ]
    );
    assert!(
        !got.iter()
            .any(|c| matches!(c, Command::HaBackupDelete | Command::HaBackupAdd(_)))
    );
    run(&mut c, "ha configure partner 192.0.2.4 pinginterval 3");
    assert_eq!(
        c.ha.heartbeats,
        vec![
            (ip("192.0.2.2"), ip("192.0.2.4")),
            (ip("198.51.100.2"), ip("198.51.100.3"))
        ]
    );
    assert!(
        c.ha.reach.is_empty(),
        "reach targets are the operator's, never the appliance's"
    );
    assert_eq!(c.executor.hatimeout, 3.0);
    // Workload Deployer names resolve by the configured role (primary: primaryip is local).
    run(
        &mut c,
        "ha configure primarysyncip 198.51.100.9 recovery auto",
    );
    assert_eq!(c.ha.heartbeats[1], (ip("198.51.100.9"), ip("198.51.100.3")));
    assert_eq!(c.ha.backup.unwrap().recovery, Recovery::Auto);
    // The port cannot change in place; nothing to change is said.
    assert!(
        fail(&mut c, "ha configure port 20002")
            .starts_with("the heartbeat port cannot change on a running pair")
    );
    assert_eq!(
        fail(&mut c, "ha configure recovery auto port 20001"),
        "ha configure: nothing to change"
    );
    let mut alone = sample();
    assert_eq!(
        fail(&mut alone, "ha configure pinginterval 3"),
        "high availability is not configured: use 'ha start' first"
    );
}

#[test]
fn ha_stop_expansion_per_case() {
    let mut c = sample();
    run(&mut c, START);
    // Keep serving (an Active alone): the HA statements go, the executor stays started.
    assert_eq!(
        lines(&expand_stop(&c, false).unwrap()),
        [
            "highavailability backup delete",
            "highavailability heartbeat delete 192.0.2.2",
            "highavailability heartbeat delete 198.51.100.2",
        ]
    );
    // Leave (a Standby, or an Active after its hand-over): executor stop first.
    let leave = expand_stop(&c, true).unwrap();
    assert_eq!(leave[0], Command::ExecutorStop);
    assert_eq!(leave.len(), 4);
    run(&mut c, "ha stop");
    assert_eq!(c.ha, HaConfig::default());
    assert!(c.executor.started);
    assert_eq!(
        fail(&mut c, "ha stop"),
        "high availability is not configured: this node is already stand-alone"
    );
    // A file with the appliance command loads as the statements it stands for.
    let text = format!("cluster add 192.0.2.100+192.0.2.101\n{START}\nha status\n");
    let loaded = load_file(&text, "a.cfg", &Config::default()).unwrap();
    assert_eq!(loaded.ha.heartbeats.len(), 2);
    assert!(loaded.to_commands().iter().all(|l| !l.starts_with("ha ")));
}

fn option() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        " floating 192.0.2.100",
        " floating 192.0.2.100+2001:db8::1",
        " local 192.0.2.2",
        " partner 192.0.2.3",
        " sync 198.51.100.2 198.51.100.3",
        " pinginterval 0.25",
        " pinginterval 7",
        " port 20001",
        " port 1",
        " recovery auto",
        " recovery manual",
        " primaryip 192.0.2.2",
        " secondaryip 192.0.2.3",
        " primarysyncip 198.51.100.2",
        " secondarysyncip 198.51.100.3",
        " floatingip 192.0.2.101",
        " pingi 3",
    ])
    .prop_map(String::from)
}

proptest! {
    /// Every `ha` command that parses prints back to an equal command, and applying it either
    /// works or changes nothing.
    #[test]
    fn ha_round_trip(
        head in prop::sample::select(vec!["ha start primary", "ha start secondary", "ha configure", "ha stop", "ha status", "ha failover"]),
        opts in prop::collection::vec(option(), 0..6),
        started in any::<bool>(),
    ) {
        let line = format!("{head}{}", opts.concat());
        if let Ok(Some(c)) = parse_line(&line) {
            prop_assert_eq!(parse_line(&c.to_string()), Ok(Some(c.clone())));
            let mut config = sample();
            if started {
                run(&mut config, START);
            }
            let before = config.clone();
            if config.apply(&c).is_err() {
                prop_assert_eq!(config, before);
            }
        }
    }
}
