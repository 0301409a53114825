//! The demo's results: one struct that every section fills and prints from, and the summary,
//! whose every claim is a function of it (so it cannot contradict the numbers above it).

use std::time::Duration;

use tandem_lab::ConnStats;

/// One HTTP load round (a port).
#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    pub port: u16,
    pub requested: usize,
    pub answered: usize,
}

/// How the long-lived connections fared through the takeover.
#[derive(Clone, Debug, Default)]
pub struct LongLivedResult {
    /// Connections opened before the kill.
    pub opened: usize,
    /// Whether the standby reported their records replicated before the kill.
    pub replicated: bool,
    /// Connections that carried on: never ended, one server all along, answered after the
    /// takeover, every echo in order.
    pub carried_on: usize,
    /// The others, with what went wrong (connection index, reason).
    pub broke: Vec<(usize, String)>,
    /// Largest gap between an echo sent and its answer, over all connections.
    pub longest_stall: Duration,
    /// Median over the connections of each one's largest gap.
    pub median_stall: Duration,
}

impl LongLivedResult {
    /// Judges each connection: `at_takeover` are the records when the standby became Active,
    /// `end` those a few seconds later.
    pub fn judge(at_takeover: &[ConnStats], end: &[ConnStats], replicated: bool) -> Self {
        let mut broke = Vec::new();
        let mut stalls: Vec<Duration> = end.iter().map(|c| c.max_rtt).collect();
        stalls.sort();
        for c in end {
            let before = at_takeover
                .iter()
                .find(|b| b.index == c.index)
                .map_or(0, |b| b.echoes);
            let why = if let Some(e) = &c.ended {
                Some(format!("ended: {e}"))
            } else if c.servers_seen.len() != 1 {
                Some(format!("answered by {:?}", c.servers_seen))
            } else if c.echoes <= before {
                Some("no echo answered after the takeover".to_string())
            } else if c.since_last_echo >= Duration::from_secs(1) {
                Some(format!(
                    "no longer echoes ({:.1} s since the last)",
                    c.since_last_echo.as_secs_f64()
                ))
            } else {
                None
            };
            if let Some(why) = why {
                broke.push((c.index, why));
            }
        }
        LongLivedResult {
            opened: end.len(),
            replicated,
            carried_on: end.len() - broke.len(),
            broke,
            longest_stall: stalls.last().copied().unwrap_or_default(),
            median_stall: stalls.get(stalls.len() / 2).copied().unwrap_or_default(),
        }
    }
}

/// New connections attempted while the Active was killed and after.
#[derive(Clone, Debug, Default)]
pub struct NewConnResult {
    /// Attempts started after the kill (or whose timeout reached past it).
    pub attempted: usize,
    /// Of those, failed ones that started before traffic resumed through the new Active.
    pub failed_during: usize,
    /// Failed ones that started after traffic resumed: a real failure.
    pub failed_after: usize,
    /// Attempts that failed before the kill (nothing was wrong yet): a real failure.
    pub failed_before: usize,
    /// Seconds after the kill when a new connection was first answered through the new
    /// Active (the end of the takeover window); `None` if it never was.
    pub resumed: Option<f64>,
}

/// The takeover.
#[derive(Clone, Debug, Default)]
pub struct TakeoverResult {
    /// Seconds from the kill to the standby's transition to Active; `None` if it did not.
    pub takeover: Option<f64>,
    pub new_conns: NewConnResult,
    /// The long-lived connections; `None` when they could not be opened.
    pub long_lived: Option<LongLivedResult>,
}

/// Everything the demo measured.
#[derive(Clone, Debug, Default)]
pub struct DemoResults {
    pub loads: Vec<LoadResult>,
    /// UDP requests sent and answered.
    pub udp: (usize, usize),
    /// `None` when the failover part did not run (interrupted) or failed before the kill.
    pub failover: Option<TakeoverResult>,
    /// A step that failed outright (e.g. the pair did not form).
    pub errors: Vec<String>,
}

/// One line of the summary: whether it holds, and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub holds: bool,
    pub text: String,
}

fn claim(holds: bool, text: String) -> Claim {
    Claim { holds, text }
}

impl DemoResults {
    /// The summary's claims, each computed from the results alone.
    pub fn claims(&self) -> Vec<Claim> {
        let mut out = Vec::new();
        for l in &self.loads {
            out.push(claim(
                l.answered == l.requested,
                format!(
                    "port {}: {} of {} HTTP connections answered",
                    l.port, l.answered, l.requested
                ),
            ));
        }
        let (sent, answered) = self.udp;
        out.push(claim(
            answered == sent,
            format!("port 9999: {answered} of {sent} UDP requests answered"),
        ));
        match &self.failover {
            None if self.errors.is_empty() => {
                out.push(claim(false, "the failover part did not run".into()))
            }
            None => {}
            Some(f) => {
                out.push(match f.takeover {
                    Some(t) => claim(
                        true,
                        format!("takeover: lb2 Active {t:.3} s after the kill"),
                    ),
                    None => claim(false, "takeover: lb2 did not become Active".into()),
                });
                match &f.long_lived {
                    Some(ll) => out.push(claim(
                        ll.opened > 0 && ll.carried_on == ll.opened && ll.replicated,
                        format!(
                            "long-lived: {} of {} connections open before the kill carried on \
                             through the takeover{} (longest stall {:.3} s, median {:.3} s)",
                            ll.carried_on,
                            ll.opened,
                            if ll.replicated {
                                ""
                            } else {
                                ", records NOT replicated before the kill"
                            },
                            ll.longest_stall.as_secs_f64(),
                            ll.median_stall.as_secs_f64()
                        ),
                    )),
                    None => out.push(claim(false, "long-lived: connections not opened".into())),
                }
                let n = &f.new_conns;
                let window = match n.resumed {
                    Some(r) => format!("the {r:.3} s until traffic resumed"),
                    None => "the takeover (traffic never resumed)".into(),
                };
                out.push(claim(
                    n.failed_after == 0 && n.failed_before == 0 && n.resumed.is_some(),
                    format!(
                        "new connections: {} of {} attempted after the kill failed: {} during \
                         {window}, {} after it ({} failed before the kill)",
                        n.failed_during + n.failed_after,
                        n.attempted,
                        n.failed_during,
                        n.failed_after,
                        n.failed_before
                    ),
                ));
            }
        }
        for e in &self.errors {
            out.push(claim(false, format!("error: {e}")));
        }
        out
    }

    /// Whether every claim holds (the exit status).
    pub fn ok(&self) -> bool {
        self.claims().iter().all(|c| c.holds)
    }

    /// The last line.
    pub fn verdict(&self) -> String {
        let claims = self.claims();
        let failed = claims.iter().filter(|c| !c.holds).count();
        if failed == 0 {
            let lost = self
                .failover
                .as_ref()
                .map_or(0, |f| f.new_conns.failed_during);
            if lost == 0 {
                "Demo complete: every claim above holds; no connection failed.".into()
            } else {
                format!(
                    "Demo complete: every claim above holds; every connection open before the \
                     kill carried on, and only the {lost} new connection(s) attempted during \
                     the takeover failed."
                )
            }
        } else {
            format!(
                "Demo complete, with failures: {failed} of {} claims above do not hold (marked FAIL).",
                claims.len()
            )
        }
    }

    /// The summary block: one line per claim, then the verdict.
    pub fn summary(&self) -> String {
        let mut s = String::from("Summary:\n");
        for c in self.claims() {
            s.push_str(&format!(
                "  {} {}\n",
                if c.holds { "ok  " } else { "FAIL" },
                c.text
            ));
        }
        s.push_str(&self.verdict());
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_lab::Ended;

    fn conn(index: usize, echoes: u64) -> ConnStats {
        ConnStats {
            index,
            local_addr: Some("192.0.2.10:40000".parse().unwrap()),
            server: Some("s1".into()),
            servers_seen: vec!["s1".into()],
            echoes,
            longest_gap: Duration::from_millis(100),
            since_last_echo: Duration::from_millis(50),
            max_rtt: Duration::from_millis(100 * (index as u64 + 1)),
            ended: None,
        }
    }

    fn good() -> DemoResults {
        let before: Vec<_> = (0..3).map(|i| conn(i, 10)).collect();
        let after: Vec<_> = (0..3).map(|i| conn(i, 40)).collect();
        DemoResults {
            loads: vec![LoadResult {
                port: 80,
                requested: 300,
                answered: 300,
            }],
            udp: (6, 6),
            failover: Some(TakeoverResult {
                takeover: Some(2.1),
                new_conns: NewConnResult {
                    attempted: 97,
                    failed_during: 8,
                    failed_after: 0,
                    failed_before: 0,
                    resumed: Some(2.3),
                },
                long_lived: Some(LongLivedResult::judge(&before, &after, true)),
            }),
            errors: vec![],
        }
    }

    #[test]
    fn a_good_run_says_so_and_names_what_failed_where() {
        let r = good();
        assert!(r.ok(), "{}", r.summary());
        let s = r.summary();
        assert!(
            s.contains("3 of 3 connections open before the kill carried on"),
            "{s}"
        );
        assert!(s.contains("longest stall 0.300 s, median 0.200 s"), "{s}");
        assert!(
            s.contains("8 of 97 attempted after the kill failed: 8 during the 2.300 s"),
            "{s}"
        );
        assert!(
            s.contains("only the 8 new connection(s) attempted during the takeover"),
            "{s}"
        );
        assert!(!s.contains("FAIL"), "{s}");
    }

    #[test]
    fn a_lost_connection_or_a_late_failure_fails_the_demo() {
        let mut r = good();
        let f = r.failover.as_mut().unwrap();
        f.new_conns.failed_after = 1;
        assert!(!r.ok());
        assert!(r.verdict().contains("1 of 5 claims"), "{}", r.verdict());

        let mut r = good();
        let before: Vec<_> = (0..3).map(|i| conn(i, 10)).collect();
        let mut after: Vec<_> = (0..3).map(|i| conn(i, 40)).collect();
        after[1].ended = Some(Ended::Reset);
        after[2].echoes = 10; // nothing answered after the takeover
        let ll = LongLivedResult::judge(&before, &after, true);
        assert_eq!(ll.carried_on, 1);
        assert_eq!(ll.broke.len(), 2);
        r.failover.as_mut().unwrap().long_lived = Some(ll);
        assert!(!r.ok());
        assert!(
            r.summary().contains("FAIL long-lived: 1 of 3"),
            "{}",
            r.summary()
        );
        assert!(!r.verdict().contains("every claim"));
    }

    #[test]
    fn not_replicated_or_not_run_is_a_failure_not_a_silence() {
        let mut r = good();
        if let Some(ll) = r.failover.as_mut().unwrap().long_lived.as_mut() {
            ll.replicated = false;
        }
        assert!(!r.ok());
        assert!(r.summary().contains("NOT replicated"));
        let r = DemoResults {
            failover: None,
            ..good()
        };
        assert!(!r.ok());
    }
}
