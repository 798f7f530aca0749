//! The results: rows of (figure, measured, goal, verdict) for the table, and
//! the same figures with more detail as JSON.

use serde_json::{Map, Value, json};

use crate::Config;

pub struct Row {
    pub figure: String,
    pub value: String,
    pub goal: String,
    /// `None` for figures without a goal.
    pub meets: Option<bool>,
}

pub struct Report {
    head: Map<String, Value>,
    sections: Map<String, Value>,
    rows: Vec<Row>,
}

/// p50, p99 and max of a sample, in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, Default)]
pub struct Dist {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    pub fn of(mut ms: Vec<f64>) -> Dist {
        if ms.is_empty() {
            return Dist::default();
        }
        ms.sort_by(f64::total_cmp);
        let rank = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Dist {
            n: ms.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: ms[ms.len() - 1],
        }
    }

    pub fn json(&self) -> Value {
        json!({"n": self.n, "p50_ms": round(self.p50), "p99_ms": round(self.p99), "max_ms": round(self.max)})
    }

    pub fn text(&self) -> String {
        format!(
            "p50 {} / p99 {} / max {} (n={})",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.n
        )
    }
}

pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Milliseconds for humans.
pub fn ms(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.1} s", x / 1000.0)
    } else if x >= 100.0 {
        format!("{x:.0} ms")
    } else {
        format!("{x:.1} ms")
    }
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    json!({
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": model,
        "memory_gib": round(mem_kib as f64 / 1024.0 / 1024.0),
        "os": std::env::consts::OS,
    })
}

impl Report {
    pub fn new(cfg: &Config) -> Report {
        let mut head = Map::new();
        head.insert("machine".into(), machine());
        head.insert("spokes".into(), json!(cfg.spokes));
        head.insert("smoke".into(), json!(cfg.smoke));
        head.insert("poll_interval_s".into(), json!(cfg.poll_interval));
        Report {
            head,
            sections: Map::new(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, figure: &str, value: String, goal: &str, meets: Option<bool>) {
        eprintln!("  {figure}: {value}");
        self.rows.push(Row {
            figure: figure.to_string(),
            value,
            goal: goal.to_string(),
            meets,
        });
    }

    pub fn set(&mut self, key: &str, v: Value) {
        self.sections.insert(key.to_string(), v);
    }

    pub fn print(&self) {
        let m = self.head["machine"].clone();
        println!(
            "\nfleet-load: {} simulated spokes on {} cores ({})\n",
            self.head["spokes"],
            m["cores"],
            m["cpu"].as_str().unwrap_or("")
        );
        let w0 = self
            .rows
            .iter()
            .map(|r| r.figure.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let w1 = self
            .rows
            .iter()
            .map(|r| r.value.len())
            .max()
            .unwrap_or(8)
            .max(8);
        let w2 = self
            .rows
            .iter()
            .map(|r| r.goal.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:w0$}  {:w1$}  {:w2$}  verdict",
            "figure", "measured", "goal"
        );
        println!("{}", "-".repeat(w0 + w1 + w2 + 13));
        for r in &self.rows {
            let verdict = match r.meets {
                Some(true) => "meets",
                Some(false) => "MISSES",
                None => "",
            };
            println!(
                "{:w0$}  {:w1$}  {:w2$}  {verdict}",
                r.figure, r.value, r.goal
            );
        }
    }

    pub fn json(&self) -> Value {
        let mut out = self.head.clone();
        out.insert(
            "goals".into(),
            Value::Array(
                self.rows
                    .iter()
                    .map(|r| {
                        json!({"figure": r.figure, "measured": r.value, "goal": r.goal, "meets": r.meets})
                    })
                    .collect(),
            ),
        );
        for (k, v) in &self.sections {
            out.insert(k.clone(), v.clone());
        }
        Value::Object(out)
    }
}
