//! Results, targets, and the markdown table.

use std::fmt::Write as _;

/// One measured figure.
#[derive(Debug, Clone, Copy)]
pub enum Value {
    /// Tasks per second (higher is better).
    Rate(f64),
    /// Microseconds (lower is better).
    Micros(f64),
    /// A plain factor (lower is better), e.g. a latency at 1M rows over the one at 10k.
    Factor(f64),
}

impl Value {
    fn show(self) -> String {
        match self {
            Value::Rate(r) => format!("{} /s", group(r)),
            Value::Micros(us) if us >= 10_000.0 => format!("{:.1} ms", us / 1000.0),
            Value::Micros(us) => format!("{:.3} ms", us / 1000.0),
            Value::Factor(f) => format!("{f:.2}×"),
        }
    }
}

/// A number with thousands separators, no decimals.
fn group(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// What a figure must reach.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// taskrow ÷ floor (rates) at least this.
    RatioAtLeast(f64),
    /// Under this many microseconds.
    MicrosBelow(f64),
    /// At most this many microseconds.
    MicrosAtMost(f64),
    /// A factor of at most this.
    FactorAtMost(f64),
    /// taskrow's time at most this multiple of the floor's.
    TimesFloorAtMost(f64),
}

impl Target {
    fn show(self) -> String {
        match self {
            Target::RatioAtLeast(r) => format!("≥ {r} of floor"),
            Target::MicrosBelow(us) => format!("< {} ms", us / 1000.0),
            Target::MicrosAtMost(us) => format!("≤ {} ms", us / 1000.0),
            Target::FactorAtMost(f) => format!("≤ {f}×"),
            Target::TimesFloorAtMost(f) => format!("≤ {f:.1}× floor"),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Line {
    pub store: String,
    pub measure: String,
    pub taskrow: Option<Value>,
    pub floor: Option<Value>,
    pub target: Option<Target>,
    pub note: String,
}

impl Line {
    pub fn new(store: &str, measure: impl Into<String>) -> Self {
        Self {
            store: store.to_owned(),
            measure: measure.into(),
            taskrow: None,
            floor: None,
            target: None,
            note: String::new(),
        }
    }
    pub fn taskrow(mut self, v: Value) -> Self {
        self.taskrow = Some(v);
        self
    }
    pub fn floor(mut self, v: Option<Value>) -> Self {
        self.floor = v;
        self
    }
    pub fn target(mut self, t: Target) -> Self {
        self.target = Some(t);
        self
    }
    pub fn note(mut self, n: impl Into<String>) -> Self {
        self.note = n.into();
        self
    }

    /// taskrow ÷ floor for rates (1 = as fast as the floor); taskrow's time as a multiple of
    /// the floor's for times and factors.
    fn ratio(&self) -> Option<f64> {
        match (self.taskrow?, self.floor?) {
            (Value::Rate(t), Value::Rate(f)) if f > 0.0 => Some(t / f),
            (Value::Micros(t), Value::Micros(f)) if f > 0.0 => Some(t / f),
            (Value::Factor(t), Value::Factor(f)) if f > 0.0 => Some(t / f),
            _ => None,
        }
    }

    fn ratio_text(&self) -> String {
        match (self.ratio(), self.taskrow) {
            (Some(r), Some(Value::Rate(_))) => format!("{r:.2}"),
            (Some(r), Some(_)) => format!("{r:.2}× floor"),
            _ => "—".to_owned(),
        }
    }

    /// `Some(true)` met, `Some(false)` missed, `None` no target (or nothing to judge).
    pub fn met(&self) -> Option<bool> {
        let t = self.target?;
        let v = self.taskrow?;
        Some(match (t, v) {
            (Target::RatioAtLeast(min), _) => self.ratio()? >= min,
            (Target::MicrosBelow(max), Value::Micros(us)) => us < max,
            (Target::MicrosAtMost(max), Value::Micros(us)) => us <= max,
            (Target::FactorAtMost(max), Value::Factor(f)) => f <= max,
            (Target::TimesFloorAtMost(max), Value::Micros(_)) => self.ratio()? <= max,
            _ => return None,
        })
    }
}

/// The markdown table of `lines`.
pub fn table(lines: &[Line]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| store | measure | taskrow | floor (plain sqlx) | taskrow vs floor | target | met |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|---|---|");
    for l in lines {
        let show = |v: Option<Value>| v.map_or_else(|| "—".to_owned(), Value::show);
        let met = match l.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let mut measure = l.measure.clone();
        if !l.note.is_empty() {
            let _ = write!(measure, " ({})", l.note);
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            l.store,
            measure,
            show(l.taskrow),
            show(l.floor),
            l.ratio_text(),
            l.target.map_or_else(String::new, Target::show),
            met
        );
    }
    out
}

/// Nearest-rank percentile of `v` (sorted in place), in the units of `v`.
pub fn percentile(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1] as f64
}

/// p50 and p99 of `samples`.
pub fn p50_p99(mut samples: Vec<u64>) -> (f64, f64) {
    (
        percentile(&mut samples, 50.0),
        percentile(&mut samples, 99.0),
    )
}

/// Issue 17's memory target, once both stores ran: the memory store's drain against the SQLite
/// store's (taskrow on both; the SQLite figure stands in the floor column).
pub fn memory_against_sqlite(lines: &[Line]) -> Option<Line> {
    let drain = |store: &str| {
        lines
            .iter()
            .find(|l| l.store == store && l.measure.starts_with("drain, concurrency"))
            .and_then(|l| l.taskrow)
    };
    Some(
        Line::new(
            "memory",
            "drain, against the SQLite store's drain (in the floor column)",
        )
        .taskrow(drain("memory")?)
        .floor(Some(drain("SQLite")?))
        .target(Target::RatioAtLeast(3.0)),
    )
}
