//! The routes, as plain functions of the path (no HTTP types beyond the status code).

use super::server::Ctx;
use hyper::StatusCode;

/// An answer: status, content type and body.
pub(super) struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The content type of `/metrics` (the Prometheus text format, which Prometheus and promtool read).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const JSON: &str = "application/json";

impl Answer {
    pub fn text(status: StatusCode, body: &str) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }
    pub fn json(status: StatusCode, value: &serde_json::Value) -> Answer {
        let mut body = serde_json::to_vec(value).unwrap_or_default();
        body.push(b'\n');
        Answer {
            status,
            content_type: JSON,
            body,
        }
    }
    pub fn method_not_allowed() -> Answer {
        Answer::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "read-only: GET and HEAD only\n",
        )
    }
}

pub(super) fn route(ctx: &Ctx, path: &str, query: Option<&str>) -> Answer {
    // Assets first: they need no node.
    if path == "/" || path.starts_with("/static/") {
        return match super::page::asset(path) {
            Some(a) => Answer {
                status: StatusCode::OK,
                content_type: a.content_type,
                body: a.body.to_vec(),
            },
            None => not_found(),
        };
    }
    let Some(node) = ctx.node.upgrade() else {
        return Answer::text(StatusCode::SERVICE_UNAVAILABLE, "the node is stopping\n");
    };
    match path {
        "/metrics" => Answer {
            status: StatusCode::OK,
            content_type: METRICS_CONTENT_TYPE,
            body: super::metrics::gather(&node).into_bytes(),
        },
        "/api/status" => Answer::json(
            StatusCode::OK,
            &super::status::status(&node, &ctx.history.samples()),
        ),
        "/api/query" => {
            let (status, value) = super::query::query(&node, query);
            Answer::json(status, &value)
        }
        _ => not_found(),
    }
}

fn not_found() -> Answer {
    Answer::text(StatusCode::NOT_FOUND, "not found\n")
}
