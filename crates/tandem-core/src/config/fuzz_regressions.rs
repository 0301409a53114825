//! Regression tests for what the fuzz targets (`fuzz/`) found in the configuration code.

use super::{Config, load_file};
use std::time::{Duration, Instant};

/// The `grammar` target timed out on a 2.5 KB input (`cluster add` of 120 clusters, `port
/// add @1+…+199`, `server add @@` 59 servers): each changing command re-checked every port
/// and server of its clusters, once per listed port, so `server add` over P ports cost
/// P² × servers, and loading a saved file cost (servers per cluster)². Now a command checks
/// the ports it touched, once each: loading is linear.
///
/// 150 000 servers in one cluster, as `file save` writes them: before the fix this took
/// 101 s in the test profile (measured), now 0.3 s (12 s seen on a machine at load 12). The
/// bound of 60 s is a correctness bound, not a speed figure: 200 times the linear load, well
/// under the quadratic one.
#[test]
fn fuzz_regression_newload_is_linear_in_servers() {
    let mut text = String::from("cluster add 192.0.2.100\n");
    for p in 1..=600 {
        text.push_str(&format!("port add 192.0.2.100@{p}\n"));
    }
    for p in 1..=600 {
        for s in 0..250u32 {
            text.push_str(&format!(
                "server add 192.0.2.100@{p}@10.0.{}.{}\n",
                s / 200,
                s % 200 + 1
            ));
        }
    }
    let t0 = Instant::now();
    let config = load_file(&text, "big.cfg", &Config::default()).expect("loads");
    let took = t0.elapsed();
    let servers: usize = config.clusters[&"192.0.2.100".parse().unwrap()]
        .ports
        .values()
        .map(|p| p.servers.len())
        .sum();
    assert_eq!(servers, 150_000);
    assert!(
        took < Duration::from_secs(60),
        "loading 150 000 servers took {took:?} (quadratic checks?)"
    );
}

/// The `admin_request` target: the words `clu add ""` (an empty cluster address, as a JSON
/// request can carry it) panicked in the parser instead of being refused.
#[test]
fn fuzz_regression_empty_word_is_refused() {
    use super::parse_words;
    for words in [
        &["clu", "add", ""][..],
        &["cluster", "add", ""],
        &["port", "add", ""],
        &["server", "add", ""],
    ] {
        assert!(
            parse_words(words).is_err(),
            "{words:?} is accepted; an empty target word must be refused"
        );
    }
}
