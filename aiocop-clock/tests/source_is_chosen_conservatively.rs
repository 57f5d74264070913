//! The TSC is read only where the kernel keeps time with it and the CPU says it is invariant,
//! and never when the environment asks for `CLOCK_MONOTONIC`.

use aiocop_clock::Source;

#[test]
fn the_tsc_needs_the_kernel_and_the_cpu() {
    assert_eq!(Source::choose(None, Some("tsc\n"), true), Source::Tsc);
    assert_eq!(
        Source::choose(None, Some("kvm-clock\n"), true),
        Source::Monotonic
    );
    assert_eq!(Source::choose(None, Some("hpet"), true), Source::Monotonic);
    assert_eq!(Source::choose(None, None, true), Source::Monotonic);
    assert_eq!(Source::choose(None, Some("tsc"), false), Source::Monotonic);
}

#[test]
fn the_environment_can_ask_for_monotonic() {
    assert_eq!(
        Source::choose(Some("monotonic"), Some("tsc"), true),
        Source::Monotonic
    );
    assert_eq!(
        Source::choose(Some(" MONOTONIC "), Some("tsc"), true),
        Source::Monotonic
    );
    // Anything else leaves the choice to the machine.
    assert_eq!(Source::choose(Some("tsc"), Some("tsc"), true), Source::Tsc);
    assert_eq!(Source::choose(Some(""), Some("tsc"), true), Source::Tsc);
    assert_eq!(
        Source::choose(Some("tsc"), Some("hpet"), true),
        Source::Monotonic
    );
}

#[test]
fn names() {
    assert_eq!(Source::Tsc.as_str(), "tsc");
    assert_eq!(Source::Monotonic.as_str(), "monotonic");
}
