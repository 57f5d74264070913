//! Redaction of secrets in the text of shown call arguments ([`redact`], and the process-wide
//! switch [`set_redaction`] that [`format_args`](crate::format_args) follows).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a secret is replaced with.
const MASK: &str = "***";

/// Keys that are sensitive by themselves (normalized: lowercase, `-` read as `_`).
const SENSITIVE_NAMES: &[&[u8]] = &[
    b"password",
    b"passwd",
    b"pwd",
    b"pass",
    b"secret",
    b"token",
    b"auth",
    b"authorization",
    b"apikey",
    b"api_key",
    b"key",
    b"sig",
    b"signature",
    b"credentials",
    b"cookie",
    b"session",
    b"sessionid",
    b"proxy_authorization",
    b"set_cookie",
    b"x_api_key",
];

/// Keys ending with one of these are sensitive (`db_password`, `client_secret`, `AWS_KEY`,
/// `MYSQL_PWD`, `SMTP_PASS`).
const SENSITIVE_SUFFIXES: &[&[u8]] = &[
    b"_password",
    b"_passwd",
    b"_secret",
    b"_token",
    b"_key",
    b"_apikey",
    b"_credentials",
    b"_pwd",
    b"_pass",
];

/// Keys containing one of these are sensitive (`AWS_SECRET_ACCESS_KEY`, `GITHUB_TOKEN`).
const SENSITIVE_PARTS: &[&[u8]] = &[b"password", b"secret", b"token"];

/// Authorization schemes whose following token is a secret (compared case-insensitively).
const AUTH_SCHEMES: &[&[u8]] = &[b"bearer", b"basic"];

/// Whether arguments are redacted (process-wide).
static REDACTION: AtomicBool = AtomicBool::new(true);

/// Turns redaction of shown arguments on or off for the whole process (on by default).
///
/// Turning it off shows arguments as they are, secrets included: meant for debugging only.
///
/// ```
/// use aiocop_events::{format_args, redaction_enabled, set_redaction, RawArgs};
///
/// let args = RawArgs::Values(vec!["--token=abc".into()]);
/// assert!(redaction_enabled());
/// assert_eq!(format_args(&args), "--token=***");
/// set_redaction(false);
/// assert_eq!(format_args(&args), "--token=abc");
/// set_redaction(true);
/// ```
pub fn set_redaction(enabled: bool) {
    REDACTION.store(enabled, Ordering::Relaxed);
}

/// Whether shown arguments are redacted (see [`set_redaction`]); `true` unless turned off.
///
/// ```
/// assert!(aiocop_events::redaction_enabled());
/// ```
pub fn redaction_enabled() -> bool {
    REDACTION.load(Ordering::Relaxed)
}

/// `text` with its secrets replaced by `***`. Borrows `text` when there is nothing to redact
/// (most arguments, file paths and numbers, are told apart by one scan of their bytes).
///
/// Masked:
///
/// - URL passwords: `scheme://user:password@host` → `scheme://user:***@host`, any scheme. The
///   userinfo is the run after `://` (ended by `/`, `?`, `#`, whitespace or a quote) up to its
///   last `@`; the password is what follows its first `:`.
/// - A host given with its credentials, without a scheme (`user:password@host`, as
///   `http.client` and `socket` show it): the password.
/// - `key=value` with a sensitive key right after `?`, `&`, `;`, `,`, `(`, `[`, `{`,
///   whitespace, a quote or the start of the text (the key may start with `-` or `--`): the
///   value, up to `&`, whitespace, a quote, `,`, `;`, `)`, `]`, `}`, `>`, `#` or the end, or the
///   content of a quoted value (`password='x'`). Empty values are left alone.
/// - Mapping reprs: a quoted sensitive key, `:` and a quoted value (`'Authorization': '…'`,
///   `"password": "…"`, `b'Cookie': b'…'`): the value's content.
/// - Flags: a quoted `-`/`--` sensitive key, `,` and a quoted value (`'--token', 'abc'`), or
///   an unquoted one (after whitespace, a quote or the start), whitespace and a value
///   (`--password pw`): the value.
/// - Pairs: `(`, a quoted sensitive key, `,` and a quoted value (`('X-Api-Key', 'abc')`): the
///   value's content.
/// - `Bearer <token>` and `Basic <token>`, in any case: the token.
///
/// A quoted value runs to its closing quote (backslash escapes skipped) or to the end of the
/// text. A key is sensitive when, leading dashes stripped, lowercased and `-` read as `_`, it
/// is one of `password`, `passwd`, `pwd`, `pass`, `secret`, `token`, `auth`, `authorization`,
/// `apikey`, `api_key`, `key`, `sig`, `signature`, `credentials`, `cookie`, `session`,
/// `sessionid`, `proxy_authorization`, `set_cookie`, `x_api_key`; ends with one of
/// `_password`, `_passwd`, `_secret`, `_token`, `_key`, `_apikey`, `_credentials`, `_pwd`,
/// `_pass`; or contains `password`, `secret` or `token`. So `AWS_SECRET_ACCESS_KEY`,
/// `GITHUB_TOKEN`, `db_password` and `X-Api-Key` are sensitive; `path`, `mode`, `page` and
/// `author` are not.
///
/// ```
/// use std::borrow::Cow;
/// use aiocop_events::redact;
///
/// assert_eq!(
///     redact("https://user:hunter2@api.example.com/v1?api_key=abc123&page=2"),
///     "https://user:***@api.example.com/v1?api_key=***&page=2",
/// );
/// assert_eq!(
///     redact("{'Authorization': 'Bearer xyz', 'Accept': '*/*'}"),
///     "{'Authorization': '***', 'Accept': '*/*'}",
/// );
/// assert_eq!(
///     redact("['curl', '--token=abc', '--password', 'pw']"),
///     "['curl', '--token=***', '--password', '***']",
/// );
/// assert!(matches!(redact("/etc/hosts"), Cow::Borrowed("/etc/hosts")));
/// ```
pub fn redact(text: &str) -> Cow<'_, str> {
    redact_window(text, false)
}

/// [`redact`] of a window cut from a longer text when `truncated`: a URL's userinfo that runs
/// to the window's end is then taken as a password (its `@` may lie past the end).
pub(crate) fn redact_window(text: &str, truncated: bool) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let has_trigger = if truncated {
        bytes.iter().any(|&b| TRIGGERS[usize::from(b)] || b == b':')
    } else {
        bytes.iter().any(|&b| TRIGGERS[usize::from(b)])
    };
    if !has_trigger {
        return Cow::Borrowed(text);
    }
    let mut spans = Vec::new();
    url_passwords(bytes, truncated, &mut spans);
    bare_userinfo(bytes, &mut spans);
    key_values(bytes, &mut spans);
    quoted_pairs(bytes, &mut spans);
    spaced_flags(bytes, &mut spans);
    auth_tokens(bytes, &mut spans);
    if spans.is_empty() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(mask(text, spans))
    }
}

/// Bytes without which no rule can match: `@` (URL userinfo), `=` (key=value), quotes (mapping
/// entries, flags as list elements, pairs), whitespace (`Bearer <token>`, `--flag value`).
const TRIGGERS: [bool; 256] = {
    let mut table = [false; 256];
    let bytes = b"@='\" \t\n\r\x0c";
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
};

/// `text` with each byte range of `spans` (at character boundaries) replaced by the mask;
/// overlapping or touching ranges make one mask.
fn mask(text: &str, mut spans: Vec<(usize, usize)>) -> String {
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut masked = false;
    for (start, end) in spans {
        if masked && start <= copied {
            copied = copied.max(end);
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(MASK);
        copied = end;
        masked = true;
    }
    out.push_str(&text[copied..]);
    out
}

/// Whether `key` names a secret: leading dashes stripped, compared lowercase with `-` read as
/// `_` against the names, suffixes and parts above.
fn is_sensitive_key(key: &[u8]) -> bool {
    let start = key.iter().position(|&b| b != b'-').unwrap_or(key.len());
    let key = &key[start..];
    // Normalized on the stack; only a key longer than any common name goes to the heap.
    let mut buf = [0u8; 64];
    let heap: Vec<u8>;
    let key: &[u8] = if key.len() <= buf.len() {
        for (to, &b) in buf.iter_mut().zip(key) {
            *to = normalized(b);
        }
        &buf[..key.len()]
    } else {
        heap = key.iter().map(|&b| normalized(b)).collect();
        &heap
    };
    !key.is_empty()
        && (SENSITIVE_NAMES.contains(&key)
            || SENSITIVE_SUFFIXES
                .iter()
                .any(|suffix| key.ends_with(suffix))
            || SENSITIVE_PARTS
                .iter()
                .any(|part| key.windows(part.len()).any(|w| w == *part)))
}

/// A key byte as compared: lowercase, `-` read as `_`.
fn normalized(b: u8) -> u8 {
    if b == b'-' {
        b'_'
    } else {
        b.to_ascii_lowercase()
    }
}

fn is_space(b: u8) -> bool {
    b.is_ascii_whitespace()
}

fn is_quote(b: u8) -> bool {
    b == b'\'' || b == b'"'
}

/// A byte of a key: ASCII letters and digits, `_`, `-`, `.`.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// A byte that may come right before the key of a `key=value`.
fn opens_key(b: u8) -> bool {
    is_space(b) || is_quote(b) || matches!(b, b'?' | b'&' | b';' | b',' | b'(' | b'[' | b'{')
}

/// A byte that ends an unquoted value or token.
fn ends_value(b: u8) -> bool {
    is_space(b) || is_quote(b) || matches!(b, b'&' | b',' | b';' | b')' | b']' | b'}' | b'>' | b'#')
}

/// A byte that ends the authority's userinfo run after `://`.
fn ends_userinfo(b: u8) -> bool {
    is_space(b) || is_quote(b) || matches!(b, b'/' | b'?' | b'#')
}

/// The start of the run of `pred` bytes that ends at `end`.
fn run_back(bytes: &[u8], end: usize, pred: impl Fn(u8) -> bool) -> usize {
    bytes[..end]
        .iter()
        .rposition(|&b| !pred(b))
        .map_or(0, |at| at + 1)
}

/// The end of the run of `pred` bytes that starts at `start`.
fn run_forward(bytes: &[u8], start: usize, pred: impl Fn(u8) -> bool) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| !pred(b))
        .map_or(bytes.len(), |at| start + at)
}

/// The content (start, end) of the string literal at `at` (a quote, optionally after a bytes
/// prefix `b`): up to the matching unescaped quote, or the end of the text when it is not
/// closed. `None` when no string starts at `at`.
fn string_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let open = match bytes.get(at)? {
        b'b' | b'B' => at + 1,
        _ => at,
    };
    let quote = *bytes.get(open)?;
    if !is_quote(quote) {
        return None;
    }
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return Some((open + 1, i)),
            _ => i += 1,
        }
    }
    Some((open + 1, bytes.len()))
}

/// The value's span starting at `at`: a string literal's content, else the run up to
/// [`ends_value`]; `None` when empty.
fn value_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let (start, end) =
        string_at(bytes, at).unwrap_or_else(|| (at, run_forward(bytes, at, |b| !ends_value(b))));
    (start < end).then_some((start, end))
}

/// `scheme://user:password@host`: the password.
fn url_passwords(bytes: &[u8], truncated: bool, spans: &mut Vec<(usize, usize)>) {
    let mut from = 0;
    while let Some(found) = bytes[from..].windows(3).position(|w| w == b"://") {
        let start = from + found + 3;
        let end = run_forward(bytes, start, |b| !ends_userinfo(b));
        let userinfo_end = if truncated && end == bytes.len() {
            // The window ends inside the authority: its `@` may be past the end.
            Some(end)
        } else {
            bytes[start..end]
                .iter()
                .rposition(|&b| b == b'@')
                .map(|at| start + at)
        };
        if let Some(userinfo_end) = userinfo_end {
            if let Some(colon) = bytes[start..userinfo_end].iter().position(|&b| b == b':') {
                let password = start + colon + 1;
                if password < userinfo_end {
                    spans.push((password, userinfo_end));
                }
            }
        }
        // Not past `end`: the run may end inside the next `://` (`http://a,http://u:p@h`).
        from = start;
    }
}

/// `user:password@host` without a scheme (how `http.client` and `socket` show a host given
/// with its credentials): a token of name characters, `:`, a password (no `/`, `\`, `@`,
/// whitespace or quote) and `@`, opening the text or after whitespace, a quote, `(` or `,`
/// (not `mailto:`).
fn bare_userinfo(bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
    let is_user_byte = |b: u8| b.is_ascii_alphanumeric() || b"._~%+-".contains(&b);
    for (at, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'@') {
        let password = run_back(bytes, at, |b| {
            !(b"/\\@:".contains(&b) || is_space(b) || is_quote(b))
        });
        if password == at || password == 0 || bytes[password - 1] != b':' {
            continue;
        }
        let colon = password - 1;
        let user = run_back(bytes, colon, is_user_byte);
        let opens = user == 0 || {
            let before = bytes[user - 1];
            is_space(before) || is_quote(before) || before == b'(' || before == b','
        };
        // `mailto:someone@host` names an address, not a password.
        if user < colon && opens && !bytes[user..colon].eq_ignore_ascii_case(b"mailto") {
            spans.push((password, at));
        }
    }
}

/// `key=value` with a sensitive key: the value.
fn key_values(bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
    for (eq, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'=') {
        let key = run_back(bytes, eq, is_key_byte);
        if key == eq || (key > 0 && !opens_key(bytes[key - 1])) {
            continue;
        }
        if !is_sensitive_key(&bytes[key..eq]) {
            continue;
        }
        let Some((start, end)) = value_at(bytes, eq + 1) else {
            continue;
        };
        // `Authorization=Bearer abc`: the scheme stays, its token is masked by `auth_tokens`.
        let scheme = AUTH_SCHEMES
            .iter()
            .any(|s| bytes[start..end].eq_ignore_ascii_case(s));
        if scheme && bytes.get(end).is_some_and(|&b| is_space(b)) {
            continue;
        }
        spans.push((start, end));
    }
}

/// The key (start, end) of a quoted key ending, maybe after whitespace, right before `sep`;
/// its opening quote is at `start - 1`.
fn quoted_key_before(bytes: &[u8], sep: usize) -> Option<(usize, usize)> {
    let close = run_back(bytes, sep, is_space).checked_sub(1)?;
    let quote = bytes[close];
    if !is_quote(quote) {
        return None;
    }
    let start = run_back(bytes, close, is_key_byte);
    let open = start.checked_sub(1)?;
    (start < close && bytes[open] == quote).then_some((start, close))
}

/// `'key': 'value'` with a sensitive key, and `'--key', 'value'` with a sensitive flag or
/// `('key', 'value')` (a pair) with a sensitive key: the value's content.
fn quoted_pairs(bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
    for (sep, &b) in bytes.iter().enumerate() {
        let listed = match b {
            b':' => false,
            b',' => true,
            _ => continue,
        };
        let Some((start, end)) = quoted_key_before(bytes, sep) else {
            continue;
        };
        let key = &bytes[start..end];
        if listed && key[0] != b'-' && !opens_pair(bytes, start - 1) {
            continue;
        }
        if !is_sensitive_key(key) {
            continue;
        }
        let value = run_forward(bytes, sep + 1, is_space);
        if let Some((start, end)) = string_at(bytes, value) {
            if start < end {
                spans.push((start, end));
            }
        }
    }
}

/// Whether the string whose opening quote is at `open` starts a tuple: `(` right before it
/// (or before its bytes prefix `b`).
fn opens_pair(bytes: &[u8], open: usize) -> bool {
    let before = match open.checked_sub(1).map(|at| (at, bytes[at])) {
        Some((at, b'b' | b'B')) => at.checked_sub(1),
        other => other.map(|(at, _)| at),
    };
    before.is_some_and(|at| bytes[at] == b'(')
}

/// `--key value` (a sensitive flag after whitespace, a quote or the start, then whitespace):
/// the value.
fn spaced_flags(bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
    for (dash, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'-') {
        if dash > 0 && !(is_space(bytes[dash - 1]) || is_quote(bytes[dash - 1])) {
            continue;
        }
        let key_end = run_forward(bytes, dash, is_key_byte);
        let value = run_forward(bytes, key_end, is_space);
        if value == key_end || value == bytes.len() || !is_sensitive_key(&bytes[dash..key_end]) {
            continue;
        }
        if let Some(span) = value_at(bytes, value) {
            spans.push(span);
        }
    }
}

/// `Bearer <token>` / `Basic <token>` (the scheme a word of its own, in any case): the token.
fn auth_tokens(bytes: &[u8], spans: &mut Vec<(usize, usize)>) {
    for (at, &b) in bytes.iter().enumerate() {
        if b | 0x20 != b'b'
            || (at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_'))
        {
            continue;
        }
        let rest = &bytes[at..];
        let Some(scheme) = AUTH_SCHEMES
            .iter()
            .find(|s| rest.len() > s.len() && rest[..s.len()].eq_ignore_ascii_case(s))
        else {
            continue;
        };
        let gap = at + scheme.len();
        let token = run_forward(bytes, gap, is_space);
        if token == gap {
            continue;
        }
        let end = run_forward(bytes, token, |b| !ends_value(b));
        if token < end {
            spans.push((token, end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_table() {
        let cases: &[(&str, &str)] = &[
            // URL userinfo passwords, any scheme
            ("https://user:hunter2@api.example.com/v1", "https://user:***@api.example.com/v1"),
            ("postgres://app:s3cr3t@db:5432/prod", "postgres://app:***@db:5432/prod"),
            ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
            ("x+y://u:p@h", "x+y://u:***@h"),
            // the userinfo ends at its last '@'; the password at the userinfo's end
            ("https://u:p@ss@host/x", "https://u:***@host/x"),
            ("https://u:a:b@host", "https://u:***@host"),
            // no password: user only, or empty
            ("ssh://git@github.com/org/repo", "ssh://git@github.com/org/repo"),
            ("https://u:@host", "https://u:@host"),
            // an '@' after the authority is not userinfo
            ("https://h:80/p?mail=a@b.com", "https://h:80/p?mail=a@b.com"),
            ("https://h:80?mail=a@b.com", "https://h:80?mail=a@b.com"),
            ("('https://h:80', 'a@b')", "('https://h:80', 'a@b')"),
            // a host given with its credentials, no scheme (http.client, socket)
            ("user:hunter2@127.0.0.1", "user:***@127.0.0.1"),
            ("(conn, app:s3cr3t@db, 5432)", "(conn, app:***@db, 5432)"),
            ("'u:p@h'", "'u:***@h'"),
            ("mailto:a@b.com", "mailto:a@b.com"),
            ("12:30@noon", "12:***@noon"),
            ("/a/b:c@d", "/a/b:c@d"),
            ("C:\\dir\\f@x", "C:\\dir\\f@x"),
            // key=value with a sensitive key
            ("https://h/v1?api_key=abc123&page=2", "https://h/v1?api_key=***&page=2"),
            ("https://h/?page=2&access_token=t0k#frag", "https://h/?page=2&access_token=***#frag"),
            ("--token=abc", "--token=***"),
            ("-Dspring.datasource.password=pw", "-Dspring.datasource.password=***"),
            ("host=db user=app password=x dbname=prod", "host=db user=app password=*** dbname=prod"),
            ("Server=db;Uid=app;Pwd=x;Database=prod", "Server=db;Uid=app;Pwd=***;Database=prod"),
            ("(secret=1)", "(secret=***)"),
            ("a=1, SIG=abc", "a=1, SIG=***"),
            ("X-Api-Key=k", "X-Api-Key=***"),
            ("<x session=abc>", "<x session=***>"),
            ("token=a==&b=1", "token=***&b=1"),
            // a quoted value
            ("Creds(user='u', password='p w')", "Creds(user='u', password='***')"),
            ("Creds(password=b'p')", "Creds(password=b'***')"),
            // empty values, insensitive keys, keys after other bytes
            ("password=", "password="),
            ("?token=&page=2", "?token=&page=2"),
            ("?page=2&mode=r&author=me&path=/x", "?page=2&mode=r&author=me&path=/x"),
            ("/tmp/token=abc", "/tmp/token=abc"),
            ("monkey=1 keyboard=2 passage=3", "monkey=1 keyboard=2 passage=3"),
            // mapping reprs
            ("{'Authorization': 'Bearer xyz'}", "{'Authorization': '***'}"),
            ("{\"password\": \"x\"}", "{\"password\": \"***\"}"),
            ("{\"password\":\"x\"}", "{\"password\":\"***\"}"),
            (
                "{'AWS_SECRET_ACCESS_KEY': 'k', 'PATH': '/bin'}",
                "{'AWS_SECRET_ACCESS_KEY': '***', 'PATH': '/bin'}",
            ),
            ("{'GITHUB_TOKEN': \"it's\"}", "{'GITHUB_TOKEN': \"***\"}"),
            ("{'db_password': 'a\\'b', 'x': 'y'}", "{'db_password': '***', 'x': 'y'}"),
            ("{b'Cookie': b'sid=1'}", "{b'Cookie': b'***'}"),
            ("{'token': '', 'auth': None, 'key': 3}", "{'token': '', 'auth': None, 'key': 3}"),
            ("{'author': 'me', 'page': '2'}", "{'author': 'me', 'page': '2'}"),
            // flags as their own list elements
            ("['curl', '--password', 'pw']", "['curl', '--password', '***']"),
            ("[\"--token\", \"abc\", \"-v\"]", "[\"--token\", \"***\", \"-v\"]"),
            ("['-client-secret', 'abc']", "['-client-secret', '***']"),
            ("['token', 'abc']", "['token', 'abc']"),
            // (key, value) pairs
            (
                "[('X-Api-Key', 'abc'), ('Accept', '*/*')]",
                "[('X-Api-Key', '***'), ('Accept', '*/*')]",
            ),
            ("(b'password', b'x')", "(b'password', b'***')"),
            ("(('Cookie', 'a=1'),)", "(('Cookie', '***'),)"),
            ("('page', '2')", "('page', '2')"),
            ("('a', 'token', 'x')", "('a', 'token', 'x')"),
            ("['--mode', 'abc']", "['--mode', 'abc']"),
            // flags and their value in one string
            ("mysql --password hunter2 -h db", "mysql --password *** -h db"),
            ("sh -c 'curl --token abc'", "sh -c 'curl --token ***'"),
            ("ls --color always", "ls --color always"),
            // Bearer / Basic tokens, any case
            ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer ***"),
            ("basic dXNlcjpwYXNz, next", "basic ***, next"),
            ("BEARER\tx", "BEARER\t***"),
            ("Authorization=Bearer xyz", "Authorization=Bearer ***"),
            ("Bearer", "Bearer"),
            ("BearerToken abc", "BearerToken abc"),
            ("unbasic x", "unbasic x"),
            // several in one string
            (
                "https://user:hunter2@api.example.com/v1?api_key=abc123&page=2",
                "https://user:***@api.example.com/v1?api_key=***&page=2",
            ),
            (
                "['curl', '--token=abc', '--password', 'pw', 'https://u:p@h?sig=s', '-H', 'Authorization: Basic QQ==']",
                "['curl', '--token=***', '--password', '***', 'https://u:***@h?sig=***', '-H', 'Authorization: Basic ***']",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), *expected, "{input}");
        }
    }

    #[test]
    fn a_url_right_after_an_authority_is_read() {
        // Found by fuzzing: the search for the next `://` resumed after the previous
        // authority's run, which ends at the next URL's `//` (past its `:`).
        let cases: &[(&str, &str)] = &[
            ("http://a,http://u:pw@h", "http://a,http://u:***@h"),
            ("redis://a;redis://u:pw@b", "redis://a;redis://u:***@b"),
            ("https://x&https://u:pw@h/", "https://x&https://u:***@h/"),
            ("http://a://u:p@h", "http://a://u:***@h"),
            ("key=://&://:2@", "key=***&://:***@"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), *expected, "{input}");
        }
    }

    #[test]
    fn what_must_not_change() {
        let unchanged = [
            "",
            "/etc/hosts",
            "open(/tmp/a=b.txt, r)",
            "page=2",
            "?page=2&sort=asc",
            "mailto:a@b",
            "user@host",
            "ssh user@host 'ls -l'",
            "git@github.com:org/repo.git",
            "[fe80::1%eth0]:8080",
            "http://[::1]:8080/x",
            "('::1', 443, 0, 0)",
            "C:\\Users\\me\\token.txt",
            "C:\\Program Files\\app\\key=1.txt",
            "<socket.socket fd=7, family=2, type=1, proto=6>",
            "('db', 5432)",
            "{'mode': 'r', 'path': '/x'}",
            "524288",
            "3.14",
            "-1",
        ];
        for text in unchanged {
            let redacted = redact(text);
            assert_eq!(redacted, text);
            assert!(matches!(redacted, Cow::Borrowed(_)), "{text} was copied");
        }
    }

    #[test]
    fn utf8_around_secrets() {
        let cases: &[(&str, &str)] = &[
            ("clé=ü token=é€🦀 après", "clé=ü token=*** après"),
            ("https://jörg:pässwörd@höst/ü", "https://jörg:***@höst/ü"),
            ("🦀 Bearer 🦀🦀 🦀", "🦀 Bearer *** 🦀"),
            (
                "{'mot_de_passe_token': 'é'}",
                "{'mot_de_passe_token': '***'}",
            ),
            ("['--password', 'ünï']", "['--password', '***']"),
            ("é=token=x", "é=token=x"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), *expected, "{input}");
        }
    }

    #[test]
    fn fast_path_borrows() {
        for text in ["/usr/lib/python3.11/socket.py", "42", "0.5", "/dev/null"] {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "{text}");
        }
        assert!(matches!(redact("--token=abc"), Cow::Owned(_)));
    }

    #[test]
    fn a_truncated_window_masks_a_userinfo_that_runs_to_its_end() {
        assert_eq!(redact_window("https://u:pppp", true), "https://u:***");
        assert_eq!(redact_window("https://u:pppp", false), "https://u:pppp");
        assert_eq!(redact_window("https://host:8080", true), "https://host:***");
        assert_eq!(
            redact_window("https://host:8080/", true),
            "https://host:8080/"
        );
        assert_eq!(redact_window("https://u", true), "https://u");
        // values running to the end are masked in either mode
        assert_eq!(redact_window("x?token=abc", false), "x?token=***");
        assert_eq!(
            redact_window("{'password': 'abc", false),
            "{'password': '***"
        );
        assert_eq!(redact_window("['--token', 'ab", false), "['--token', '***");
    }

    #[test]
    fn sensitive_keys() {
        let sensitive = "password PASSWORD passwd pwd pass secret token auth Authorization apikey \
            api_key api-key key sig signature credentials Cookie session sessionid \
            Proxy-Authorization Set-Cookie X-Api-Key --token -password AWS_SECRET_ACCESS_KEY \
            GITHUB_TOKEN db_password client_secret client-secret access_token aws_key my_apikey \
            google_credentials MYSQL_PWD SMTP_PASS mypassword2 tokenizer spring.datasource.password";
        for key in sensitive.split_whitespace() {
            assert!(is_sensitive_key(key.as_bytes()), "{key}");
        }
        let plain =
            "- -- path mode page author monkey keyboard passage user sigma cookies_enabled \
            sessions authority AWS_ACCESS_KEY_ID SSH_AUTH_SOCK";
        for key in plain.split_whitespace().chain([""]) {
            assert!(!is_sensitive_key(key.as_bytes()), "{key}");
        }
        assert!(is_sensitive_key(
            format!("{}_token", "x".repeat(100)).as_bytes()
        ));
        assert!(!is_sensitive_key("x".repeat(100).as_bytes()));
    }
}
