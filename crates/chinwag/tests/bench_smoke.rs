//! A short run of every benchmark scenario: it checks the correctness
//! counts (lost, duplicated, out of order, gaps), not speed.

use std::process::Command;

#[test]
fn every_scenario_runs_clean() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let chart_path = dir.path().join("latency.svg");
    let output = Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["bench", "--smoke", "--json", "--out"])
        .arg(&report_path)
        .arg("--chart")
        .arg(&chart_path)
        // 100 idle connections (the smoke size): 40 here, 60 in workers.
        .args(["--per-process", "40"])
        .output()
        .expect("run chinwag bench");
    assert!(
        output.status.success(),
        "bench failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let names: Vec<&str> =
        report["scenarios"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["idle", "direct-relay", "direct-max", "direct-rate", "group", "reconnect"]);
    for scenario in report["scenarios"].as_array().unwrap() {
        let c = &scenario["correctness"];
        for count in ["lost", "duplicated", "out_of_order", "gaps"] {
            assert_eq!(c[count], 0, "{} {count}: {scenario}", scenario["name"]);
        }
    }
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
