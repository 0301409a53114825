//! HA transitions counted by cause, from the bounded recent list `highavailability status`
//! holds (newest first, with ages): each transition is counted once, at the first scrape that
//! sees it.

use parking_lot::Mutex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Ages are whole milliseconds: two readings of one transition differ by at most this.
const SLACK: Duration = Duration::from_millis(3);

#[derive(Default)]
pub struct Transitions(Mutex<Seen>);

#[derive(Default)]
struct Seen {
    /// When the newest counted transition happened.
    newest: Option<Instant>,
    /// (from, to, cause) → transitions.
    counts: BTreeMap<(String, String, String), u64>,
}

/// The cause of a transition, without its details ("heartbeat timeout (hatimeout 3 s
/// exceeded)" → "heartbeat timeout"): few values, fit for a label.
pub fn cause(reason: &str) -> String {
    let end = [" (", ":", ";"]
        .iter()
        .filter_map(|p| reason.find(p))
        .min()
        .unwrap_or(reason.len());
    let c = reason[..end].trim();
    if c.is_empty() {
        "unknown".into()
    } else {
        c.into()
    }
}

impl Transitions {
    /// Counts the transitions of `list` (the status' `transitions`) not counted yet.
    pub fn observe(&self, list: &Value, now: Instant) {
        let Some(list) = list.as_array() else {
            return;
        };
        let mut seen = self.0.lock();
        let limit = seen.newest;
        // Oldest first.
        for t in list.iter().rev() {
            let age = Duration::from_millis(t["age_ms"].as_u64().unwrap_or(0));
            let at = now.checked_sub(age).unwrap_or(now);
            if limit.is_some_and(|l| at <= l + SLACK) {
                continue;
            }
            let key = (
                t["from"].as_str().unwrap_or("unknown").to_string(),
                t["to"].as_str().unwrap_or("unknown").to_string(),
                cause(t["reason"].as_str().unwrap_or("")),
            );
            *seen.counts.entry(key).or_default() += 1;
            seen.newest = Some(seen.newest.map_or(at, |n| n.max(at)));
        }
    }

    /// (from, to, cause, count).
    pub fn counts(&self) -> Vec<(String, String, String, u64)> {
        self.0
            .lock()
            .counts
            .iter()
            .map(|((f, t, c), n)| (f.clone(), t.clone(), c.clone(), *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn causes_drop_their_details() {
        assert_eq!(
            cause("heartbeat timeout (hatimeout 3 s exceeded)"),
            "heartbeat timeout"
        );
        assert_eq!(cause("both Active: lower priority"), "both Active");
        assert_eq!(
            cause("partner is Listen; higher address"),
            "partner is Listen"
        );
        assert_eq!(cause("executor started"), "executor started");
        assert_eq!(cause(""), "unknown");
    }

    #[test]
    fn each_transition_is_counted_once() {
        let t = Transitions::default();
        let now = Instant::now() + Duration::from_secs(100);
        let first = json!([
            {"age_ms": 1000, "from": "Listen", "to": "Standby", "reason": "partner is Active"},
            {"age_ms": 5000, "from": "Down", "to": "Listen", "reason": "executor started"},
        ]);
        t.observe(&first, now);
        // Two seconds later: the same two (ages moved, rounded) and a new one.
        let later = now + Duration::from_secs(2);
        let second = json!([
            {"age_ms": 500, "from": "Standby", "to": "Active",
             "reason": "heartbeat timeout (hatimeout 3 s exceeded)"},
            {"age_ms": 3001, "from": "Listen", "to": "Standby", "reason": "partner is Active"},
            {"age_ms": 6999, "from": "Down", "to": "Listen", "reason": "executor started"},
        ]);
        t.observe(&second, later);
        t.observe(&second, later);
        let counts = t.counts();
        assert_eq!(counts.len(), 3, "{counts:?}");
        assert!(counts.iter().all(|c| c.3 == 1), "{counts:?}");
        assert!(counts.contains(&(
            "Standby".into(),
            "Active".into(),
            "heartbeat timeout".into(),
            1
        )));
    }
}
