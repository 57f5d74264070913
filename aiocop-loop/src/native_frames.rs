//! Native frames under a CPU sample's Python frames: asked of the loop thread
//! ([`aiocop_hook::native`]) after its Python frames were read without the GIL, and kept only
//! if the Python stack did not move meanwhile, so that a sample never joins the native frames
//! of one moment with the Python frames of another.

use aiocop_events::Frame;
use aiocop_hook::native::{NativeSampler, Target};

/// The watchdog's native-frame sampler, taken once native frames are decided (when GIL-free
/// sampling turned on: `aiocop_hook::remote::settle`).
#[derive(Debug, Default)]
pub(crate) struct Natives {
    sampler: Option<NativeSampler>,
    decided: bool,
}

impl Natives {
    /// Watchdog, at each wake-up: takes the sampler once decided and warmed up (on a thread
    /// of its own: samples go without native frames until then).
    pub(crate) fn poll(&mut self) {
        if !self.decided {
            if let Some(made) = NativeSampler::ready() {
                self.sampler = made;
                self.decided = true;
            }
        }
    }

    /// The sampler, when native frames are on.
    pub(crate) fn sampler(&mut self) -> Option<&mut NativeSampler> {
        self.sampler.as_mut()
    }
}

/// The native frames `target` is running, if the Python frames read just before are still
/// the same once they were taken (`unchanged`: same slice, same stack, read again).
pub(crate) fn under(
    native: &mut NativeSampler,
    target: Target,
    unchanged: impl FnOnce() -> bool,
) -> Option<Vec<Frame>> {
    let frames = native.capture(target)?;
    keep_if(frames, unchanged)
}

/// `frames`, unless the stack moved (`unchanged` false): then none, never a torn combination.
fn keep_if(frames: Vec<Frame>, unchanged: impl FnOnce() -> bool) -> Option<Vec<Frame>> {
    if frames.is_empty() || !unchanged() {
        return None;
    }
    Some(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_combination_is_dropped() {
        let sre = || vec![Frame::native("sre_ucs1_match", "python3.11")];
        assert_eq!(keep_if(sre(), || true), Some(sre()));
        assert_eq!(keep_if(sre(), || false), None);
        assert_eq!(keep_if(Vec::new(), || true), None);
    }
}
