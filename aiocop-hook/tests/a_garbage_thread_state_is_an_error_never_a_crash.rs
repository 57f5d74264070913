//! The GIL-free reader given addresses that are not a thread state — unmapped ones, and memory
//! full of words that point back into itself, at random — answers with an error (or an empty
//! stack), never a fault and never a panic: every read is a copy that fails instead of
//! faulting, and every value is checked before use.

use aiocop_hook::remote::Reader;
use aiocop_hook::{CurrentPython, PythonVersion};

/// Words of the fake memory.
const WORDS: usize = 1 << 14;

/// xorshift64*: a fixed, seeded sequence.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn a_garbage_thread_state_is_an_error_never_a_crash() {
    let layout = CurrentPython::REMOTE_LAYOUT.expect("this version has a layout");
    let mut reader = Reader::new(layout);
    for addr in [1usize, 8, 4096, usize::MAX - 7, usize::MAX / 2] {
        assert!(reader.sample(addr, 20).is_err(), "{addr:#x}");
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut memory = vec![0usize; WORDS];
    let base = memory.as_ptr() as usize;
    let (mut errors, mut empty) = (0u32, 0u32);
    for _round in 0..200 {
        for word in memory.iter_mut() {
            let r = next(&mut seed);
            *word = match r % 4 {
                0 => base + (r as usize >> 8) % (WORDS * 8),
                1 => 0,
                2 => r as usize,
                _ => (r >> 40) as usize,
            };
        }
        for _ in 0..20 {
            let at = base + (next(&mut seed) as usize % WORDS) * 8;
            match reader.sample(at, 20) {
                Err(_) => errors += 1,
                Ok(frames) if frames.is_empty() => empty += 1,
                Ok(frames) => panic!("a stack read from garbage: {frames:?}"),
            }
        }
    }
    assert!(errors > 1000, "{errors} errors, {empty} empty stacks");
}
