//! Defines every backoff wakeplane uses: the retry formula for failed runs
//! (`delay = min(initial_delay_seconds * 2^(attempt-1), max_delay_seconds)`) and the
//! waits before retrying database work, restarting an actor or taking a lock. Pure.

use std::time::Duration;

use super::schedule::{RetryPolicy, RetryStrategy};

/// How a delay grows with the number of failures so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// The same delay every time.
    Constant,
    /// `base * n`.
    Linear,
    /// `base * 2^n`.
    Doubling,
}

/// A delay schedule: `base` grown by `growth`, never above `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub growth: Growth,
    pub max: Duration,
}

impl Backoff {
    pub const fn constant(delay: Duration) -> Backoff {
        Backoff {
            base: delay,
            growth: Growth::Constant,
            max: delay,
        }
    }

    pub const fn linear(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            growth: Growth::Linear,
            max,
        }
    }

    pub const fn doubling(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            growth: Growth::Doubling,
            max,
        }
    }

    /// The delay after `n` failures (what `n` counts is the caller's: failures so far, or
    /// failures before this one). Saturates instead of overflowing.
    pub fn delay(&self, n: u32) -> Duration {
        let grown = match self.growth {
            Growth::Constant => self.base,
            Growth::Linear => self.base.saturating_mul(n),
            Growth::Doubling => {
                if self.base.is_zero() {
                    return Duration::ZERO;
                }
                // At most ~100 doublings reach `Duration::MAX`, so this loop is short.
                let mut d = self.base;
                for _ in 0..n {
                    if d >= self.max {
                        break;
                    }
                    d = d.saturating_mul(2);
                }
                d
            }
        };
        grown.min(self.max)
    }
}

/// What happens after attempt `attempt` of an occurrence failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Schedule attempt `attempt + 1` after this many seconds.
    Retry {
        next_attempt: i32,
        delay_seconds: i64,
    },
    /// No attempts left: dead-letter the run.
    DeadLetter,
}

/// Decides between a retry and a dead letter for a failed `attempt` (1-based).
pub fn after_failure(retry: &RetryPolicy, attempt: i32) -> AfterFailure {
    if retry.strategy == RetryStrategy::None || attempt >= retry.max_attempts {
        return AfterFailure::DeadLetter;
    }
    AfterFailure::Retry {
        next_attempt: attempt + 1,
        delay_seconds: delay_seconds(retry, attempt),
    }
}

/// The delay before the attempt that follows failed attempt `attempt`.
pub fn delay_seconds(retry: &RetryPolicy, attempt: i32) -> i64 {
    let seconds = |s: i32| Duration::from_secs(u64::try_from(s).unwrap_or(0));
    let backoff = Backoff::doubling(
        seconds(retry.initial_delay_seconds),
        seconds(retry.max_delay_seconds),
    );
    let failures_before = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0);
    i64::try_from(backoff.delay(failures_before).as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: i32, initial: i32, max: i32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            strategy: RetryStrategy::Exponential,
            initial_delay_seconds: initial,
            max_delay_seconds: max,
        }
    }

    #[test]
    fn delays_double_then_cap() {
        let p = policy(10, 30, 900);
        let delays: Vec<i64> = (1..=7).map(|a| delay_seconds(&p, a)).collect();
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 900, 900]);
    }

    #[test]
    fn huge_attempts_do_not_overflow() {
        let p = policy(i32::MAX, 30, 900);
        assert_eq!(delay_seconds(&p, 1000), 900);
        assert_eq!(delay_seconds(&p, i32::MAX), 900);
    }

    #[test]
    fn last_attempt_is_dead_lettered() {
        let p = policy(3, 1, 10);
        assert_eq!(
            after_failure(&p, 1),
            AfterFailure::Retry {
                next_attempt: 2,
                delay_seconds: 1
            }
        );
        assert_eq!(
            after_failure(&p, 2),
            AfterFailure::Retry {
                next_attempt: 3,
                delay_seconds: 2
            }
        );
        assert_eq!(after_failure(&p, 3), AfterFailure::DeadLetter);
    }

    #[test]
    fn doubling_linear_and_constant_grow_as_named_and_cap() {
        let ms = Duration::from_millis;
        let doubling = Backoff::doubling(ms(500), ms(30_000));
        let got: Vec<u64> = (0..9)
            .map(|n| doubling.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(
            got,
            vec![500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(doubling.delay(u32::MAX), ms(30_000));
        let linear = Backoff::linear(ms(200), ms(10_000));
        assert_eq!(linear.delay(1), ms(200));
        assert_eq!(linear.delay(3), ms(600));
        assert_eq!(linear.delay(50), ms(10_000));
        assert_eq!(linear.delay(u32::MAX), ms(10_000));
        let constant = Backoff::constant(ms(250));
        assert_eq!(constant.delay(0), ms(250));
        assert_eq!(constant.delay(7), ms(250));
        assert_eq!(
            Backoff::doubling(Duration::ZERO, ms(5)).delay(u32::MAX),
            Duration::ZERO
        );
    }

    #[test]
    fn zero_attempts_or_none_strategy_never_retry() {
        assert_eq!(after_failure(&policy(0, 1, 1), 1), AfterFailure::DeadLetter);
        let mut p = policy(5, 1, 1);
        p.strategy = RetryStrategy::None;
        assert_eq!(after_failure(&p, 1), AfterFailure::DeadLetter);
    }
}
