//! A short run of every benchmark scenario: it checks the correctness
//! counts (lost, duplicated, out of order, gaps), not speed.

use std::path::Path;
use std::process::Command;

/// Runs `chinwag bench --smoke --json --out <report>` with `args`; the report.
fn bench(report_path: &Path, args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["bench", "--smoke", "--json", "--out"])
        .arg(report_path)
        .args(args)
        .output()
        .expect("run chinwag bench");
    assert!(
        output.status.success(),
        "bench failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(report_path).unwrap()).unwrap();
    for scenario in report["scenarios"].as_array().unwrap() {
        let c = &scenario["correctness"];
        for count in ["lost", "duplicated", "out_of_order", "gaps"] {
            assert_eq!(c[count], 0, "{} {count}: {scenario}", scenario["name"]);
        }
    }
    report
}

fn names(report: &serde_json::Value) -> Vec<&str> {
    report["scenarios"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect()
}

#[test]
fn every_scenario_runs_clean() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let chart_path = dir.path().join("latency.svg");
    // 100 idle connections (the smoke size): 40 here, 60 in workers.
    let report = bench(&report_path, &["--chart", chart_path.to_str().unwrap(), "--per-process", "40"]);
    assert_eq!(
        names(&report),
        vec!["idle", "direct-relay", "direct-max", "direct-rate", "group", "reconnect", "media"]
    );
    // Idle connections were spread over the bench and two worker processes.
    assert_eq!(report["scenarios"][0]["notes"]["connections"], 100);
    assert!(report["scenarios"][0]["notes"]["bytes_per_connection"].as_f64().is_some());
    let group = &report["scenarios"][4];
    assert!(group["deliveries_per_s"].as_f64().unwrap() > 0.0);
    assert!(group["send_deliver"]["count"].as_u64().unwrap() > 0);
    assert!(report["fsync_per_s"].as_f64().unwrap() > 0.0);
    let svg = std::fs::read_to_string(&chart_path).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("send→deliver"));
}

/// Direct and group through a cluster of two gateways (PostgreSQL, three
/// NATS servers), beside the single node on the same PostgreSQL.
#[test]
fn the_cluster_scenarios_run_clean() {
    if std::env::var("CHINWAG_TEST_STORE").is_ok_and(|s| s == "postgres") {
        return; // Already on PostgreSQL: the second pass would repeat it.
    }
    let dir = tempfile::tempdir().unwrap();
    let report = bench(&dir.path().join("report.json"), &["--cluster", "--scenarios", "direct,group", "--no-relay"]);
    let expected = ["direct-max", "direct-rate", "group", "cluster direct-max", "cluster direct-rate", "cluster group"];
    assert_eq!(names(&report), expected);
    // Members on both gateways: each message crosses the bus about once
    // (plus the channel head beacons of a short run).
    let group = &report["scenarios"][5];
    let crossings = group["notes"]["routed_events_per_message"].as_f64().unwrap();
    assert!((1.0..2.0).contains(&crossings), "{group}");
    assert!(group["deliveries_per_s"].as_f64().unwrap() > 0.0);
}
