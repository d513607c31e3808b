//! Checks watch streams against the committed history.
//!
//! The committed history is the list of events the store made, in revision order (several
//! events may share a revision when a transaction wrote several keys). A watcher that started
//! at revision `start` must receive exactly the history's events from `start` on, in order,
//! each once: no gap, no duplicate, no reordering, no event that was never committed. The
//! stream is compared with the history event by event, so a reordering shows as a gap (or a
//! duplicate) at the first event that is out of place. A watcher
//! that stopped early must have received a prefix of that; [`check`] with `complete` also
//! requires it to have reached the end of the history.

use std::fmt;

/// What a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Put,
    Delete,
}

/// One watch event (or one committed change of the history).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// The revision of the change (the key's mod revision; for deletes, the delete's revision).
    pub revision: i64,
    pub key: String,
    pub kind: EventKind,
    /// The value written (`None` for deletes).
    pub value: Option<String>,
}

/// How a watch stream differs from the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchViolation {
    /// The committed history itself goes back in revision.
    HistoryOutOfOrder { position: usize, event: Event },
    /// The stream received the same event twice.
    Duplicate { position: usize, event: Event },
    /// The stream skipped the history's event(s) and received a later one.
    Gap {
        position: usize,
        missing: Event,
        received: Event,
    },
    /// The stream received an event the history does not have at that place.
    Mismatch {
        position: usize,
        expected: Option<Event>,
        received: Event,
    },
    /// The stream ended before the end of the history.
    Incomplete {
        received: usize,
        expected: usize,
        next_missing: Event,
    },
}

impl fmt::Display for WatchViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Checks one watcher's `received` events, which it asked for from revision `start`.
pub fn check(
    history: &[Event],
    start: i64,
    received: &[Event],
    complete: bool,
) -> Result<(), Box<WatchViolation>> {
    for (position, pair) in history.windows(2).enumerate() {
        if pair[1].revision < pair[0].revision {
            return Err(Box::new(WatchViolation::HistoryOutOfOrder {
                position: position + 1,
                event: pair[1].clone(),
            }));
        }
    }
    let expected: Vec<&Event> = history.iter().filter(|e| e.revision >= start).collect();
    for (position, event) in received.iter().enumerate() {
        if received[..position].contains(event) {
            return Err(Box::new(WatchViolation::Duplicate {
                position,
                event: event.clone(),
            }));
        }
        match expected.get(position) {
            Some(want) if *want == event => {}
            Some(want) if event.revision > want.revision && expected.contains(&event) => {
                return Err(Box::new(WatchViolation::Gap {
                    position,
                    missing: (*want).clone(),
                    received: event.clone(),
                }));
            }
            want => {
                return Err(Box::new(WatchViolation::Mismatch {
                    position,
                    expected: want.map(|e| (*e).clone()),
                    received: event.clone(),
                }));
            }
        }
    }
    if complete && received.len() < expected.len() {
        return Err(Box::new(WatchViolation::Incomplete {
            received: received.len(),
            expected: expected.len(),
            next_missing: expected[received.len()].clone(),
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checker, unboxed for matching.
    #[allow(clippy::result_large_err)]
    fn check(
        history: &[Event],
        start: i64,
        received: &[Event],
        complete: bool,
    ) -> Result<(), WatchViolation> {
        super::check(history, start, received, complete).map_err(|e| *e)
    }

    fn put(revision: i64, key: &str, value: &str) -> Event {
        Event {
            revision,
            key: key.into(),
            kind: EventKind::Put,
            value: Some(value.into()),
        }
    }

    fn history() -> Vec<Event> {
        vec![
            put(2, "a", "1"),
            put(3, "b", "1"),
            Event {
                revision: 4,
                key: "a".into(),
                kind: EventKind::Delete,
                value: None,
            },
            put(5, "a", "2"),
        ]
    }

    #[test]
    fn the_exact_history_from_the_start_revision_passes() {
        let h = history();
        assert_eq!(check(&h, 1, &h, true), Ok(()));
        assert_eq!(check(&h, 4, &h[2..], true), Ok(()));
        assert_eq!(
            check(&h, 3, &h[1..3], false),
            Ok(()),
            "a prefix is fine for an unfinished watcher"
        );
    }

    #[test]
    fn a_gap_is_reported_with_the_missing_event() {
        let h = history();
        let got = [h[0].clone(), h[2].clone()];
        assert_eq!(
            check(&h, 1, &got, false),
            Err(WatchViolation::Gap {
                position: 1,
                missing: h[1].clone(),
                received: h[2].clone()
            })
        );
    }

    #[test]
    fn a_duplicate_is_reported() {
        let h = history();
        let got = [h[0].clone(), h[1].clone(), h[1].clone()];
        assert!(matches!(
            check(&h, 1, &got, false),
            Err(WatchViolation::Duplicate { position: 2, .. })
        ));
    }

    #[test]
    fn reordering_is_reported_where_the_stream_first_runs_ahead() {
        let h = history();
        let got = [h[1].clone(), h[0].clone()];
        assert_eq!(
            check(&h, 1, &got, false),
            Err(WatchViolation::Gap {
                position: 0,
                missing: h[0].clone(),
                received: h[1].clone()
            })
        );
    }

    #[test]
    fn a_wrong_value_or_an_event_from_before_the_start_is_a_mismatch() {
        let h = history();
        let got = [put(2, "a", "other")];
        assert!(matches!(
            check(&h, 1, &got, false),
            Err(WatchViolation::Mismatch { .. })
        ));
        assert!(matches!(
            check(&h, 3, &h[..1], false),
            Err(WatchViolation::Mismatch { .. })
        ));
    }

    #[test]
    fn a_stream_that_stops_early_is_incomplete_only_when_completion_is_required() {
        let h = history();
        assert_eq!(check(&h, 1, &h[..2], false), Ok(()));
        assert!(matches!(
            check(&h, 1, &h[..2], true),
            Err(WatchViolation::Incomplete {
                received: 2,
                expected: 4,
                ..
            })
        ));
    }
}
