//! The failover part of the demo: lb2 joins as backup, long-lived echo connections are opened
//! through the pair (port 7, `repstrategy connection`) and replicated to lb2, new connections
//! keep arriving on port 80, lb1 is killed with `kill -9`, and the demo shows what carried on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use tandem_lab::cluster::{
    CLUSTER_IP, ClusterLab, TandemNode, demo_config, ha_state, wait_config_synced, wait_ha_state,
};

use super::DemoArgs;
use super::results::{LongLivedResult, NewConnResult, TakeoverResult};
use super::web::{self, Web};

/// The echo port of the long-lived connections.
pub const ECHO_PORT: u16 = 7;
/// Timeout of each new connection attempt during the failover: long enough that a busy
/// 2-core machine does not turn a slow answer into a failure (250 ms did, once, in the test
/// suite), shorter than a SYN retransmission (1 s), so that a lost SYN still counts.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(900);
/// How long the connections keep echoing after the takeover.
const AFTER_TAKEOVER: Duration = Duration::from_secs(4);

fn state(node: &TandemNode) -> String {
    let (s, sub) = ha_state(node);
    format!("{s}/{sub}")
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn say(node: &TandemNode, cmd: &[&str]) -> Result<String> {
    println!("  {}$ tandemctl {}", node.host.name, cmd.join(" "));
    node.ctl(cmd)
}

/// Replicated connection records the standby holds.
fn standby_records(node: &TandemNode) -> u64 {
    node.ctl_json(&["highavailability", "status"])
        .map(|v| v["replication"]["connection_records"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

/// Writes the HA scripts (they log when they ran) into a root-only directory.
fn write_scripts(lab: &ClusterLab) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let scripts = lab.lab.log_dir().join("scripts");
    std::fs::create_dir_all(&scripts)?;
    // tandemd runs scripts only from a directory writable by root alone.
    std::fs::set_permissions(&scripts, std::fs::Permissions::from_mode(0o755))?;
    let log = scripts.join("ran.log");
    for name in ["goActive", "goStandby", "highavailChange"] {
        let path = scripts.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$(date +%s.%N) $(basename $0) $1 $TANDEM_STATE\" >> {}\n",
                log.display()
            ),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok((scripts, log))
}

/// The failover part; returns what it measured. An error means the part could not run (the
/// pair did not form, a daemon did not start).
pub fn run(
    lab: &ClusterLab,
    mut lb1: TandemNode,
    args: &DemoArgs,
    web: Option<&Web>,
) -> Result<TakeoverResult> {
    println!(
        "High availability: lb2 (192.0.2.3) joins as backup; heartbeats on UDP 20001, reach \
         target 192.0.2.10"
    );
    let (scripts, log) = write_scripts(lab)?;
    let lb2 = TandemNode::start(&lab.lab, &lab.lbs[1], &demo_config(2), &[])?;
    if web.is_some() {
        Web::enable(&lb2)?;
    }
    // The echo port of the long-lived connections, added at runtime on both nodes before they
    // pair (configuration sync then finds them identical), and the HA scripts.
    let echo = format!("{CLUSTER_IP}@{ECHO_PORT}");
    let servers = format!("{echo}@192.0.2.11+192.0.2.12+192.0.2.13");
    for node in [&lb1, &lb2] {
        say(node, &["port", "add", &echo, "repstrategy", "connection"])?;
        say(node, &["server", "add", &servers])?;
        node.ctl(&[
            "highavailability",
            "scripts",
            scripts.to_str().unwrap_or_default(),
        ])?;
    }
    for (node, src, dst, role) in [
        (&lb1, "192.0.2.2", "192.0.2.3", "primary"),
        (&lb2, "192.0.2.3", "192.0.2.2", "backup"),
    ] {
        for cmd in [
            vec!["highavailability", "heartbeat", "add", src, dst],
            vec!["highavailability", "reach", "add", "192.0.2.10"],
            vec!["highavailability", "backup", "add", role, "manual", "20001"],
        ] {
            say(node, &cmd)?;
        }
    }
    wait_ha_state(&lb1, "Active", true, Duration::from_secs(20))?;
    wait_ha_state(&lb2, "Standby", true, Duration::from_secs(20))?;
    wait_config_synced(&lb1, &lb2, Duration::from_secs(15))?;
    println!(
        "  lb1 is {}, lb2 is {}; configuration sync finds both configurations identical",
        state(&lb1),
        state(&lb2)
    );
    let _ = std::fs::remove_file(&log);

    // Long-lived connections, replicated to lb2 before the kill.
    let n = args.long_lived;
    println!();
    println!(
        "Long-lived connections: {n} echo connections through {CLUSTER_IP}:{ECHO_PORT} \
         (repstrategy connection), a line every 100 ms on each"
    );
    let base = standby_records(&lb2);
    let set = lab.client.long_lived_set(
        ClusterLab::cluster(ECHO_PORT),
        n,
        Duration::from_millis(100),
    )?;
    set.wait_echoes(3, Duration::from_secs(20))
        .context("opening the long-lived connections")?;
    let since = Instant::now();
    let want = base + n as u64;
    let replicated = tandem_lab::wait_until(Duration::from_secs(15), "replication", || {
        standby_records(&lb2) >= want
    })
    .is_ok();
    if replicated {
        println!(
            "  all {n} echoing; lb2 (Standby) holds their {n} replicated connection records \
             ({:.2} s after the last connection opened)",
            since.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "  all {n} echoing; lb2 (Standby) holds only {} of {n} replicated connection \
             records after 15 s",
            standby_records(&lb2).saturating_sub(base)
        );
    }

    // New connections: one every 20 ms, recording when each started and who answered.
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let traffic = lab.client.in_ns_background(move || {
        let mut samples = Vec::new();
        while !stop2.load(Ordering::Relaxed) {
            let t = unix_now();
            let r = tandem_lab::traffic::http_get(ClusterLab::cluster(80), ATTEMPT_TIMEOUT);
            samples.push((t, r.ok()));
            std::thread::sleep(Duration::from_millis(20));
        }
        samples
    })?;
    if web.is_some() {
        web::wait_enter(
            "  Press Enter to kill lb1 (watch lb2's status page: lb1's goes away with lb1) ",
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    println!("  new connections arriving on port 80 every 20 ms; killing lb1 (kill -9) now");
    let killed = unix_now();
    lb1.kill()?;
    let active = wait_ha_state(&lb2, "Active", false, Duration::from_secs(10));
    let at_takeover = set.snapshot();
    if active.is_ok() {
        std::thread::sleep(AFTER_TAKEOVER);
    }
    stop.store(true, Ordering::Relaxed);
    let end = set.stop();
    let samples = traffic
        .join()
        .map_err(|_| anyhow::anyhow!("traffic thread panicked"))?;

    let status = lb2.ctl_json(&["highavailability", "status"])?;
    let asked = unix_now();
    let takeover = status["transitions"].as_array().and_then(|a| {
        a.iter()
            .filter(|t| t["to"] == "Active")
            .map(|t| {
                let at = asked - t["age_ms"].as_f64().unwrap_or(0.0) / 1000.0 - killed;
                (at, t)
            })
            .filter(|(at, _)| *at >= -0.5)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(at, t)| {
                (
                    at.max(0.0),
                    format!(
                        "lb2 detects the failure: {} -> Active ({})",
                        t["from"].as_str().unwrap_or("?"),
                        t["reason"].as_str().unwrap_or("")
                    ),
                )
            })
    });
    let rel: Vec<(f64, Option<String>)> =
        samples.into_iter().map(|(t, r)| (t - killed, r)).collect();
    let new_conns = classify(&rel, takeover.as_ref().map(|t| t.0));

    let mut timeline: Vec<(f64, String)> =
        vec![(0.0, "lb1 killed with kill -9 (heartbeats stop)".into())];
    if let Some(last_ok) = rel.iter().rfind(|(t, ok)| *t < 0.0 && ok.is_some()) {
        timeline.push((
            last_ok.0,
            format!(
                "last new connection before the kill answered by {}",
                last_ok.1.clone().unwrap_or_default()
            ),
        ));
    }
    if let Some((at, what)) = &takeover {
        timeline.push((*at, what.clone()));
        timeline.push((
            *at,
            "lb2 forwards, answers ARP and sends gratuitous ARPs for 192.0.2.100 and \
             192.0.2.200 (same step)"
                .into(),
        ));
    }
    std::thread::sleep(Duration::from_millis(300));
    for line in std::fs::read_to_string(&log).unwrap_or_default().lines() {
        let mut w = line.split_whitespace();
        if let (Some(t), Some(name)) = (w.next().and_then(|t| t.parse::<f64>().ok()), w.next()) {
            let arg = w.next().unwrap_or("");
            if t >= killed {
                timeline.push((t - killed, format!("script {name} {arg} ran")));
            }
        }
    }
    if let Some(r) = new_conns.resumed {
        let by = rel
            .iter()
            .find(|(t, _)| (*t - r).abs() < 1e-9)
            .and_then(|s| s.1.clone())
            .unwrap_or_default();
        timeline.push((
            r,
            format!("new connections answered again (by {by} through lb2)"),
        ));
    }
    timeline.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!();
    println!("Takeover timeline (seconds after the kill; hatimeout 2 s):");
    for (t, what) in &timeline {
        println!("  {t:+7.3} s  {what}");
    }
    match &takeover {
        Some((t, _)) => println!("  takeover time: {t:.3} s (kill to lb2 Active)"),
        None => println!("  takeover time: none (lb2 is {})", state(&lb2)),
    }

    let long_lived = LongLivedResult::judge(&at_takeover, &end, replicated);
    println!();
    println!(
        "Long-lived connections after the takeover (kept echoing {} s):",
        AFTER_TAKEOVER.as_secs()
    );
    println!(
        "  carried on: {} of {}; broke: {}; longest stall {:.3} s; median stall {:.3} s",
        long_lived.carried_on,
        long_lived.opened,
        long_lived.broke.len(),
        long_lived.longest_stall.as_secs_f64(),
        long_lived.median_stall.as_secs_f64()
    );
    println!(
        "  (carried on = never reset or closed, answered by the same server all along, every \
         echo answered in order, still echoing after the takeover; stall = longest wait for \
         an echo: the takeover time plus the client's TCP retransmission backoff, 0.2, 0.6, \
         1.4, 3.0 s after the outage starts)"
    );
    for (i, why) in long_lived.broke.iter().take(10) {
        println!("  connection c{i}: {why}");
    }
    println!();
    println!(
        "New connections on port 80 (one every 20 ms, {} ms timeout each):",
        ATTEMPT_TIMEOUT.as_millis()
    );
    println!(
        "  {} attempted after the kill; failed: {} during the takeover (until new connections \
         were answered again at {}), {} after it, {} before the kill",
        new_conns.attempted,
        new_conns.failed_during,
        new_conns
            .resumed
            .map_or("never".to_string(), |r| format!("{r:+.3} s")),
        new_conns.failed_after,
        new_conns.failed_before
    );
    println!();
    println!(
        "$ tandemctl highavailability status   (on lb2, now {})",
        state(&lb2)
    );
    print!("{}", lb2.ctl(&["highavailability", "status"])?);
    if let Err(e) = active {
        println!("  lb2 did not become Active: {e:#}");
    }
    Ok(TakeoverResult {
        takeover: takeover.map(|t| t.0),
        new_conns,
        long_lived: Some(long_lived),
    })
}

/// Sorts the new connection attempts (start time in seconds after the kill, answer) into
/// before the kill, during the takeover, and after it. The takeover window ends with the first
/// answered attempt started after the standby became Active (`takeover`), or, without one, the
/// first answered attempt after a failure after the kill. An attempt whose timeout reaches
/// past the kill counts as after the kill.
pub fn classify(samples: &[(f64, Option<String>)], takeover: Option<f64>) -> NewConnResult {
    let timeout = ATTEMPT_TIMEOUT.as_secs_f64();
    let after_kill = |t: f64| t + timeout >= 0.0;
    let from = match takeover {
        Some(t) => t,
        None => samples
            .iter()
            .find(|(t, ok)| after_kill(*t) && ok.is_none())
            .map_or(0.0, |s| s.0),
    };
    let resumed = samples
        .iter()
        .find(|(t, ok)| *t >= from && ok.is_some())
        .map(|s| s.0);
    let mut r = NewConnResult {
        resumed,
        ..NewConnResult::default()
    };
    for (t, ok) in samples {
        if !after_kill(*t) {
            r.failed_before += usize::from(ok.is_none());
            continue;
        }
        r.attempted += 1;
        if ok.is_none() {
            match resumed {
                Some(res) if *t >= res => r.failed_after += 1,
                _ => r.failed_during += 1,
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: f64, ok: bool) -> (f64, Option<String>) {
        (t, ok.then(|| "s1".to_string()))
    }

    #[test]
    fn failures_are_sorted_into_before_during_and_after_the_takeover() {
        // Before the kill: started more than ATTEMPT_TIMEOUT (0.9 s) before it.
        let samples = vec![
            s(-2.0, true),
            s(-1.2, false),
            s(-0.1, false),
            s(0.5, false),
            s(1.9, false),
            s(2.05, true),
            s(2.5, false),
            s(3.0, true),
        ];
        let r = classify(&samples, Some(2.0));
        assert_eq!(r.resumed, Some(2.05));
        assert_eq!(r.failed_before, 1);
        assert_eq!(r.attempted, 6);
        assert_eq!(r.failed_during, 3);
        assert_eq!(r.failed_after, 1);
    }

    #[test]
    fn without_a_takeover_and_without_an_answer_nothing_resumed() {
        let r = classify(&[s(0.1, false), s(0.5, false)], None);
        assert_eq!(r.resumed, None);
        assert_eq!(r.failed_during, 2);
        assert_eq!(r.failed_after, 0);
    }
}
