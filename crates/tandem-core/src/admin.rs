//! The admin request: what `tandemctl` sends `tandemd` over the Unix socket, one JSON object per
//! line: `{"words": ["executor", "status"], "json": false}`.
//!
//! Decoding is bounded and never panics: the daemon's socket shell reads at most
//! [`MAX_REQUEST_BYTES`] per line and hands the bytes here; the words then go to the grammar
//! ([`crate::config::parse`]), the one parser of the product.

use serde::Deserialize;

/// The longest request line accepted (a configuration line is far shorter).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// The most words one request may carry.
pub const MAX_WORDS: usize = 256;

/// One command from `tandemctl`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The command words, as typed (the dscontrol grammar).
    pub words: Vec<String>,
    /// Reply with data only (`tandemctl --json`).
    #[serde(default)]
    pub json: bool,
}

/// Why a request line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request too long ({0} bytes; at most {MAX_REQUEST_BYTES})")]
    TooLong(usize),
    #[error("request has {0} words (at most {MAX_WORDS})")]
    TooManyWords(usize),
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Decodes one request line (without its newline).
pub fn decode_request(line: &[u8]) -> Result<Request, RequestError> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLong(line.len()));
    }
    let req: Request =
        serde_json::from_slice(line).map_err(|e| RequestError::Malformed(e.to_string()))?;
    if req.words.len() > MAX_WORDS {
        return Err(RequestError::TooManyWords(req.words.len()));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_decode_and_bad_ones_are_refused() {
        let r = decode_request(br#"{"words":["executor","status"],"json":true}"#).unwrap();
        assert_eq!(r.words, ["executor", "status"]);
        assert!(r.json);
        assert!(!decode_request(br#"{"words":[]}"#).unwrap().json);
        assert!(matches!(
            decode_request(b"{\"words\":"),
            Err(RequestError::Malformed(_))
        ));
        assert!(matches!(
            decode_request(br#"{"words":["a"],"evil":1}"#),
            Err(RequestError::Malformed(_))
        ));
        let long = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(
            decode_request(&long),
            Err(RequestError::TooLong(MAX_REQUEST_BYTES + 1))
        );
        let many = format!(
            r#"{{"words":[{}]}}"#,
            vec!["\"x\""; MAX_WORDS + 1].join(",")
        );
        assert_eq!(
            decode_request(many.as_bytes()),
            Err(RequestError::TooManyWords(MAX_WORDS + 1))
        );
    }
}
