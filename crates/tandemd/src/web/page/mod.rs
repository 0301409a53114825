//! The status page: static assets embedded in the binary (no CDN, no external fonts, works
//! offline). The page is `index.html` plus a script and a stylesheet under `/static/`; the
//! script polls `/api/status` every second and builds the DOM with `textContent` only, so
//! operator text (cluster and server labels) and anything from the network renders as text.
//! No inline script or style: the page runs under [`CONTENT_SECURITY_POLICY`].

/// One embedded file of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The `Content-Security-Policy` the web server sends with the page's answers: only the
/// page's own script, style and `/api/status` (no inline script, no other origin).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const ASSETS: &[(&str, Asset)] = &[
    (
        "/",
        Asset {
            content_type: "text/html; charset=utf-8",
            body: include_bytes!("index.html"),
        },
    ),
    (
        "/static/app.js",
        Asset {
            content_type: "text/javascript; charset=utf-8",
            body: include_bytes!("app.js"),
        },
    ),
    (
        "/static/style.css",
        Asset {
            content_type: "text/css; charset=utf-8",
            body: include_bytes!("style.css"),
        },
    ),
];

/// The asset for a request path (`/`, `/index.html`, `/static/NAME`; a query string is
/// ignored), or `None` (the server answers 404).
pub fn asset(path: &str) -> Option<Asset> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, a)| *a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(path: &str) -> &'static str {
        std::str::from_utf8(asset(path).expect(path).body).expect("utf-8")
    }

    #[test]
    fn paths_map_to_their_assets_and_others_are_not_found() {
        assert!(asset("/").unwrap().content_type.starts_with("text/html"));
        assert_eq!(asset("/index.html"), asset("/"));
        assert_eq!(asset("/?x=1"), asset("/"));
        assert!(
            asset("/static/app.js")
                .unwrap()
                .content_type
                .starts_with("text/javascript")
        );
        assert!(
            asset("/static/style.css")
                .unwrap()
                .content_type
                .starts_with("text/css")
        );
        for missing in [
            "/static/",
            "/static/../main.rs",
            "/static/app.js/",
            "/app.js",
            "",
            "/api/status",
        ] {
            assert!(asset(missing).is_none(), "{missing:?}");
        }
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        let html = text("/");
        assert!(html.contains(r#"<script src="/static/app.js" defer></script>"#));
        assert!(html.contains(r#"href="/static/style.css""#));
        // Everything referenced exists; nothing comes from another origin; no inline script
        // or style (the CSP forbids them).
        for page in [text("/"), text("/static/app.js"), text("/static/style.css")] {
            assert!(!page.contains("http://") && !page.contains("https://"));
            assert!(!page.contains("//cdn") && !page.contains("@import"));
        }
        assert_eq!(html.matches("<script").count(), 1);
        assert!(!html.contains("<style") && !html.contains(" style="));
        let handler = html
            .split_whitespace()
            .find(|w| w.starts_with("on") && w.contains('='));
        assert_eq!(handler, None, "inline event handler");
    }

    #[test]
    fn the_script_never_writes_markup() {
        let js = text("/static/app.js");
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!js.contains(sink), "app.js uses {sink}");
        }
        assert!(js.contains("/api/status"));
    }
}
