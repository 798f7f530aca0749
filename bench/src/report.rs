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
    /// Against `--baseline`: the baseline's value and how far it moved.
    pub baseline: Option<(String, Moved)>,
}

/// How a figure compares with the baseline's.
#[derive(Debug, Clone, PartialEq)]
pub enum Moved {
    /// Every number within the threshold.
    Same,
    /// The largest relative change of its numbers, when over the threshold.
    By(f64),
    /// The figures do not have the same numbers and units.
    Incomparable,
}

/// A figure that moved by more than this fraction is marked.
pub const MOVED: f64 = 0.20;

/// The numbers of a figure's text with their units, scaled to one base per
/// kind (ms, KiB, a count).
pub fn numbers(text: &str) -> Vec<(f64, &'static str)> {
    let mut out = Vec::new();
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, '/' | '(' | ')' | ',' | '='))
        .filter(|w| !w.is_empty())
        .collect();
    for (i, w) in words.iter().enumerate() {
        let (num, rest) = w.split_at(
            w.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .unwrap_or(w.len()),
        );
        let Ok(n) = num.parse::<f64>() else { continue };
        let unit = if rest.is_empty() {
            words.get(i + 1).copied().unwrap_or("")
        } else {
            rest
        };
        let (scale, base) = match unit {
            "ms" => (1.0, "ms"),
            "s" => (1000.0, "ms"),
            "us" | "µs" => (0.001, "ms"),
            "B" => (1.0 / 1024.0, "KiB"),
            "KiB" => (1.0, "KiB"),
            "MiB" => (1024.0, "KiB"),
            "GiB" => (1024.0 * 1024.0, "KiB"),
            "%" => (1.0, "%"),
            "x" => (1.0, "x"),
            _ => (1.0, ""),
        };
        out.push((n * scale, base));
    }
    out
}

/// Compares a figure's text with the baseline's.
pub fn moved(old: &str, new: &str, threshold: f64) -> Moved {
    let (a, b) = (numbers(old), numbers(new));
    if a.len() != b.len() || a.is_empty() || a.iter().zip(&b).any(|(x, y)| x.1 != y.1) {
        return Moved::Incomparable;
    }
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| {
            if x.0 == 0.0 {
                if y.0 == 0.0 { 0.0 } else { 1.0 }
            } else {
                (y.0 - x.0) / x.0.abs()
            }
        })
        .fold(0.0f64, |w, c| if c.abs() > w.abs() { c } else { w });
    if worst.abs() > threshold {
        Moved::By(worst)
    } else {
        Moved::Same
    }
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
            baseline: None,
        });
    }

    /// Marks each figure against a previous run's JSON (`--baseline`).
    pub fn compare(&mut self, baseline: &Value) {
        let Some(goals) = baseline["goals"].as_array() else {
            return;
        };
        for r in &mut self.rows {
            let old = goals
                .iter()
                .find(|g| g["figure"] == r.figure.as_str())
                .and_then(|g| g["measured"].as_str());
            if let Some(old) = old {
                r.baseline = Some((old.to_string(), moved(old, &r.value, MOVED)));
            }
        }
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
            let vs = match &r.baseline {
                Some((_, Moved::By(c))) => format!("  MOVED {:+.0}% vs baseline", c * 100.0),
                Some((_, Moved::Incomparable)) => "  (not comparable with baseline)".into(),
                Some((_, Moved::Same)) => "  same as baseline".into(),
                None => String::new(),
            };
            println!(
                "{:w0$}  {:w1$}  {:w2$}  {verdict:6}{vs}",
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
                        let mut g = json!({"figure": r.figure, "measured": r.value, "goal": r.goal, "meets": r.meets});
                        if let Some((old, m)) = &r.baseline {
                            g["baseline"] = json!(old);
                            g["moved"] = match m {
                                Moved::By(c) => json!(round(c * 100.0)),
                                Moved::Same => json!(0),
                                Moved::Incomparable => Value::Null,
                            };
                        }
                        g
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_compared_number_by_number_with_units() {
        assert_eq!(
            numbers("p50 138 ms / p99 1.5 s / max 2 s (n=20)"),
            vec![(138.0, "ms"), (1500.0, "ms"), (2000.0, "ms"), (20.0, "")]
        );
        assert_eq!(numbers("57.2 KiB"), vec![(57.2, "KiB")]);
        let a = "p50 100 ms / p99 200 ms (n=20)";
        assert_eq!(
            moved(a, "p50 110 ms / p99 230 ms (n=20)", MOVED),
            Moved::Same
        );
        assert_eq!(
            moved(a, "p50 100 ms / p99 300 ms (n=20)", MOVED),
            Moved::By(0.5)
        );
        assert_eq!(
            moved(a, "p50 60 ms / p99 200 ms (n=20)", MOVED),
            Moved::By(-0.4)
        );
        assert_eq!(moved("2.8 MiB", "2868 KiB", MOVED), Moved::Same);
        assert_eq!(moved(a, "1 s", MOVED), Moved::Incomparable);
        assert_eq!(moved("0 resends", "3 resends", MOVED), Moved::By(1.0));
    }
}
