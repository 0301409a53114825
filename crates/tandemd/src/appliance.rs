//! `ha start|configure|stop|status|failover` in the daemon (docs/appliance.md).
//!
//! A child module of `node`: it uses the node's lock and commit. The grammar and the pure
//! expansion to HA statements are in `tandem_core::config::appliance`; here are the parts that
//! depend on the running HA state: waiting for the partner's answer (`ha start`), the handover
//! before leaving (`ha stop` on an Active), the controlled handover (`ha failover`), the
//! appliance view of status, and the partner lost / found notices and scripts. Every wait is
//! bounded and polls the HA state with the node lock released between looks, so the HA thread
//! keeps running.

use super::{Node, Reply, State};
use anyhow::{Result, anyhow, bail};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tandem_core::config::appliance::{expand, expand_stop};
use tandem_core::config::{Appliance, Command, Config, Role};
use tandem_core::ha::{Contact, HaStatus, PairLiveness, State as HaState, SubState};

/// Scripts run (from the script directory) when two-way contact with the partner is lost or
/// found again; documented with the other scripts in docs/ha.md.
pub const PARTNER_LOST: &str = "partnerLost";
pub const PARTNER_FOUND: &str = "partnerFound";

/// The longest any `ha` command waits for the pair.
const MAX_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// Runs one `ha` command.
pub(super) fn execute(node: &Node, cmd: &Appliance, line: &str) -> Reply {
    // The appliance pair is one primary and one secondary; mutual HA has two cluster groups,
    // each handed over on its own.
    let mutual = node
        .state
        .lock()
        .config
        .ha
        .backup
        .is_some_and(|b| b.role == Role::Both);
    if mutual
        && matches!(
            cmd,
            Appliance::Failover | Appliance::Stop | Appliance::Configure(_)
        )
    {
        return Reply::err(
            "this node runs mutual high availability (role both), which has a cluster group per \
             node: hand a group over with 'highavailability takeover NFA' on the node that takes \
             it, and leave with 'highavailability backup delete' (docs/mutual-ha.md)"
                .into(),
        );
    }
    let result = match cmd {
        Appliance::Start { .. } => start(node, cmd, line),
        Appliance::Configure(_) => configure(node, cmd, line),
        Appliance::Stop => stop(node, line),
        Appliance::Status => status(node),
        Appliance::Failover => failover(node),
    };
    match result {
        Ok((text, data)) => Reply::ok(text, data),
        Err(e) => Reply::err(format!("{e:#}")),
    }
}

/// Applies `statements` to a copy of the running configuration and commits it (all or nothing).
fn commit(node: &Node, st: &mut State, statements: &[Command]) -> Result<()> {
    let mut new = st.config.clone();
    for s in statements {
        new.apply(s).map_err(|e| anyhow!("{s}: {e}"))?;
    }
    node.commit(st, new)
}

fn texts(statements: &[Command]) -> Vec<String> {
    statements.iter().map(|c| c.to_string()).collect()
}

/// 3 × hatimeout, at least 1 s, at most [`MAX_WAIT`].
fn wait_bound(config: &Config) -> Duration {
    Duration::try_from_secs_f64(config.executor.hatimeout * 3.0)
        .unwrap_or(MAX_WAIT)
        .clamp(Duration::from_secs(1), MAX_WAIT)
}

/// Polls the HA status (node lock taken for each look only) until `done` holds or `bound`
/// passes; returns whether it held, the last status and the time waited.
fn wait_for(
    node: &Node,
    bound: Duration,
    done: impl Fn(&HaStatus) -> bool,
) -> (bool, HaStatus, Duration) {
    let start = Instant::now();
    loop {
        let status = node.state.lock().ha.node.status(Instant::now());
        if done(&status) {
            return (true, status, start.elapsed());
        }
        if start.elapsed() >= bound {
            return (false, status, start.elapsed());
        }
        std::thread::sleep(POLL);
    }
}

fn heard(s: &HaStatus) -> bool {
    s.partner
        .as_ref()
        .is_some_and(|p| matches!(p.contact, Contact::Ok | Contact::Pending | Contact::Deaf))
}

fn settled(state: HaState) -> bool {
    matches!(state, HaState::Active | HaState::Standby)
}

fn role_word(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        _ => "secondary",
    }
}

fn start(node: &Node, cmd: &Appliance, line: &str) -> Result<(String, serde_json::Value)> {
    let Appliance::Start { role, options } = cmd else {
        unreachable!("start() is called for ha start")
    };
    let partner = options.partner.expect("the grammar requires partner");
    let (statements, bound) = {
        let mut st = node.state.lock();
        let statements = expand(cmd, &st.config).map_err(|e| anyhow!("{e}"))?;
        commit(node, &mut st, &statements)?;
        let now = Instant::now();
        st.ha
            .event(now, format!("{line}: {}", texts(&statements).join("; ")));
        (statements, wait_bound(&st.config))
    };
    // Does a partner answer? Waited for without the node lock.
    let (answered, status, waited) = wait_for(node, bound, |s| {
        heard(s) && settled(s.state) && s.partner.as_ref().is_some_and(|p| settled(p.state))
    });
    let answered = answered || heard(&status);
    let role = role_word(*role);
    let text = if answered {
        let p = status.partner.as_ref().map(|p| p.state.to_string());
        format!(
            "partner {partner} answered (state {}); this node is {} ({})",
            p.as_deref().unwrap_or("?"),
            role,
            status.state
        )
    } else if role == "primary" {
        format!(
            "no partner answers at {partner} yet: this node runs as primary alone and will pair when it answers"
        )
    } else {
        format!(
            "no partner answers at {partner} yet: this node runs alone (state {}) and will pair when it answers",
            status.state
        )
    };
    node.state.lock().ha.event(Instant::now(), text.clone());
    Ok((
        format!("{text}\n"),
        serde_json::json!({
            "done": line,
            "statements": texts(&statements),
            "partner": {"address": partner, "answered": answered,
                        "state": status.partner.as_ref().map(|p| p.state.to_string())},
            "state": status.state.to_string(),
            "waited_ms": waited.as_millis() as u64,
        }),
    ))
}

fn configure(node: &Node, cmd: &Appliance, line: &str) -> Result<(String, serde_json::Value)> {
    let mut st = node.state.lock();
    let statements = expand(cmd, &st.config).map_err(|e| anyhow!("{e}"))?;
    commit(node, &mut st, &statements)?;
    let text = if statements.is_empty() {
        "floating addresses checked: nothing else to change".to_string()
    } else {
        format!("changed in place: {}", texts(&statements).join("; "))
    };
    st.ha.event(Instant::now(), format!("{line}: {text}"));
    Ok((
        format!("{text}\n"),
        serde_json::json!({"done": line, "statements": texts(&statements)}),
    ))
}

/// `ha stop`, by the node's state (docs/appliance.md has the table).
fn stop(node: &Node, line: &str) -> Result<(String, serde_json::Value)> {
    let (state, sub, partner, in_contact, bound) = {
        let st = node.state.lock();
        let s = st.ha.node.status(Instant::now());
        if !s.configured {
            // Leftover statements without a backup are still removed by the expansion.
            expand_stop(&st.config, false).map_err(|e| anyhow!("{e}"))?;
        }
        let partner = s.partner.as_ref().filter(|_| heard(&s)).map(|p| p.address);
        // A partner whose last word was Down or Idle has left the pair: nobody to hand to.
        let alive = heard(&s)
            && s.partner.as_ref().is_some_and(|p| {
                matches!(
                    p.state,
                    HaState::Active | HaState::Standby | HaState::Listen
                )
            });
        (
            s.state,
            s.sub_state,
            partner.flatten(),
            alive,
            wait_bound(&st.config),
        )
    };
    let mut handed_over = None;
    let leave = match state {
        HaState::Active if in_contact => {
            if sub != SubState::Synchronized {
                bail!(
                    "ha stop refused: the partner{} is in contact but not Synchronized, so it cannot \
                     take the floating addresses without a gap; wait until 'ha status' shows it \
                     Synchronized and run ha stop again",
                    partner.map(|a| format!(" {a}")).unwrap_or_default()
                );
            }
            handed_over = Some(hand_over(node, bound)?);
            true
        }
        // An Active alone keeps serving: releasing would cut every client.
        HaState::Active => false,
        // Standing by, or starting with a partner heard: leave without ever forwarding.
        HaState::Standby => true,
        HaState::Listen => in_contact,
        _ => false,
    };
    let mut st = node.state.lock();
    let statements = expand_stop(&st.config, leave).map_err(|e| anyhow!("{e}"))?;
    let result = commit(node, &mut st, &statements);
    if handed_over.is_some() {
        let now = Instant::now();
        st.ha.node.set_maintenance(now, false);
        node.flush(&mut st, now);
        node.wake();
    }
    result?;
    let text = match (state, leave, handed_over) {
        (_, true, Some(ms)) => format!(
            "handed Active over to the partner{} in {ms} ms, then left the pair: the floating \
             addresses are served by the partner, this node is stand-alone with its executor \
             stopped ('executor start' serves stand-alone: only when no other node holds the cluster addresses)",
            partner.map(|a| format!(" {a}")).unwrap_or_default()
        ),
        (_, true, None) => "left the pair without owning the floating addresses: this node is \
             stand-alone with its executor stopped ('executor start' serves stand-alone: only \
             when no other node holds the cluster addresses)"
            .to_string(),
        (HaState::Active, false, _) => "no partner answers: this node keeps serving the floating \
             addresses, now stand-alone (releasing them would cut every client)"
            .to_string(),
        (HaState::Listen, false, _) => "no partner answers: this node serves the floating \
             addresses stand-alone (it was starting, Listen, and would have gone Active alone)"
            .to_string(),
        _ => format!("stand-alone (the node was {state}, not serving)"),
    };
    st.ha.event(Instant::now(), format!("{line}: {text}"));
    Ok((
        format!("{text}\n"),
        serde_json::json!({"done": line, "statements": texts(&statements),
                           "handed_over_ms": handed_over, "left": leave}),
    ))
}

/// On an Active with a Synchronized partner: maintenance on until the partner is Active and
/// this node Standby (yield-first, records handed over). Returns the time it took. On failure
/// maintenance is switched off again.
fn hand_over(node: &Node, bound: Duration) -> Result<u64> {
    {
        let mut st = node.state.lock();
        let now = Instant::now();
        st.ha.node.set_maintenance(now, true);
        st.ha
            .event(now, "handing Active over to the partner".into());
        node.flush(&mut st, now);
        node.wake();
    }
    let (done, status, waited) = wait_for(node, bound, |s| {
        s.state == HaState::Standby
            && s.partner
                .as_ref()
                .is_some_and(|p| p.state == HaState::Active)
    });
    if !done {
        let mut st = node.state.lock();
        let now = Instant::now();
        st.ha.node.set_maintenance(now, false);
        node.flush(&mut st, now);
        node.wake();
        bail!(
            "the partner did not take Active within {} ms (this node is {}, the partner {}): nothing changed",
            bound.as_millis(),
            status.state,
            status
                .partner
                .as_ref()
                .map(|p| p.state.to_string())
                .unwrap_or_else(|| "not heard".into())
        );
    }
    Ok(waited.as_millis() as u64)
}

fn failover(node: &Node) -> Result<(String, serde_json::Value)> {
    let (s, bound) = {
        let st = node.state.lock();
        (st.ha.node.status(Instant::now()), wait_bound(&st.config))
    };
    if !s.configured {
        bail!("ha failover refused: high availability is not configured (ha start first)");
    }
    match s.state {
        HaState::Active => {
            if !heard(&s) {
                bail!("ha failover refused: no partner answers, there is nobody to hand over to");
            }
            if s.sub_state != SubState::Synchronized {
                bail!(
                    "ha failover refused: the partner is not Synchronized yet (it would start without the connection table)"
                );
            }
            let ms = hand_over(node, bound)?;
            let mut st = node.state.lock();
            let now = Instant::now();
            st.ha.node.set_maintenance(now, false);
            node.flush(&mut st, now);
            node.wake();
            let mut text = format!(
                "failover done: the partner is Active (handed over in {ms} ms), this node is Standby"
            );
            if s.role == Some(Role::Primary)
                && s.recovery == Some(tandem_core::config::Recovery::Auto)
            {
                text.push_str(
                    "; recovery auto: this primary takes Active back after the failback hold \
                     (ha configure recovery manual keeps it Standby)",
                );
            }
            st.ha.event(now, format!("ha failover: {text}"));
            Ok((
                format!("{text}\n"),
                serde_json::json!({"failover": "done", "handed_over_ms": ms, "from": "Active"}),
            ))
        }
        HaState::Standby => {
            {
                let mut st = node.state.lock();
                let now = Instant::now();
                st.ha
                    .node
                    .takeover(now)
                    .map_err(|e| anyhow!("ha failover refused: {e}"))?;
                st.ha.event(now, "ha failover: takeover requested".into());
                node.flush(&mut st, now);
                node.wake();
            }
            let (done, status, waited) = wait_for(node, bound, |s| s.state == HaState::Active);
            if !done {
                bail!(
                    "the takeover did not complete within {} ms (this node is {}; {})",
                    bound.as_millis(),
                    status.state,
                    status.takeover.unwrap_or_default()
                );
            }
            let text = format!(
                "failover done: this node is Active (took over in {} ms)",
                waited.as_millis()
            );
            node.state.lock().ha.event(Instant::now(), text.clone());
            Ok((
                format!("{text}\n"),
                serde_json::json!({"failover": "done", "took_over_ms": waited.as_millis() as u64, "from": "Standby"}),
            ))
        }
        other => {
            bail!("ha failover refused: this node is {other}, neither Active nor Standby in a pair")
        }
    }
}

/// The appliance mode: `stand-alone | primary | secondary | idle | inconsistent`.
pub fn mode(s: &HaStatus, sync_state: &str) -> &'static str {
    if !s.configured {
        "stand-alone"
    } else if sync_state == "inconsistent" {
        "inconsistent"
    } else {
        match s.state {
            HaState::Active => "primary",
            HaState::Standby => "secondary",
            _ => "idle",
        }
    }
}

fn liveness(p: PairLiveness) -> &'static str {
    match p {
        PairLiveness::Ok => "up",
        PairLiveness::Trying => "never heard",
        PairLiveness::Down => "down",
    }
}

fn status(node: &Node) -> Result<(String, serde_json::Value)> {
    let mut st = node.state.lock();
    let (_, full) = node.query(&mut st, &Command::HaStatus)?;
    let s = st.ha.node.status(Instant::now());
    let floating: Vec<String> = st.config.clusters.keys().map(|c| c.to_string()).collect();
    let hatimeout = st.config.executor.hatimeout;
    drop(st);
    // Configuration sync (docs/config-sync.md): absent means off.
    let sync = full.get("sync").cloned().unwrap_or(serde_json::Value::Null);
    let sync_state = sync
        .get("state")
        .and_then(|v| v.as_str())
        .unwrap_or("off")
        .to_string();
    let mode = mode(&s, &sync_state);
    let networks: Vec<serde_json::Value> = s
        .heartbeats
        .iter()
        .enumerate()
        .map(|(i, p)| {
            serde_json::json!({
                "network": match i { 0 => "public".to_string(), 1 => "sync".to_string(), n => format!("pair {}", n + 1) },
                "local": p.source, "partner": p.destination,
                "status": liveness(p.status), "last_heard_ms": p.last_heard_ms,
            })
        })
        .collect();
    let warnings: Vec<String> = full
        .get("warnings")
        .and_then(|w| w.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let partner = s.partner.as_ref().map(|p| {
        serde_json::json!({
            "address": p.address, "state": p.state.to_string(), "sub_state": p.sub_state.to_string(),
            "contact": p.contact, "last_heard_ms": p.last_heard_ms,
            "recovery": p.recovery.keyword(),
        })
    });
    let data = serde_json::json!({
        "mode": mode,
        "role": s.role.map(role_word),
        "state": s.state.to_string(),
        "sub_state": s.sub_state.to_string(),
        "recovery": s.recovery.map(|r| r.keyword()),
        "port": s.port,
        "pinginterval": hatimeout,
        "floating": if s.configured { floating.clone() } else { Vec::new() },
        "sync": {"state": sync_state, "detail": sync},
        "partner": partner,
        "networks": networks,
        "reach": s.reach,
        "warnings": warnings,
    });
    let mut text = format!("mode: {mode}\n");
    if s.configured {
        text.push_str(&format!(
            "configured as: {} (state {}, {}), recovery {}, pinginterval {hatimeout} s, port {}\n",
            s.role.map(role_word).unwrap_or("?"),
            s.state,
            s.sub_state,
            s.recovery.map(|r| r.keyword()).unwrap_or("?"),
            s.port.unwrap_or(0)
        ));
        text.push_str(&format!("floating: {}\n", floating.join(" ")));
    }
    text.push_str(&format!("configuration sync: {sync_state}\n"));
    match &s.partner {
        Some(p) => text.push_str(&format!(
            "partner: {} state {} ({}), contact {:?}, last heard {} ms ago\n",
            p.address.map(|a| a.to_string()).unwrap_or_default(),
            p.state,
            p.sub_state,
            p.contact,
            p.last_heard_ms
        )),
        None if s.configured => text.push_str("partner: not heard\n"),
        None => {}
    }
    for n in &networks {
        text.push_str(&format!(
            "network {}: {} -> {} {}\n",
            n["network"].as_str().unwrap_or(""),
            n["local"].as_str().unwrap_or(""),
            n["partner"].as_str().unwrap_or(""),
            n["status"].as_str().unwrap_or("")
        ));
    }
    for w in &warnings {
        text.push_str(&format!("warning: {w}\n"));
    }
    Ok((text, data))
}

/// The warning `highavailability status` and `ha status` carry while the partner is lost.
pub fn partner_lost_warning(s: &HaStatus) -> Option<String> {
    let ms = s.partner_lost_ms?;
    let at = SystemTime::now()
        .checked_sub(Duration::from_millis(ms))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs() % 86_400)
        .unwrap_or(0);
    Some(format!(
        "partner lost at {:02}:{:02}:{:02} UTC, {} s ago: this node is alone",
        at / 3600,
        at / 60 % 60,
        at % 60,
        ms / 1000
    ))
}

/// Two-way contact with the partner lost (or found again): timeline, log, and the
/// `partnerLost` / `partnerFound` script.
pub(super) fn partner_changed(st: &mut State, now: Instant, lost: bool, text: String) {
    let name = if lost {
        tracing::warn!("{text}");
        PARTNER_LOST
    } else {
        PARTNER_FOUND
    };
    st.ha.event(now, text);
    if let Some(dir) = &st.config.ha.script_dir {
        let job = crate::ha::ScriptJob {
            name,
            arg: None,
            env: crate::ha::script_env(&st.ha, &st.config, name),
        };
        st.ha.scripts.queue(dir.into(), job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_core::ha::Machine;

    #[test]
    fn mode_and_the_partner_lost_warning() {
        let mut s = Machine::new(1, crate::ha::product_version()).status(Instant::now());
        assert_eq!(mode(&s, "off"), "stand-alone");
        assert_eq!(partner_lost_warning(&s), None);
        s.configured = true;
        assert_eq!(mode(&s, "off"), "idle");
        s.state = HaState::Active;
        assert_eq!(mode(&s, "source"), "primary");
        s.state = HaState::Standby;
        assert_eq!(mode(&s, "in-sync"), "secondary");
        assert_eq!(mode(&s, "inconsistent"), "inconsistent");
        s.partner_lost_ms = Some(65_400);
        let w = partner_lost_warning(&s).unwrap();
        assert!(w.starts_with("partner lost at "), "{w}");
        assert!(w.ends_with(" UTC, 65 s ago: this node is alone"), "{w}");
        assert_eq!(
            w.len(),
            "partner lost at 00:00:00 UTC, 65 s ago: this node is alone".len()
        );
    }
}
