//! `/api/query?cmd=WORDS`: one read-only command, answered as `tandemctl --json` is.

use crate::node::Node;
use hyper::StatusCode;
use serde_json::{Value, json};
use tandem_core::config::{self, Appliance, Command};

/// Whether the web may run `cmd`: reports and status only (never a change, never an action
/// such as a takeover, a key or a diagnostics file).
pub fn read_only(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::ExecutorStatus
            | Command::ExecutorReport
            | Command::ClusterReport(_)
            | Command::ClusterStatus(_)
            | Command::PortReport(_)
            | Command::PortStatus(_)
            | Command::ServerReport(_)
            | Command::ServerStatus(_)
            | Command::HaStatus
            | Command::HaMaintenance
            | Command::AdvisorList
            | Command::AdvisorReport(_)
            | Command::AdvisorStatus(_)
            | Command::ManagerStatus
            | Command::ManagerReport(_)
            | Command::SaspReport
            | Command::FileReport
            | Command::Ha(Appliance::Status)
    )
}

fn refusal(error: String) -> Value {
    json!({"ok": false, "output": "", "data": null, "error": error})
}

/// The reply to `/api/query` with its query string.
pub fn query(node: &Node, query: Option<&str>) -> (StatusCode, Value) {
    let cmd = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "cmd")
            .map(|(_, v)| v.into_owned())
    });
    let Some(cmd) = cmd else {
        return (
            StatusCode::BAD_REQUEST,
            refusal("missing cmd: /api/query?cmd=executor+status".into()),
        );
    };
    let words: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    match config::parse_words(&refs) {
        Ok(Some(c)) if read_only(&c) => {}
        Ok(Some(c)) => {
            return (
                StatusCode::FORBIDDEN,
                refusal(format!(
                    "'{c}' is refused: the web server answers reports and status only (use tandemctl)"
                )),
            );
        }
        Ok(None) => return (StatusCode::BAD_REQUEST, refusal("empty command".into())),
        Err(e) => return (StatusCode::BAD_REQUEST, refusal(e.to_string())),
    }
    let reply = node.execute(&words, true);
    (
        StatusCode::OK,
        serde_json::to_value(&reply).unwrap_or(Value::Null),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Command {
        let words: Vec<&str> = line.split_whitespace().collect();
        config::parse_words(&words).unwrap().unwrap()
    }

    #[test]
    fn reports_and_status_are_read_only() {
        for line in [
            "executor status",
            "executor report",
            "cluster report @",
            "port report @",
            "server report @@",
            "highavailability status",
            "ha status",
            "file report",
        ] {
            assert!(read_only(&parsed(line)), "{line}");
        }
    }

    #[test]
    fn changes_and_actions_are_not() {
        for line in [
            "executor stop",
            "executor set metrics off",
            "cluster add 192.0.2.10",
            "highavailability takeover",
            "highavailability maintenance start",
            "highavailability key generate /tmp/k",
            "diagnostics /tmp/d.tar.gz",
            "file save x",
            "file delete x",
            "ha failover",
        ] {
            assert!(!read_only(&parsed(line)), "{line}");
        }
    }
}
