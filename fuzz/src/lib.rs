//! Fuzz targets of aiocop's pure text handling: the event formatter, the argument redactor
//! and the allow-rule parser (spec strings, the `AIOCOP_ALLOW` list, the fields of a
//! `pyproject.toml` table).
//!
//! Each target is a function of the fuzzer's bytes that panics when a property fails; the
//! libFuzzer entry points in `fuzz_targets/` (for `cargo +nightly fuzz run <target>`) and the
//! stable smoke driver ([`smoke`], `cargo xtask fuzz --smoke`) call the same functions. Text is
//! the bytes read as UTF-8 (invalid sequences replaced); some targets take their first byte as
//! a control byte (which fields, which form).
#![forbid(unsafe_code)]

pub mod smoke;

use std::borrow::Cow;

use aiocop_events::rules::{
    parse_rule_list, AllowRule, Candidate, FrameFacts, FrameScope, Glob, RuleError,
};
use aiocop_events::{
    format_args, format_event, redact, set_redaction, Origin, RawArgs, MAX_ARG_CHARS,
};

/// How many characters of an argument redaction reads (documented in `format_args`).
const REDACT_WINDOW_CHARS: usize = 4 * MAX_ARG_CHARS;

/// Bytes without which [`redact`] must return its input borrowed: `@ = ' "` and ASCII
/// whitespace (documented in `redact`'s fast path).
const TRIGGERS: &[u8] = b"@='\" \t\n\r\x0c";

/// A fuzz target: its name (also its corpus directory's) and its function.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name, as in `fuzz_targets/<name>.rs` and `corpus/<name>/`.
    pub name: &'static str,
    /// Runs one input; panics when a property fails.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: [Target; 5] = [
    Target {
        name: "format_event",
        run: format_event_input,
    },
    Target {
        name: "redact",
        run: redact_input,
    },
    Target {
        name: "rule_spec",
        run: rule_spec_input,
    },
    Target {
        name: "rule_list",
        run: rule_list_input,
    },
    Target {
        name: "rule_fields",
        run: rule_fields_input,
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().copied().find(|target| target.name == name)
}

/// `text` cut to its first `chars` characters.
fn cut(text: &str, chars: usize) -> &str {
    text.char_indices()
        .nth(chars)
        .map_or(text, |(at, _)| &text[..at])
}

fn split_control(data: &[u8]) -> (u8, &[u8]) {
    data.split_first()
        .map_or((0, &[][..]), |(control, rest)| (*control, rest))
}

/// Turns redaction off until dropped (also when a property fails).
struct RedactionOff;

impl RedactionOff {
    fn new() -> Self {
        set_redaction(false);
        RedactionOff
    }
}

impl Drop for RedactionOff {
    fn drop(&mut self) {
        set_redaction(true);
    }
}

const EVENT_NAMES: [&str; 4] = ["open", "socket.getaddrinfo", "subprocess.Popen", ""];

/// A secret made of the input's last bytes: uppercase letters and digits, ending with a digit
/// (so never an auth scheme's name), 6 to 9 characters. The forms it is planted in are
/// lowercase around it, so it can only show where it was planted.
fn secret(control: u8, body: &[u8]) -> String {
    const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let len = 6 + usize::from(control >> 6);
    let mut secret: String = (0..len - 1)
        .map(|i| {
            let byte = body.iter().rev().nth(i).copied().unwrap_or(0);
            char::from(ALPHABET[(usize::from(byte) + 7 * i) % ALPHABET.len()])
        })
        .collect();
    secret.push(char::from(b'0' + (len % 10) as u8));
    secret
}

/// The forms a secret is planted in; each must be masked whatever text comes right before and
/// after it (`key=value` needs its key to start a word: a space before it).
fn planted(form: u8, secret: &str) -> String {
    match form & 3 {
        0 => format!(" password={secret}"),
        1 => format!("https://u:{secret}@h"),
        2 => format!("{{'api_key': '{secret}'}}"),
        _ => format!("Authorization: Bearer {secret}"),
    }
}

/// The event formatter: [`format_event`] / [`format_args`] on the input's text split into
/// arguments at NUL characters.
///
/// Control byte: bits 0-1 the event name, bit 2 `RawArgs::Call` (else `Values`), bit 3 plant
/// a secret in the last argument (in place of its first U+0001, else at its end), bits 4-5 the
/// secret's form (` password=S`, `https://u:S@h`, `{'api_key': 'S'}`, `Authorization: Bearer
/// S`), bits 6-7 its length.
///
/// Properties: no panic; the event reads `name(` + the arguments + `)`, the arguments each
/// shown as [`format_args`] shows it alone, joined by `", "`; each shown argument has at most
/// 100 characters and is the argument redacted, then cut (of a longer argument redaction reads
/// the first 400 characters: one with none of the bytes it looks for there is only cut); a
/// planted secret never shows; without redaction each argument is only cut.
pub fn format_event_input(data: &[u8]) {
    let (control, body) = split_control(data);
    let text = String::from_utf8_lossy(body);
    let name = EVENT_NAMES[usize::from(control & 3)];
    let mut values: Vec<String> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\0').map(str::to_owned).collect()
    };
    let secret = secret(control, body);
    // The secret's check is void if the fuzzed text has it already.
    let planted_secret = control & 8 != 0 && !text.contains(&secret);
    if planted_secret {
        let plant = planted(control >> 4, &secret);
        let last = values.pop().unwrap_or_default();
        values.push(match last.split_once('\u{1}') {
            Some((before, after)) => format!("{before}{plant}{after}"),
            None => format!("{last}{plant}"),
        });
    }
    let args = if control & 4 == 0 {
        RawArgs::Values(values.clone())
    } else {
        RawArgs::Call(values.clone())
    };

    let event = format_event(name, &args);
    let inner = event
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('('))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{event:?} does not read {name:?}(...)"));
    assert_eq!(inner, format_args(&args), "the event's arguments");
    let shown: Vec<String> = values
        .iter()
        .map(|value| format_args(&RawArgs::Values(vec![value.clone()])))
        .collect();
    assert_eq!(inner, shown.join(", "), "arguments shown one by one");
    for (value, shown) in values.iter().zip(&shown) {
        let chars = shown.chars().count();
        assert!(
            chars <= MAX_ARG_CHARS,
            "{chars} characters shown: {shown:?}"
        );
        if value.chars().count() <= REDACT_WINDOW_CHARS {
            assert_eq!(*shown, cut(&redact(value), MAX_ARG_CHARS), "{value:?}");
        } else {
            let window = cut(value, REDACT_WINDOW_CHARS);
            if !window.bytes().any(|b| b == b':' || TRIGGERS.contains(&b)) {
                assert_eq!(*shown, cut(value, MAX_ARG_CHARS), "{value:?}");
            }
        }
    }
    if planted_secret {
        assert!(
            !event.contains(&secret),
            "the secret {secret:?} shows in {event:?}"
        );
    }
    assert_eq!(
        format_event(name, &RawArgs::Unformattable),
        format!("{name}(error_formatting_args)")
    );
    assert_eq!(format_event(name, &RawArgs::Deferred), format!("{name}()"));

    let _off = RedactionOff::new();
    let raw: Vec<&str> = values
        .iter()
        .map(|value| cut(value, MAX_ARG_CHARS))
        .collect();
    assert_eq!(
        format_event(name, &args),
        format!("{name}({})", raw.join(", ")),
        "without redaction"
    );
}

/// The argument redactor: [`redact`] on the input's text.
///
/// Properties: no panic (every mask at character boundaries); a text without `@ = ' "` or
/// whitespace comes back borrowed, and anything that comes back borrowed is the text itself; a
/// text without `*` comes back as itself with some non-empty parts, in order, each replaced by
/// `***`, and redacting that again at most grows its masks (nothing apart from them is masked
/// on a second pass).
pub fn redact_input(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let once = redact(&text);
    if let Cow::Borrowed(same) = once {
        assert!(
            std::ptr::eq(same, &*text),
            "borrowed, but not the text itself"
        );
    }
    if !text.bytes().any(|b| TRIGGERS.contains(&b)) {
        assert!(matches!(once, Cow::Borrowed(_)), "{text:?} was copied");
    }
    if !text.contains('*') {
        assert!(
            only_masked(&text, &once),
            "{once:?} is not {text:?} with parts masked"
        );
        let twice = redact(&once);
        assert!(
            extends_masks(&once, &twice),
            "redacting {text:?} again: {once:?} became {twice:?}"
        );
    }
}

/// Whether `redacted` is `text` with some non-empty parts replaced by `***`, none touching
/// (`text` has no `*`).
fn only_masked(text: &str, redacted: &str) -> bool {
    let mut pieces = redacted.split("***");
    let Some(first) = pieces.next() else {
        return false;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    for (i, piece) in pieces.iter().enumerate() {
        // A mask stands for at least one character; the last piece ends the text.
        let Some(skipped) = rest.chars().next() else {
            return false;
        };
        rest = &rest[skipped.len_utf8()..];
        if i + 1 == pieces.len() {
            return rest.ends_with(piece);
        }
        let Some(at) = rest.find(piece) else {
            return false;
        };
        rest = &rest[at + piece.len()..];
    }
    rest.is_empty()
}

/// Whether `twice` is `once` with at most its masks grown (`once` has no `*` but its masks'):
/// a second pass may mask more next to a mask, when the first one's mask took a value's end
/// with it (`token=://:;@` reads `token=***@`, whose value is then `***@`), but never text
/// apart from the masks.
fn extends_masks(once: &str, twice: &str) -> bool {
    let kept: Vec<&str> = once.split("***").collect();
    if kept.len() == 1 {
        return twice == once;
    }
    let last = kept.len() - 1;
    let mut next = 0;
    for piece in twice.split("***").map(|piece| piece.trim_matches('*')) {
        if piece.is_empty() {
            continue;
        }
        // The first part of `once` this piece is kept from (the parts in between are masked).
        loop {
            let Some(part) = kept.get(next) else {
                return false;
            };
            let at = next;
            next += 1;
            let fits = if at == 0 {
                part.starts_with(piece)
            } else if at == last {
                part.ends_with(piece)
            } else {
                part.contains(piece)
            };
            if fits {
                break;
            }
        }
    }
    true
}

/// The allow-rule parser, spec form: [`AllowRule::parse`] on the input's text.
///
/// Properties: no panic; a rule's canonical spec parses to an equal rule, and the rule allows a
/// call made of its own fields (globs with `*` and `?` filled in); an error names the spec
/// and reads "malformed allow rule".
pub fn rule_spec_input(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match AllowRule::parse(&text) {
        Ok(rule) => check_rule(&rule),
        Err(err) => check_error(&err, &text),
    }
}

/// The allow-rule parser, `AIOCOP_ALLOW` form: [`parse_rule_list`] on the input's text.
///
/// Properties: no panic; the rules are those of the non-empty specs between `;` and newlines,
/// in order, each as [`AllowRule::parse`] makes it (and as [`rule_spec_input`] checks it); their
/// canonical specs joined by `;` or newlines read as the same list; an error is the first
/// malformed spec's.
pub fn rule_list_input(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let specs: Vec<&str> = text
        .split([';', '\n'])
        .map(str::trim)
        .filter(|spec| !spec.is_empty())
        .collect();
    match parse_rule_list(&text) {
        Ok(rules) => {
            assert_eq!(rules.len(), specs.len(), "{specs:?}");
            for (rule, spec) in rules.iter().zip(&specs) {
                assert_eq!(Ok(rule), AllowRule::parse(spec).as_ref(), "{spec:?}");
                check_rule(rule);
            }
            let canonical: Vec<&str> = rules.iter().map(AllowRule::spec).collect();
            for separator in [";", "\n", " ; "] {
                let again = parse_rule_list(&canonical.join(separator));
                assert_eq!(again.as_ref(), Ok(&rules), "{canonical:?}");
            }
        }
        Err(err) => {
            let first_bad = specs
                .iter()
                .find_map(|spec| AllowRule::parse(spec).err())
                .unwrap_or_else(|| panic!("{err} but every spec of {specs:?} parses"));
            assert_eq!(err, first_bad);
            check_error(&err, &first_bad.rule);
        }
    }
}

/// The allow-rule parser, `pyproject.toml` form (a table of fields): [`AllowRule::from_fields`]
/// with the fields the control byte's bits 0-3 name (event, module, path, function), their
/// values the input's text split at NUL characters, and `frames = "any"` when bit 4 is set.
///
/// Properties: no panic; a rule is made exactly when some field is given and none is blank or
/// holds `,` or `;`; it has the given fields, trimmed, and `frames`, and is checked as
/// [`rule_spec_input`] checks a rule; an error reads "malformed allow rule".
pub fn rule_fields_input(data: &[u8]) {
    let (control, body) = split_control(data);
    let text = String::from_utf8_lossy(body);
    let mut values = text.split('\0');
    let mut field = |bit: u8| (control & bit != 0).then(|| values.next().unwrap_or(""));
    let fields = [field(1), field(2), field(4), field(8)];
    let frames = if control & 16 != 0 {
        FrameScope::Any
    } else {
        FrameScope::First
    };
    let valid = fields.iter().any(Option::is_some)
        && fields
            .iter()
            .flatten()
            .all(|value| !value.trim().is_empty() && !value.contains([',', ';']));
    let [event, module, path, function] = fields;
    match AllowRule::from_fields(event, module, path, function, frames) {
        Ok(rule) => {
            assert!(valid, "a rule from {fields:?}");
            let glob = |glob: Option<&Glob>| glob.map(|glob| glob.as_str().to_owned());
            let made = [
                glob(rule.event()),
                glob(rule.module()),
                glob(rule.path()),
                glob(rule.function()),
            ];
            let given = fields.map(|field| field.map(|value| value.trim().to_owned()));
            assert_eq!(made, given);
            assert_eq!(rule.frames(), frames);
            check_rule(&rule);
        }
        Err(err) => {
            assert!(!valid, "{err} from {fields:?}");
            assert!(err.to_string().contains("malformed allow rule"), "{err}");
        }
    }
}

/// `pattern` with each `*` replaced by `star` and each `?` by `x`: a text it matches.
fn fill(pattern: &str, star: &str) -> String {
    pattern
        .chars()
        .fold(String::with_capacity(pattern.len()), |mut text, c| {
            match c {
                '*' => text.push_str(star),
                '?' => text.push('x'),
                c => text.push(c),
            }
            text
        })
}

fn check_rule(rule: &AllowRule) {
    assert_eq!(rule.to_string(), rule.spec());
    match AllowRule::parse(rule.spec()) {
        Ok(again) => assert_eq!(again, *rule, "{:?} read again", rule.spec()),
        Err(err) => panic!("the canonical spec {:?} does not parse: {err}", rule.spec()),
    }
    assert!(rule.event().is_some() || rule.needs_frames(), "{rule:?}");
    let globs = [rule.event(), rule.module(), rule.path(), rule.function()];
    for glob in globs.iter().flatten() {
        assert!(glob.matches(glob.as_str()), "{glob:?} against itself");
    }
    // A distribution rule: the frame belongs to a distribution of that name, at a version the
    // specifier may or may not accept; the rule allows the call exactly when it does.
    let requirement = rule.distribution();
    let dist = requirement.map(|req| aiocop_events::dist::Distribution::new(req.name(), "1.0"));
    let satisfied = dist
        .as_deref()
        .zip(requirement)
        .is_none_or(|(dist, req)| dist.satisfies(req));
    for star in ["", "é/.x"] {
        let filled = globs.map(|glob| glob.map(|glob| fill(glob.as_str(), star)));
        let [event, module, path, function] = &filled;
        let frames = [FrameFacts {
            filename: path.as_deref().unwrap_or("/srv/app.py"),
            module: Some(module.as_deref().unwrap_or("app")),
            function: function.as_deref().unwrap_or("main"),
            origin: Origin::User,
            distribution: dist.as_deref(),
        }];
        let call = Candidate {
            event: event.as_deref().unwrap_or("open"),
            frames: &frames,
        };
        assert_eq!(
            rule.matches(&call),
            satisfied,
            "{rule} allows {call:?}: {}",
            !satisfied
        );
    }
}

fn check_error(err: &RuleError, spec: &str) {
    assert_eq!(err.rule, spec);
    let text = err.to_string();
    assert!(text.contains("malformed allow rule"), "{text}");
}
