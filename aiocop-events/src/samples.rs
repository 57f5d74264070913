//! Aggregation of CPU stack samples.

use std::collections::HashMap;

use crate::format::{entry_point, format_trace};
use crate::frame::Frame;

/// One distinct stack sampled during a CPU-bound slice, with how often it was seen and whether
/// the thread was on CPU then (Python's `CpuStackSample`).
///
/// ```
/// use aiocop_events::CpuSample;
///
/// let sample = CpuSample { trace: "m.py:3:spin".into(), entry_point: "m.py:3:spin".into(), count: 4, on_cpu: Some(true), native_frames: vec![] };
/// assert_eq!(sample.count, 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSample {
    /// The stack, innermost first, formatted by [`format_trace`](crate::format_trace).
    pub trace: String,
    /// The innermost frame or `"unknown"`, see [`entry_point`](crate::entry_point).
    pub entry_point: String,
    /// How many samples had exactly this stack (and this `on_cpu`).
    pub count: u32,
    /// Whether the thread was on CPU (runnable, `R` in `/proc/self/task/<tid>/stat`) when
    /// these samples were taken; `None` where that is not known (off Linux).
    pub on_cpu: Option<bool>,
    /// The native frames under the Python ones (innermost first, as `function (library)`);
    /// empty when none were captured.
    pub native_frames: Vec<String>,
}

/// Aggregates sampled stacks: identical stacks (compared frame by frame, before formatting)
/// taken in the same state (`on_cpu[i]` for `stacks[i]`, `None` where `on_cpu` is shorter)
/// become one [`CpuSample`] with their count; ordered by count descending, ties in first-seen
/// order (aiocop 1.2.1's `format_cpu_samples`, which has no state: without one, all samples of
/// a stack are one entry, as there).
///
/// ```
/// use aiocop_events::{aggregate_samples, Frame};
///
/// let spin = vec![Frame::new("/app/src/m.py", 3, "spin")];
/// let hash = vec![Frame::new("/app/src/m.py", 9, "hash")];
/// let samples = aggregate_samples(&[hash.clone(), spin.clone(), spin.clone()], &[]);
/// assert_eq!(samples.len(), 2);
/// assert_eq!((samples[0].trace.as_str(), samples[0].count), ("m.py:3:spin", 2));
/// assert_eq!((samples[1].trace.as_str(), samples[1].count), ("m.py:9:hash", 1));
/// assert!(aggregate_samples(&[], &[]).is_empty());
///
/// // The same stack, once on CPU and once waiting: two entries.
/// let split = aggregate_samples(&[spin.clone(), spin], &[Some(true), Some(false)]);
/// assert_eq!(split.iter().map(|s| s.on_cpu).collect::<Vec<_>>(), [Some(true), Some(false)]);
/// ```
pub fn aggregate_samples(stacks: &[Vec<Frame>], on_cpu: &[Option<bool>]) -> Vec<CpuSample> {
    if stacks.is_empty() {
        return Vec::new(); // the usual case: an IO event in a short handle
    }
    count_samples(stacks, on_cpu)
}

#[cold]
#[inline(never)]
fn count_samples(stacks: &[Vec<Frame>], on_cpu: &[Option<bool>]) -> Vec<CpuSample> {
    type Key<'a> = (&'a [Frame], Option<bool>);
    let mut slot_of: HashMap<Key<'_>, usize> = HashMap::with_capacity(stacks.len());
    let mut counted: Vec<(Key<'_>, u32)> = Vec::new();
    for (index, stack) in stacks.iter().enumerate() {
        let key = (stack.as_slice(), on_cpu.get(index).copied().flatten());
        match slot_of.get(&key) {
            Some(&slot) => counted[slot].1 = counted[slot].1.saturating_add(1),
            None => {
                slot_of.insert(key, counted.len());
                counted.push((key, 1));
            }
        }
    }
    // Stable sort: ties keep first-seen order.
    counted.sort_by_key(|&(_, count)| std::cmp::Reverse(count));
    counted
        .into_iter()
        .map(|((frames, on_cpu), count)| CpuSample {
            trace: format_trace(frames),
            entry_point: entry_point(frames),
            count,
            on_cpu,
            native_frames: frames
                .iter()
                .filter(|frame| frame.native)
                .map(Frame::native_text)
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(names: &[&str]) -> Vec<Frame> {
        names
            .iter()
            .map(|n| Frame::new("/app/src/m.py", 1, *n))
            .collect()
    }

    /// Input stacks, and the expected `(entry point, count)` pairs in order.
    type AggregationCase = (Vec<Vec<Frame>>, Vec<(&'static str, u32)>);

    #[test]
    fn aggregation_table() {
        let cases: Vec<AggregationCase> = vec![
            (vec![], vec![]),
            (vec![stack(&["a"])], vec![("m.py:1:a", 1)]),
            (vec![stack(&["a"]), stack(&["a"])], vec![("m.py:1:a", 2)]),
            // count descending
            (
                vec![
                    stack(&["a"]),
                    stack(&["b"]),
                    stack(&["b"]),
                    stack(&["c"]),
                    stack(&["b"]),
                ],
                vec![("m.py:1:b", 3), ("m.py:1:a", 1), ("m.py:1:c", 1)],
            ),
            // ties keep first-seen order
            (
                vec![
                    stack(&["c"]),
                    stack(&["a"]),
                    stack(&["b"]),
                    stack(&["a"]),
                    stack(&["c"]),
                ],
                vec![("m.py:1:c", 2), ("m.py:1:a", 2), ("m.py:1:b", 1)],
            ),
            // empty stacks aggregate too, as "unknown"
            (
                vec![vec![], vec![], stack(&["a"])],
                vec![("unknown", 2), ("m.py:1:a", 1)],
            ),
        ];
        for (stacks, expected) in cases {
            let got: Vec<_> = aggregate_samples(&stacks, &[])
                .into_iter()
                .map(|s| (s.entry_point, s.count))
                .collect();
            let expected: Vec<_> = expected
                .into_iter()
                .map(|(e, c)| (e.to_owned(), c))
                .collect();
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn native_frames_are_listed_and_keep_the_python_entry_point() {
        let mut sre = vec![
            Frame::native("sre_ucs1_match", "libpython3.11.so.1.0"),
            Frame::native("sre_search", "libpython3.11.so.1.0"),
        ];
        sre.extend(stack(&["backtrack", "main"]));
        let python_only = stack(&["backtrack", "main"]);
        let samples = aggregate_samples(&[sre.clone(), sre, python_only], &[]);
        assert_eq!(
            samples.len(),
            2,
            "with and without native frames: two stacks"
        );
        assert_eq!(samples[0].count, 2);
        assert_eq!(samples[0].entry_point, "m.py:1:backtrack");
        assert_eq!(
            samples[0].native_frames,
            [
                "sre_ucs1_match (libpython3.11.so.1.0)",
                "sre_search (libpython3.11.so.1.0)"
            ]
        );
        assert!(samples[0].trace.starts_with("[native] sre_ucs1_match"));
        assert!(samples[1].native_frames.is_empty());
        assert_eq!(samples[1].entry_point, "m.py:1:backtrack");
    }

    #[test]
    fn whole_stacks_are_compared() {
        let outer_a = stack(&["inner", "a"]);
        let outer_b = stack(&["inner", "b"]);
        let samples = aggregate_samples(&[outer_a, outer_b.clone(), outer_b], &[]);
        let got: Vec<_> = samples
            .iter()
            .map(|s| (s.trace.as_str(), s.count))
            .collect();
        assert_eq!(
            got,
            [
                ("m.py:1:inner <- m.py:1:b", 2),
                ("m.py:1:inner <- m.py:1:a", 1)
            ]
        );
    }

    #[test]
    fn state_splits_a_stack_and_missing_states_are_unknown() {
        let spin = stack(&["spin"]);
        let samples = aggregate_samples(
            &[spin.clone(), spin.clone(), spin.clone(), spin],
            &[Some(true), Some(false), Some(true)],
        );
        let got: Vec<_> = samples.iter().map(|s| (s.on_cpu, s.count)).collect();
        assert_eq!(got, [(Some(true), 2), (Some(false), 1), (None, 1)]);
    }

    #[test]
    fn stacks_differing_only_in_line_are_distinct() {
        let one = vec![Frame::new("/app/src/m.py", 1, "f")];
        let two = vec![Frame::new("/app/src/m.py", 2, "f")];
        assert_eq!(aggregate_samples(&[one, two], &[]).len(), 2);
    }
}
