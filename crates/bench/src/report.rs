//! The benchmark's report: a table for people, JSON for machines, and an
//! SVG chart of the latency distributions.

use crate::stats::{Correctness, Hist, Latency};
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub machine: String,
    pub server: String,
    /// `fdatasync`s per second on the data directory's disk.
    pub fsync_per_s: Option<f64>,
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Debug, Default, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub params: String,
    pub messages_per_s: Option<f64>,
    pub deliveries_per_s: Option<f64>,
    pub send_ack: Option<Latency>,
    pub send_deliver: Option<Latency>,
    pub correctness: Correctness,
    /// Scenario-specific figures (memory per connection, relay ratio, ...).
    pub notes: serde_json::Value,
    #[serde(skip)]
    pub curves: Vec<(String, Hist)>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.scenarios.iter().all(|s| s.correctness.is_clean())
    }

    pub fn table(&self) -> String {
        let mut out = format!("machine: {}\nserver:  {}\n", self.machine, self.server);
        if let Some(f) = self.fsync_per_s {
            out += &format!("disk:    {f:.0} fsync/s (durability floor)\n");
        }
        let width = self.scenarios.iter().map(|s| s.name.len()).max().unwrap_or(0).max(16);
        out += &format!(
            "\n{:<width$}   msgs/s   deliv/s  ack p50/p99/p99.9/max ms         deliver p50/p99/p99.9/max ms     lost dup ooo gap\n",
            "scenario"
        );
        let lat = |l: &Option<Latency>| match l {
            Some(l) => format!("{:6.2} {:7.2} {:7.2} {:8.2}", l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms),
            None => format!("{:>31}", "-"),
        };
        let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        for s in &self.scenarios {
            let c = &s.correctness;
            out += &format!(
                "{:<width$} {:>8} {:>9}  {}  {}  {:>4} {:>3} {:>3} {:>3}\n",
                s.name,
                num(s.messages_per_s),
                num(s.deliveries_per_s),
                lat(&s.send_ack),
                lat(&s.send_deliver),
                c.lost,
                c.duplicated,
                c.out_of_order,
                c.gaps
            );
        }
        for s in &self.scenarios {
            out += &format!("\n{}: {}", s.name, s.params);
            if !s.notes.is_null() {
                out += &format!("\n  {}", s.notes);
            }
        }
        out + "\n"
    }

    /// Latency (log scale) against percentile, one line per distribution.
    pub fn chart(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let curves: Vec<(String, Vec<(f64, f64)>)> = self
            .scenarios
            .iter()
            .flat_map(|s| s.curves.iter().map(move |(name, h)| (format!("{} {name}", s.name), h)))
            .filter(|(_, h)| !h.0.is_empty())
            .map(|(name, h)| (name, h.curve()))
            .collect();
        let max_ms = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)).fold(1.0f64, f64::max) * 1.5;
        let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
        root.fill(&WHITE)?;
        // x is "nines": 0 = p0, 1 = p90, 2 = p99, 3 = p99.9, 4 = p99.99.
        let mut chart = ChartBuilder::on(&root)
            .caption("chinwag latency distribution", ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..4f64, (0.01f64..max_ms).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_labels(5)
            .x_label_formatter(&|x| format!("p{}", 100.0 - 100.0 * 10f64.powf(-x)))
            .draw()?;
        for (i, (name, points)) in curves.into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let series = points.into_iter().map(|(pct, ms)| (-(1.0 - pct / 100.0).max(1e-4).log10(), ms.max(0.01)));
            chart
                .draw_series(LineSeries::new(series, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        root.present()?;
        Ok(())
    }
}
