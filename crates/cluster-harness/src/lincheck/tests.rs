use super::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BUDGET: u64 = 1_000_000;

fn op(client: usize, input: Input, call: u64, ret: u64, output: Output) -> Operation {
    Operation {
        client,
        input,
        call,
        ret,
        output,
    }
}

fn get(key: &str) -> Input {
    Input::Get {
        key: key.to_owned(),
    }
}

fn put(key: &str, value: &str) -> Input {
    Input::Put {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

fn read(value: Option<&str>) -> Output {
    Output::Get(value.map(str::to_owned))
}

const ACK: Output = Output::Put { revision: 0 };

fn is_violation(v: &Verdict) -> bool {
    matches!(v, Verdict::Violation(_))
}

#[test]
fn an_empty_history_is_linearizable() {
    assert_eq!(check(&[], BUDGET), Verdict::Linearizable);
}

#[test]
fn concurrent_puts_may_be_seen_in_either_order() {
    let h = [
        op(0, put("k", "a"), 0, 10, ACK),
        op(1, put("k", "b"), 1, 9, ACK),
        op(2, get("k"), 11, 12, read(Some("a"))),
    ];
    assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    let h2 = [
        h[0].clone(),
        h[1].clone(),
        op(2, get("k"), 11, 12, read(Some("b"))),
    ];
    assert_eq!(check(&h2, BUDGET), Verdict::Linearizable);
}

#[test]
fn a_read_after_an_acknowledged_write_must_see_it() {
    let h = [
        op(0, put("k", "a"), 0, 10, ACK),
        op(1, get("k"), 11, 12, read(None)),
    ];
    let v = check(&h, BUDGET);
    let Verdict::Violation(violation) = v else {
        panic!("not detected: {v:?}")
    };
    assert_eq!(violation.key, "k");
    assert_eq!(violation.stuck.len(), 1, "{violation}");
}

#[test]
fn a_read_cannot_see_a_write_invoked_after_it_returned() {
    let h = [
        op(1, get("k"), 0, 5, read(Some("a"))),
        op(0, put("k", "a"), 6, 10, ACK),
    ];
    assert!(is_violation(&check(&h, BUDGET)));
}

#[test]
fn reads_may_not_go_back_from_new_to_old() {
    // The write is in flight during both reads, but once one read saw "b", a later read
    // cannot see "a" again.
    let h = [
        op(0, put("k", "a"), 0, 1, ACK),
        op(0, put("k", "b"), 2, 100, ACK),
        op(1, get("k"), 3, 4, read(Some("b"))),
        op(2, get("k"), 5, 6, read(Some("a"))),
    ];
    assert!(is_violation(&check(&h, BUDGET)));
    let ok = [
        h[0].clone(),
        h[1].clone(),
        op(1, get("k"), 3, 4, read(Some("a"))),
        op(2, get("k"), 5, 6, read(Some("b"))),
    ];
    assert_eq!(check(&ok, BUDGET), Verdict::Linearizable);
}

#[test]
fn a_write_with_unknown_outcome_may_or_may_not_take_effect() {
    let lost = op(0, put("k", "a"), 0, NEVER, Output::Unknown);
    let seen = [lost.clone(), op(1, get("k"), 50, 60, read(Some("a")))];
    assert_eq!(check(&seen, BUDGET), Verdict::Linearizable);
    let unseen = [lost.clone(), op(1, get("k"), 50, 60, read(None))];
    assert_eq!(check(&unseen, BUDGET), Verdict::Linearizable);
    // But not before it was invoked.
    let early = [
        op(1, get("k"), 0, 1, read(Some("a"))),
        op(0, put("k", "a"), 2, NEVER, Output::Unknown),
    ];
    assert!(is_violation(&check(&early, BUDGET)));
}

#[test]
fn two_compare_and_sets_from_absent_cannot_both_win() {
    let cas = |new: &str| Input::Cas {
        key: "k".into(),
        expected: None,
        new: new.into(),
    };
    let won = Output::Cas { succeeded: true };
    let h = [
        op(0, cas("a"), 0, 10, won.clone()),
        op(1, cas("b"), 0, 10, won.clone()),
    ];
    assert!(is_violation(&check(&h, BUDGET)));
    let one_lost = [
        op(0, cas("a"), 0, 10, won),
        op(1, cas("b"), 0, 10, Output::Cas { succeeded: false }),
    ];
    assert_eq!(check(&one_lost, BUDGET), Verdict::Linearizable);
}

#[test]
fn delete_reports_whether_the_key_existed() {
    let del = Input::Delete { key: "k".into() };
    let h = [
        op(0, put("k", "a"), 0, 1, ACK),
        op(0, del.clone(), 2, 3, Output::Delete { deleted: false }),
    ];
    assert!(is_violation(&check(&h, BUDGET)));
    let ok = [
        op(0, put("k", "a"), 0, 1, ACK),
        op(0, del, 2, 3, Output::Delete { deleted: true }),
        op(1, get("k"), 4, 5, read(None)),
    ];
    assert_eq!(check(&ok, BUDGET), Verdict::Linearizable);
}

#[test]
fn keys_are_checked_independently() {
    let h = [
        op(0, put("x", "1"), 0, 10, ACK),
        op(1, put("y", "2"), 0, 10, ACK),
        op(2, get("y"), 11, 12, read(Some("2"))),
        op(2, get("x"), 13, 14, read(None)),
    ];
    let Verdict::Violation(v) = check(&h, BUDGET) else {
        panic!("not detected")
    };
    assert_eq!(v.key, "x");
}

#[test]
fn the_search_stops_at_its_budget() {
    let h: Vec<Operation> = (0..40)
        .map(|i| op(i, put("k", &i.to_string()), 0, 1000, ACK))
        .collect();
    let mut with_read = h.clone();
    with_read.push(op(99, get("k"), 2000, 2001, read(Some("nothing"))));
    assert!(matches!(check(&with_read, 10), Verdict::Unknown { .. }));
}

#[test]
fn a_long_history_needs_about_one_step_per_operation() {
    // Thousands of overlapping operations on 3 keys: the greedy first choice is almost always
    // right, so the search stays linear in practice, far inside the scenarios' budget.
    let h = sequential_history(7, 3000);
    assert_eq!(check(&h, 3 * 3000 * 4), Verdict::Linearizable);
}

/// Runs random operations on a sequential map at instants 10, 20, 30, … and gives each an
/// interval around its instant; a few writes lose their answer, a few never take effect.
fn sequential_history(seed: u64, count: usize) -> Vec<Operation> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut state: BTreeMap<String, String> = BTreeMap::new();
    let mut ops = Vec::new();
    for i in 0..count {
        let at = 10 * (i as u64 + 1);
        let key = format!("k{}", rng.random_range(0..3));
        let value = format!("v{i}");
        let current = state.get(&key).cloned();
        let (input, output) = match rng.random_range(0..10) {
            0..4 => (
                Input::Get { key: key.clone() },
                Output::Get(current.clone()),
            ),
            4..7 => {
                state.insert(key.clone(), value.clone());
                (
                    Input::Put {
                        key: key.clone(),
                        value,
                    },
                    ACK,
                )
            }
            7 => {
                state.remove(&key);
                (
                    Input::Delete { key: key.clone() },
                    Output::Delete {
                        deleted: current.is_some(),
                    },
                )
            }
            _ => {
                let expected = if rng.random_bool(0.5) {
                    current.clone()
                } else {
                    Some("other".into())
                };
                let succeeded = expected == current;
                if succeeded {
                    state.insert(key.clone(), value.clone());
                }
                (
                    Input::Cas {
                        key: key.clone(),
                        expected,
                        new: value,
                    },
                    Output::Cas { succeeded },
                )
            }
        };
        let call = at - rng.random_range(0..40).min(at);
        let mut ret = at + rng.random_range(0..40);
        let mut output = output;
        if input.is_write() && rng.random_bool(0.05) {
            (ret, output) = (NEVER, Output::Unknown);
        }
        ops.push(op(i % 4, input, call, ret, output));
        if rng.random_bool(0.03) {
            // A write that failed without taking effect.
            ops.push(op(
                9,
                put(&format!("k{}", rng.random_range(0..3)), &format!("lost{i}")),
                call,
                NEVER,
                Output::Unknown,
            ));
        }
    }
    ops
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn histories_of_a_sequential_execution_are_linearizable(seed in any::<u64>(), count in 1usize..120) {
        let h = sequential_history(seed, count);
        prop_assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_is_detected(seed in any::<u64>(), count in 20usize..120) {
        let mut h = sequential_history(seed, count);
        // A read that returns a put's value after another write to that key completed: put
        // values are unique, so no order can explain it.
        let stale = h.iter().enumerate().find_map(|(r, read_op)| {
            let Input::Get { key } = &read_op.input else { return None };
            h.iter().enumerate().find_map(|(p, put_op)| {
                let Input::Put { key: k, value } = &put_op.input else { return None };
                let overwritten = h.iter().enumerate().any(|(w, w_op)| {
                    w != p && w_op.input.is_write() && w_op.input.key() == key
                        && w_op.output != Output::Unknown && w_op.call > put_op.ret
                        && w_op.ret < read_op.call && changes(w_op)
                });
                (k == key && put_op.ret != NEVER && overwritten).then(|| (r, value.clone()))
            })
        });
        prop_assume!(stale.is_some());
        let Some((r, value)) = stale else { return Ok(()) };
        h[r].output = Output::Get(Some(value));
        prop_assert!(is_violation(&check(&h, BUDGET)), "stale read not detected");
    }
}

/// Whether a completed write certainly replaced the key's value.
fn changes(op: &Operation) -> bool {
    match (&op.input, &op.output) {
        (Input::Put { .. }, _) => true,
        (Input::Delete { .. }, Output::Delete { deleted }) => *deleted,
        (Input::Cas { .. }, Output::Cas { succeeded }) => *succeeded,
        _ => false,
    }
}
