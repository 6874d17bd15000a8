//! Retry policies: when a failed attempt runs again.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When a failed attempt runs again. Stored on the task's row, so a task keeps the policy it was
/// enqueued with.
///
/// The delay after attempt `n` (1-based) is, for [`RetryPolicy::Fixed`], the interval; for
/// [`RetryPolicy::Exponential`], `initial × factorⁿ⁻¹` capped at `max`, then reduced by up to
/// `jitter` (a fraction in `0..=1`) of itself, so with jitter the delay lies in
/// `[d × (1 − jitter), d]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RetryPolicy {
    /// The same delay after every failure (seed 003's `retry_interval`, 60 s by default).
    Fixed {
        /// Delay between a failure and the next run, in milliseconds.
        interval_ms: u64,
    },
    /// A growing delay: `initial × factorⁿ⁻¹`, capped, with jitter.
    Exponential {
        /// Delay after the first failure, in milliseconds.
        initial_ms: u64,
        /// Growth per failure (2.0 doubles).
        factor: f64,
        /// Upper bound of the delay, in milliseconds.
        max_ms: u64,
        /// Fraction of the delay (0 to 1) that may be taken off at random.
        jitter: f64,
    },
}

impl Default for RetryPolicy {
    /// A fixed 60 s interval, as in both seeds.
    fn default() -> Self {
        Self::fixed(Duration::from_secs(60))
    }
}

impl RetryPolicy {
    /// A fixed interval.
    pub fn fixed(interval: Duration) -> Self {
        Self::Fixed {
            interval_ms: interval.as_millis() as u64,
        }
    }

    /// Exponential backoff doubling from `initial` up to `max`, with 20 % jitter.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Self::Exponential {
            initial_ms: initial.as_millis() as u64,
            factor: 2.0,
            max_ms: max.as_millis() as u64,
            jitter: 0.2,
        }
    }

    /// The same policy with another growth factor (exponential only; values below 1 become 1).
    pub fn with_factor(self, f: f64) -> Self {
        match self {
            Self::Exponential {
                initial_ms,
                max_ms,
                jitter,
                ..
            } => Self::Exponential {
                initial_ms,
                factor: if f.is_finite() { f.max(1.0) } else { 1.0 },
                max_ms,
                jitter,
            },
            other => other,
        }
    }

    /// The same policy with another jitter fraction (exponential only; clamped to `0..=1`).
    pub fn with_jitter(self, j: f64) -> Self {
        match self {
            Self::Exponential {
                initial_ms,
                factor,
                max_ms,
                ..
            } => Self::Exponential {
                initial_ms,
                factor,
                max_ms,
                jitter: if j.is_finite() {
                    j.clamp(0.0, 1.0)
                } else {
                    0.0
                },
            },
            other => other,
        }
    }

    /// The delay before the next run after attempt `attempt` (1-based) failed; `random` is a
    /// number in `[0, 1)` that decides the jitter.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        match *self {
            Self::Fixed { interval_ms } => Duration::from_millis(interval_ms),
            Self::Exponential {
                initial_ms,
                factor,
                max_ms,
                jitter,
            } => {
                let exp = attempt.saturating_sub(1).min(1000) as i32;
                let raw = initial_ms as f64 * factor.max(1.0).powi(exp);
                let capped = raw.min(max_ms as f64).max(0.0);
                let j = jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
                Duration::from_millis((capped * (1.0 - j)).round() as u64)
            }
        }
    }

    /// The policy as the JSON text stores keep on the row.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a retry policy always serializes")
    }

    /// Reads a policy stored by [`RetryPolicy::to_json`].
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
}

/// Where jitter takes its randomness from. [`Jitter::seeded`] repeats its sequence, so a test can
/// pin it; [`Jitter::fixed`] always answers the same number, so a test can bound it exactly.
#[derive(Debug)]
pub struct Jitter {
    state: Mutex<JitterState>,
}

#[derive(Debug)]
enum JitterState {
    SplitMix(u64),
    Fixed(f64),
}

impl Jitter {
    /// A pseudo-random sequence (SplitMix64) starting from `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            state: Mutex::new(JitterState::SplitMix(seed)),
        }
    }

    /// Always `value` (clamped to `[0, 1)`): 0 means no jitter is taken off.
    pub fn fixed(value: f64) -> Self {
        Self {
            state: Mutex::new(JitterState::Fixed(value.clamp(0.0, 0.999_999))),
        }
    }

    /// Seeded from the wall clock and process id: differs between workers.
    pub fn from_entropy() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self::seeded(t ^ ((std::process::id() as u64) << 32))
    }

    /// The next number in `[0, 1)`.
    pub fn next_f64(&self) -> f64 {
        let mut st = self.state.lock().expect("jitter mutex poisoned");
        match &mut *st {
            JitterState::Fixed(v) => *v,
            JitterState::SplitMix(s) => {
                *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = *s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                (z >> 11) as f64 / (1u64 << 53) as f64
            }
        }
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Self::from_entropy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_is_constant() {
        let p = RetryPolicy::fixed(Duration::from_secs(3));
        assert_eq!(p.delay(1, 0.7), Duration::from_secs(3));
        assert_eq!(p.delay(9, 0.1), Duration::from_secs(3));
    }

    #[test]
    fn exponential_grows_caps_and_jitters_within_bounds() {
        let p = RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(10))
            .with_jitter(0.5);
        assert_eq!(p.delay(1, 0.0), Duration::from_secs(1));
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(10, 0.0), Duration::from_secs(10));
        let j = Jitter::seeded(7);
        for attempt in 1..20 {
            let d = p.delay(attempt, j.next_f64());
            let full = p.delay(attempt, 0.0);
            assert!(
                d <= full && d >= full / 2,
                "{d:?} outside [{:?}, {full:?}]",
                full / 2
            );
        }
    }

    #[test]
    fn seeded_jitter_repeats() {
        let a = Jitter::seeded(42);
        let b = Jitter::seeded(42);
        for _ in 0..10 {
            let x = a.next_f64();
            assert!((0.0..1.0).contains(&x));
            assert_eq!(x, b.next_f64());
        }
    }

    #[test]
    fn policy_round_trips_as_json() {
        let p = RetryPolicy::exponential(Duration::from_millis(500), Duration::from_secs(600));
        assert_eq!(RetryPolicy::from_json(&p.to_json()).unwrap(), p);
    }
}
