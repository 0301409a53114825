//! The status page's assets (the page helper replaces this stub with the embedded page).

/// One embedded file.
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The asset served at `path` (`/` or `/static/NAME`), if there is one.
pub fn asset(path: &str) -> Option<Asset> {
    match path {
        "/" => Some(Asset {
            content_type: "text/html; charset=utf-8",
            body: b"<!doctype html><title>Tandem</title><p>The status page is not built yet: see <a href=\"/api/status\">/api/status</a> and <a href=\"/metrics\">/metrics</a>.</p>\n",
        }),
        _ => None,
    }
}
