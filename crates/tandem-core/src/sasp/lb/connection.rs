//! Around the sessions: the reconnection backoff and the GWM state `sasp report` shows.

use serde::Serialize;
use std::time::Duration;

/// The state of one GWM as `sasp report` shows it (the shell's view: connection, backoff,
/// grace after contact loss, lost after grace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GwmState {
    /// Opening the TCP (or TLS) connection.
    Connecting,
    /// Connected; Set LB State or a Registration not yet answered.
    Registering,
    /// Registered; weights flow.
    Connected,
    /// Waiting before the next connection attempt, never connected yet or grace over.
    Backoff,
    /// Contact lost less than `grace` ago: the last weights still steer.
    Grace,
    /// Contact lost longer than `grace` ago: the GWM's weights are no longer used.
    Lost,
}

impl GwmState {
    /// Whether the GWM's last weights are to be used in this state.
    pub fn steers(self) -> bool {
        matches!(self, GwmState::Connected | GwmState::Grace)
    }
}

/// Reconnection delays: exponential from 1 s to 30 s, each with ±25 % jitter from a
/// seeded generator (deterministic for a given seed).
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    rng: u64,
}

/// First reconnection delay.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest reconnection delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl Backoff {
    pub fn new(seed: u64) -> Backoff {
        Backoff {
            attempt: 0,
            rng: seed,
        }
    }

    /// After a successful registration: the next delay starts from 1 s again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let base = BACKOFF_MIN.as_secs_f64() * f64::from(1u32 << self.attempt.min(5));
        let base = base.min(BACKOFF_MAX.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        let d = base * (0.75 + 0.5 * unit);
        Duration::from_secs_f64(d.clamp(BACKOFF_MIN.as_secs_f64(), BACKOFF_MAX.as_secs_f64()))
    }
}
