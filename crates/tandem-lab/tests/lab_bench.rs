//! Smoke test of `tandem-lab bench --quick`: one round of one second, the direct case and
//! Tandem AF_PACKET with MAC forwarding, IPv4. It needs root (network namespaces) and fails
//! without it; it checks that every metric was measured and is positive, not how fast.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tandem-lab");

#[test]
fn lab_bench_quick_smoke() {
    let _serial = tandem_lab::serial();
    let dir = std::env::temp_dir().join(format!("tandem-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let out = Command::new(BIN)
        .args([
            "bench",
            "--quick",
            "--cases",
            "direct,afpacket",
            "--modes",
            "mac",
            "--families",
            "ipv4",
            "--json-out",
        ])
        .arg(&json)
        .output()
        .expect("running tandem-lab bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tandem-lab bench --quick failed (it needs root and nft):\n{stderr}"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| family | case | keep-alive req/s |"),
        "no Markdown table on stdout:\n{table}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for row in rows {
        assert!(
            row.get("not_run").is_none(),
            "row {} did not run: {}\n{stderr}",
            row["label"],
            row["not_run"]
        );
        let s = &row["summary"];
        for key in ["keepalive_per_sec", "conn_per_sec", "udp_delivered_pps"] {
            let v = s[key]["median"].as_f64().unwrap_or(0.0);
            assert!(v > 0.0, "{} {key} = {v}\n{stderr}", row["label"]);
        }
    }
    let tandem = &rows[1]["summary"];
    assert!(
        tandem["tandemd_us_per_frame"]["median"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0,
        "no tandemd CPU per frame: {tandem:#}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
