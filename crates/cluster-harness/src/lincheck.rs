//! Linearizability checking of key-value histories, after Wing & Gong as refined by Lowe and
//! Porcupine.
//!
//! A [`History`] is a list of [`Operation`]s, each with the instant it was invoked and the instant
//! its answer came back (nanoseconds on one monotonic clock, see [`Clock`]). An operation whose
//! answer never came (a timeout, a broken connection) has an unknown outcome: its completion is
//! "never" and its output [`Output::Unknown`], so it may have taken effect at any point after its
//! invocation or not at all — exactly Porcupine's treatment.
//!
//! The key-value model is P-compositional: every operation touches one key, so the history is
//! split per key and each part is checked on its own. Each part is searched depth first: at every
//! step, any pending operation invoked before the earliest completion among the pending ones may
//! be linearized next, if the sequential model accepts its output. A cache of (set of linearized
//! operations, model state) prunes states already explored. The search ends when every operation
//! with a known outcome is linearized (operations left over are unknown ones, placed at "never"),
//! when every choice is exhausted (a violation), or when the step budget runs out (unknown).
//!
//! Not checked: multi-key transactions (the model has single-key compare-and-set only).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Completion time of an operation whose answer never came.
pub const NEVER: u64 = u64::MAX;

/// What a client asked for. Keys and values are strings: the harness writes its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Read one key.
    Get { key: String },
    /// Write one key.
    Put { key: String, value: String },
    /// Delete one key.
    Delete { key: String },
    /// Write `new` if the key's value is `expected` (`None`: the key is absent).
    Cas {
        key: String,
        expected: Option<String>,
        new: String,
    },
}

impl Input {
    /// The one key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            Input::Get { key } | Input::Put { key, .. } | Input::Delete { key } => key,
            Input::Cas { key, .. } => key,
        }
    }

    /// Whether this operation can change the state.
    pub fn is_write(&self) -> bool {
        !matches!(self, Input::Get { .. })
    }
}

/// What the client got back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// The value read (`None`: absent).
    Get(Option<String>),
    /// The write was acknowledged at this revision.
    Put { revision: i64 },
    /// Whether a key was deleted.
    Delete { deleted: bool },
    /// Whether the compare succeeded (and the write was done).
    Cas { succeeded: bool },
    /// No answer: the operation may or may not have taken effect.
    Unknown,
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Which client issued it (clients are sequential: one operation at a time).
    pub client: usize,
    pub input: Input,
    /// Invocation instant, nanoseconds since the history's clock started.
    pub call: u64,
    /// Completion instant, or [`NEVER`].
    pub ret: u64,
    pub output: Output,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ret = if self.ret == NEVER {
            "never".to_owned()
        } else {
            self.ret.to_string()
        };
        write!(
            f,
            "client {} [{}..{}] {:?} -> {:?}",
            self.client, self.call, ret, self.input, self.output
        )
    }
}

/// A monotonic clock shared by every client of one history.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds since the clock started (never [`NEVER`]).
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(NEVER - 1)
            .min(NEVER - 1)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// A history that many clients append to concurrently.
#[derive(Clone, Debug, Default)]
pub struct History {
    ops: Arc<Mutex<Vec<Operation>>>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, op: Operation) {
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(op);
    }

    /// A copy of every operation recorded so far.
    pub fn operations(&self) -> Vec<Operation> {
        self.ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations respects real time and the sequential model.
    Linearizable,
    /// No such order exists for this key.
    Violation(Box<Violation>),
    /// The step budget ran out on this key before an answer.
    Unknown { key: String, steps: u64 },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::Violation(v) => write!(f, "not linearizable: {v}"),
            Verdict::Unknown { key, steps } => {
                write!(
                    f,
                    "undecided: key {key:?} still open after {steps} search steps"
                )
            }
        }
    }
}

/// The smallest explanation the search can give: the longest prefix it could linearize, the
/// value the key had then, and the operations of which none could come next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    /// How many operations of this key were linearized at the deepest point.
    pub linearized: usize,
    /// The last few of those, in order.
    pub last_linearized: Vec<Operation>,
    /// The key's value at that point.
    pub state: Option<String>,
    /// The operations that could have come next, none of which fits.
    pub stuck: Vec<Operation>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {:?}: after {} operations (value then {:?}) none of these can come next:",
            self.key, self.linearized, self.state
        )?;
        for op in &self.stuck {
            writeln!(f, "  {op}")?;
        }
        writeln!(f, "the last operations linearized were:")?;
        for op in &self.last_linearized {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

/// Checks a history with at most `budget` search steps per key.
pub fn check(ops: &[Operation], budget: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<Operation>> = BTreeMap::new();
    for op in ops {
        // A read without an answer constrains nothing.
        if !op.input.is_write() && op.output == Output::Unknown {
            continue;
        }
        by_key.entry(op.input.key()).or_default().push(op.clone());
    }
    for (key, part) in by_key {
        match check_key(key, part, budget) {
            Verdict::Linearizable => {}
            other => return other,
        }
    }
    Verdict::Linearizable
}

/// The sequential model of one key: the state after `op`, or `None` if `op`'s output is not
/// what the model answers.
fn step(state: &Option<String>, op: &Operation) -> Option<Option<String>> {
    let unknown = op.output == Output::Unknown;
    match (&op.input, &op.output) {
        (Input::Get { .. }, Output::Get(read)) => (read == state).then(|| state.clone()),
        (Input::Put { value, .. }, Output::Put { .. } | Output::Unknown) => {
            Some(Some(value.clone()))
        }
        (Input::Delete { .. }, Output::Delete { deleted }) => {
            (*deleted == state.is_some()).then_some(None)
        }
        (Input::Delete { .. }, Output::Unknown) => Some(None),
        (Input::Cas { expected, new, .. }, output) => {
            let succeeds = expected == state;
            let fits = unknown
                || *output
                    == Output::Cas {
                        succeeded: succeeds,
                    };
            fits.then(|| {
                if succeeds {
                    Some(new.clone())
                } else {
                    state.clone()
                }
            })
        }
        _ => None,
    }
}

/// A set of operation indices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

struct Frame {
    candidates: Vec<usize>,
    next: usize,
    /// The operation linearized to enter this frame and the state before it.
    entered_by: Option<(usize, Option<String>)>,
}

fn candidates(ops: &[Operation], done: &Bits) -> Vec<usize> {
    let pending = (0..ops.len()).filter(|&i| !done.get(i));
    let min_ret = pending.clone().map(|i| ops[i].ret).min().unwrap_or(NEVER);
    // Ops are sorted by invocation, so the candidates are a prefix of the pending ones.
    pending.take_while(|&i| ops[i].call <= min_ret).collect()
}

fn check_key(key: &str, mut ops: Vec<Operation>, budget: u64) -> Verdict {
    ops.sort_by_key(|op| (op.call, op.ret));
    let known = ops.iter().filter(|op| op.ret != NEVER).count();
    let mut done = Bits::new(ops.len());
    let mut done_known = 0;
    let mut state: Option<String> = None;
    let mut seen: HashSet<(Bits, Option<String>)> = HashSet::new();
    let mut frames = vec![Frame {
        candidates: candidates(&ops, &done),
        next: 0,
        entered_by: None,
    }];
    let mut deepest: Option<Violation> = None;
    let mut steps = 0u64;
    if done_known == known {
        return Verdict::Linearizable;
    }
    while let Some(frame) = frames.last_mut() {
        steps += 1;
        if steps > budget {
            return Verdict::Unknown {
                key: key.to_owned(),
                steps,
            };
        }
        if let Some(&i) = frame.candidates.get(frame.next) {
            frame.next += 1;
            let Some(after) = step(&state, &ops[i]) else {
                continue;
            };
            done.set(i);
            if !seen.insert((done.clone(), after.clone())) {
                done.clear(i);
                continue;
            }
            if ops[i].ret != NEVER {
                done_known += 1;
            }
            if done_known == known {
                return Verdict::Linearizable;
            }
            let before = std::mem::replace(&mut state, after);
            frames.push(Frame {
                candidates: candidates(&ops, &done),
                next: 0,
                entered_by: Some((i, before)),
            });
            continue;
        }
        // Every choice from here failed.
        let stuck_at: Vec<usize> = frame.candidates.clone();
        let depth = frames.len() - 1;
        if deepest.as_ref().is_none_or(|d| depth > d.linearized) {
            let path: Vec<usize> = frames
                .iter()
                .filter_map(|f| f.entered_by.as_ref().map(|(i, _)| *i))
                .collect();
            let stuck = stuck_at.iter().map(|&i| ops[i].clone()).collect();
            deepest = Some(Violation {
                key: key.to_owned(),
                linearized: depth,
                last_linearized: path
                    .iter()
                    .rev()
                    .take(3)
                    .rev()
                    .map(|&i| ops[i].clone())
                    .collect(),
                state: state.clone(),
                stuck,
            });
        }
        let frame = frames.pop();
        if let Some(Frame {
            entered_by: Some((i, before)),
            ..
        }) = frame
        {
            done.clear(i);
            if ops[i].ret != NEVER {
                done_known -= 1;
            }
            state = before;
        }
    }
    Verdict::Violation(Box::new(deepest.unwrap_or_else(|| Violation {
        key: key.to_owned(),
        linearized: 0,
        last_linearized: Vec::new(),
        state: None,
        stuck: Vec::new(),
    })))
}

#[cfg(test)]
mod tests;
