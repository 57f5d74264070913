//! Shown arguments are redacted by default; the process-wide switch shows them as they are
//! (only cut) while it is off. One test: the switch is shared by the whole test binary.

use aiocop_events::{format_event, redact, redaction_enabled, set_redaction, RawArgs};

#[test]
fn the_switch_turns_redaction_off_and_on_again() {
    let args = RawArgs::Call(vec![
        "https://user:hunter2@api.example.com/v1?api_key=abc123&page=2".into(),
        "None".into(),
        "{'Authorization': 'Bearer xyz'}".into(),
        "GET".into(),
    ]);
    let redacted = "urllib.Request(https://user:***@api.example.com/v1?api_key=***&page=2, None, \
                    {'Authorization': '***'}, GET)";
    let raw = "urllib.Request(https://user:hunter2@api.example.com/v1?api_key=abc123&page=2, \
               None, {'Authorization': 'Bearer xyz'}, GET)";

    assert!(redaction_enabled());
    assert_eq!(format_event("urllib.Request", &args), redacted);

    set_redaction(false);
    assert!(!redaction_enabled());
    assert_eq!(format_event("urllib.Request", &args), raw);
    // The function itself always redacts; the switch is about what events show.
    assert_eq!(redact("--token=abc"), "--token=***");

    set_redaction(true);
    assert!(redaction_enabled());
    assert_eq!(format_event("urllib.Request", &args), redacted);
}
