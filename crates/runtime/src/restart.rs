//! Restart policies (`--restart`), decided as a pure function of the policy, the container's
//! exit and its restart history, so the supervisor's loop only sleeps and re-creates.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::driver::ExitStatus;

/// The first delay before a restart; it doubles with every restart, as docker's does.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest delay between restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A container that ran this long before exiting starts over at [`INITIAL_BACKOFF`].
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// When a container is restarted after its command exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Never (`no`).
    #[default]
    No,
    /// After a non-zero exit, at most `max_retries` times if given (`on-failure[:N]`).
    OnFailure { max_retries: Option<u32> },
    /// After every exit, unless stopped by the user; started again when berth starts
    /// (`always`).
    Always,
    /// As `always`, except a container the user stopped stays stopped when berth starts
    /// (`unless-stopped`).
    UnlessStopped,
}

/// Why a string is not a [`RestartPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestartPolicyError {
    #[error(
        "invalid restart policy {0:?}: expected no, on-failure[:MAX_RETRIES], always or unless-stopped"
    )]
    Unknown(String),
    #[error("invalid restart policy {0:?}: MAX_RETRIES must be a positive integer")]
    MaxRetries(String),
}

impl FromStr for RestartPolicy {
    type Err = RestartPolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None => match s {
                "no" => Ok(Self::No),
                "on-failure" => Ok(Self::OnFailure { max_retries: None }),
                "always" => Ok(Self::Always),
                "unless-stopped" => Ok(Self::UnlessStopped),
                _ => Err(RestartPolicyError::Unknown(s.to_owned())),
            },
            Some(("on-failure", count)) => match count.parse::<u32>() {
                Ok(n) if n > 0 => Ok(Self::OnFailure {
                    max_retries: Some(n),
                }),
                _ => Err(RestartPolicyError::MaxRetries(s.to_owned())),
            },
            Some(_) => Err(RestartPolicyError::Unknown(s.to_owned())),
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::No => f.write_str("no"),
            Self::OnFailure { max_retries: None } => f.write_str("on-failure"),
            Self::OnFailure {
                max_retries: Some(n),
            } => write!(f, "on-failure:{n}"),
            Self::Always => f.write_str("always"),
            Self::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

impl RestartPolicy {
    /// Whether berth starts this container when it (re)starts, given whether the user had
    /// stopped it.
    pub fn start_when_berth_starts(self, stopped_by_user: bool) -> bool {
        match self {
            Self::Always => true,
            Self::UnlessStopped => !stopped_by_user,
            Self::No | Self::OnFailure { .. } => false,
        }
    }
}

/// How a run of the container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitEvent {
    pub exit: ExitStatus,
    /// The user stopped or killed it (`berth stop`, `kill`, `rm -f`).
    pub stopped_by_user: bool,
    /// How long this run lasted.
    pub ran_for: Duration,
}

/// What to do after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Start the container again after this delay.
    Restart { after: Duration },
    /// Leave it exited.
    Stop,
}

/// A container's restart history: how often it was restarted and the next backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartTracker {
    restart_count: u32,
    next_delay: Duration,
}

impl Default for RestartTracker {
    fn default() -> Self {
        Self {
            restart_count: 0,
            next_delay: INITIAL_BACKOFF,
        }
    }
}

impl RestartTracker {
    /// Restarts so far (docker's `RestartCount`).
    pub fn restart_count(&self) -> u32 {
        self.restart_count
    }

    /// Decides what follows `event` under `policy`, counting the restart if there is one.
    pub fn on_exit(&mut self, policy: RestartPolicy, event: ExitEvent) -> RestartDecision {
        let restart = !event.stopped_by_user
            && match policy {
                RestartPolicy::No => false,
                RestartPolicy::OnFailure { max_retries } => {
                    event.exit.code != 0 && max_retries.is_none_or(|max| self.restart_count < max)
                }
                RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            };
        if !restart {
            return RestartDecision::Stop;
        }
        if event.ran_for >= BACKOFF_RESET_AFTER {
            self.next_delay = INITIAL_BACKOFF;
        }
        let after = self.next_delay;
        self.next_delay = (self.next_delay * 2).min(MAX_BACKOFF);
        self.restart_count = self.restart_count.saturating_add(1);
        RestartDecision::Restart { after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitEvent {
        ExitEvent {
            exit: ExitStatus {
                code,
                oom_killed: false,
            },
            stopped_by_user: false,
            ran_for: Duration::from_millis(5),
        }
    }

    #[test]
    fn policies_parse_like_docker_flags() {
        for (text, policy) in [
            ("no", RestartPolicy::No),
            ("on-failure", RestartPolicy::OnFailure { max_retries: None }),
            (
                "on-failure:3",
                RestartPolicy::OnFailure {
                    max_retries: Some(3),
                },
            ),
            ("always", RestartPolicy::Always),
            ("unless-stopped", RestartPolicy::UnlessStopped),
        ] {
            assert_eq!(text.parse(), Ok(policy));
            assert_eq!(policy.to_string(), text);
        }
        for bad in [
            "",
            "sometimes",
            "always:3",
            "on-failure:0",
            "on-failure:-1",
            "on-failure:",
        ] {
            assert!(bad.parse::<RestartPolicy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn on_failure_3_restarts_a_failing_command_exactly_3_times() {
        let policy: RestartPolicy = "on-failure:3".parse().unwrap();
        let mut tracker = RestartTracker::default();
        let decisions: Vec<_> = (0..5).map(|_| tracker.on_exit(policy, exit(1))).collect();
        let restarts = decisions
            .iter()
            .filter(|d| matches!(d, RestartDecision::Restart { .. }))
            .count();
        assert_eq!(restarts, 3);
        assert_eq!(decisions[3], RestartDecision::Stop);
        assert_eq!(tracker.restart_count(), 3);
    }

    #[test]
    fn on_failure_leaves_a_successful_exit_alone() {
        let mut tracker = RestartTracker::default();
        let policy = RestartPolicy::OnFailure { max_retries: None };
        assert_eq!(tracker.on_exit(policy, exit(0)), RestartDecision::Stop);
        assert_eq!(tracker.restart_count(), 0);
    }

    #[test]
    fn always_restarts_every_exit_but_not_a_user_stop() {
        let mut tracker = RestartTracker::default();
        assert!(matches!(
            tracker.on_exit(RestartPolicy::Always, exit(0)),
            RestartDecision::Restart { .. }
        ));
        let stopped = ExitEvent {
            stopped_by_user: true,
            ..exit(143)
        };
        for policy in [RestartPolicy::Always, RestartPolicy::UnlessStopped] {
            assert_eq!(tracker.on_exit(policy, stopped), RestartDecision::Stop);
        }
        assert_eq!(
            tracker.on_exit(RestartPolicy::No, exit(1)),
            RestartDecision::Stop
        );
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_resets_after_a_long_run() {
        let mut tracker = RestartTracker::default();
        let delays: Vec<Duration> = (0..12)
            .map(|_| match tracker.on_exit(RestartPolicy::Always, exit(1)) {
                RestartDecision::Restart { after } => after,
                RestartDecision::Stop => Duration::ZERO,
            })
            .collect();
        assert_eq!(delays[0], INITIAL_BACKOFF);
        assert_eq!(delays[1], INITIAL_BACKOFF * 2);
        assert_eq!(delays[3], INITIAL_BACKOFF * 8);
        assert_eq!(delays[11], MAX_BACKOFF);
        let long_run = ExitEvent {
            ran_for: BACKOFF_RESET_AFTER,
            ..exit(1)
        };
        assert_eq!(
            tracker.on_exit(RestartPolicy::Always, long_run),
            RestartDecision::Restart {
                after: INITIAL_BACKOFF
            }
        );
        assert_eq!(tracker.restart_count(), 13);
    }

    #[test]
    fn only_always_and_unless_stopped_start_with_berth() {
        assert!(RestartPolicy::Always.start_when_berth_starts(true));
        assert!(RestartPolicy::UnlessStopped.start_when_berth_starts(false));
        assert!(!RestartPolicy::UnlessStopped.start_when_berth_starts(true));
        assert!(!RestartPolicy::OnFailure { max_retries: None }.start_when_berth_starts(false));
        assert!(!RestartPolicy::No.start_when_berth_starts(false));
    }
}
