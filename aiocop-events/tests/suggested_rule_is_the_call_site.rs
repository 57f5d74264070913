//! A stack names the user's call site, shows the trace up to the user's outermost frame, and
//! suggests one allow rule: it matches the call it was made for, works on any checkout, and is
//! no broader than the call site.

use std::sync::Arc;

use aiocop_events::rules::{set_project_root, AllowRule, Candidate, FrameFacts};
use aiocop_events::{CodeFacts, Frame, Origin, Stack};

fn frame(path: &str, line: i32, module: Option<&str>, qualname: &str, origin: Origin) -> Frame {
    let function = qualname.rsplit('.').next().unwrap_or(qualname);
    Frame::new(path, line, function).with_code(Arc::new(CodeFacts {
        module: module.map(Arc::from),
        qualname: Arc::from(qualname),
        origin,
        distribution: None,
    }))
}

fn stdlib_open() -> Frame {
    frame(
        "/usr/lib/python3.11/pathlib.py",
        1044,
        Some("pathlib"),
        "Path.open",
        Origin::Stdlib,
    )
}

fn runner() -> Frame {
    frame(
        "/venv/lib/python3.11/site-packages/_pytest/python.py",
        194,
        Some("_pytest.python"),
        "pytest_pyfunc_call",
        Origin::Package,
    )
}

/// Whether `rule` allows `event` called through `frames`.
fn allows(rule: &str, event: &str, frames: &[Frame]) -> bool {
    let facts: Vec<FrameFacts<'_>> = frames.iter().map(Frame::facts).collect();
    AllowRule::parse(rule)
        .expect("a suggested rule parses")
        .matches(&Candidate {
            event,
            frames: &facts,
        })
}

#[test]
fn the_site_is_the_users_innermost_frame_and_the_trace_ends_at_the_users_outermost() {
    let stack = Stack::new(vec![
        stdlib_open(),
        frame(
            "/ci/checkout/app/config.py",
            12,
            Some("app.config"),
            "load_settings",
            Origin::User,
        ),
        frame(
            "/ci/checkout/tests/test_views.py",
            8,
            Some("tests.test_views"),
            "test_items",
            Origin::User,
        ),
        frame(
            "/usr/lib/python3.11/asyncio/events.py",
            80,
            Some("asyncio.events"),
            "Handle._run",
            Origin::Stdlib,
        ),
        runner(),
    ]);
    assert_eq!(stack.entry_point(), "pathlib.py:1044:open");
    assert_eq!(stack.site(), "/ci/checkout/app/config.py:12:load_settings");
    assert_eq!(
        stack.user_trace(),
        "pathlib.py:1044:open <- /ci/checkout/app/config.py:12:load_settings \
         <- /ci/checkout/tests/test_views.py:8:test_items"
    );
    assert!(stack
        .trace()
        .ends_with("_pytest/python.py:194:pytest_pyfunc_call"));
    let rule = stack.suggested_rule("open").expect("frames: a rule");
    assert_eq!(rule, "event=open,function=app.config.load_settings");
    assert!(allows(&rule, "open", stack.frames()));
    assert!(!allows(&rule, "os.stat", stack.frames()));
}

#[test]
fn a_rule_by_module_does_not_allow_other_functions() {
    let other = [
        stdlib_open(),
        frame(
            "/ci/checkout/app/config.py",
            40,
            Some("app.config"),
            "save_settings",
            Origin::User,
        ),
    ];
    assert!(!allows(
        "event=open,function=app.config.load_settings",
        "open",
        &other
    ));
}

#[test]
fn code_without_a_module_is_named_by_its_path_under_the_project_root() {
    set_project_root(Some("/ci/checkout/"));
    let frames = vec![
        stdlib_open(),
        frame(
            "/ci/checkout/scripts/tool.py",
            3,
            None,
            "main",
            Origin::User,
        ),
    ];
    let rule = Stack::new(frames.clone())
        .suggested_rule("open")
        .expect("a rule");
    set_project_root(None);
    assert_eq!(rule, "event=open,path=*/scripts/tool.py");
    assert!(allows(&rule, "open", &frames));
    // The same file on another checkout.
    let elsewhere = [
        stdlib_open(),
        frame(
            "/home/dev/work/scripts/tool.py",
            3,
            None,
            "main",
            Origin::User,
        ),
    ];
    assert!(allows(&rule, "open", &elsewhere));
}

#[test]
fn without_a_user_frame_the_innermost_package_frame_is_named_with_any_frame() {
    let frames = vec![
        stdlib_open(),
        frame(
            "/venv/lib/python3.11/site-packages/requests/sessions.py",
            700,
            Some("requests.sessions"),
            "Session.send",
            Origin::Package,
        ),
        runner(),
    ];
    let stack = Stack::new(frames.clone());
    assert_eq!(
        stack.site(),
        "requests/sessions.py:700:send",
        "the package's frame, not the standard library's"
    );
    let rule = stack.suggested_rule("open").expect("a rule");
    assert_eq!(
        rule,
        "event=open,function=requests.sessions.Session.send,frames=any"
    );
    assert!(allows(&rule, "open", &frames));
    assert!(!allows(&rule, "open", &[stdlib_open()]));
    assert_eq!(
        stack.user_trace(),
        stack.trace(),
        "no user frame: all of it"
    );
}

#[test]
fn only_standard_library_frames_still_give_a_rule_no_broader_than_the_site() {
    let frames = vec![frame(
        "<frozen importlib._bootstrap>",
        241,
        Some("importlib._bootstrap"),
        "_call_with_frames_removed",
        Origin::Stdlib,
    )];
    let rule = Stack::new(frames.clone())
        .suggested_rule("import")
        .expect("a rule");
    assert_eq!(
        rule,
        "event=import,function=importlib._bootstrap._call_with_frames_removed,frames=any"
    );
    assert!(allows(&rule, "import", &frames));
}

#[test]
fn no_frames_no_rule() {
    let stack = Stack::new(Vec::new());
    assert_eq!(stack.suggested_rule("open"), None);
    assert_eq!(stack.site(), "unknown");
}

#[test]
fn names_with_glob_or_spec_characters_are_escaped() {
    let frames = vec![frame("/srv/app/a,b.py", 1, None, "f", Origin::User)];
    let rule = Stack::new(frames.clone())
        .suggested_rule("open")
        .expect("a rule");
    assert_eq!(rule, "event=open,path=*/app/a?b.py");
    assert!(allows(&rule, "open", &frames));
}

#[test]
fn frames_beyond_the_loop_are_not_the_call_site() {
    // A server started by the user's script: below asyncio's loop frames lie the server's
    // start-up and the script itself, which are not where the call was made.
    let frames = vec![
        stdlib_open(),
        frame(
            "/venv/lib/python3.11/site-packages/uvicorn/protocols/http/h11_impl.py",
            400,
            Some("uvicorn.protocols.http.h11_impl"),
            "H11Protocol.handle_events",
            Origin::Package,
        ),
        frame(
            "/usr/lib/python3.11/asyncio/events.py",
            80,
            Some("asyncio.events"),
            "Handle._run",
            Origin::Stdlib,
        ),
        frame(
            "/usr/lib/python3.11/asyncio/base_events.py",
            607,
            Some("asyncio.base_events"),
            "BaseEventLoop.run_forever",
            Origin::Stdlib,
        ),
        frame(
            "/srv/main.py",
            5,
            Some("__main__"),
            "<module>",
            Origin::User,
        ),
    ];
    let stack = Stack::new(frames.clone());
    assert_eq!(
        stack.site(),
        "uvicorn/protocols/http/h11_impl.py:400:handle_events"
    );
    assert_eq!(
        stack.user_trace(),
        "pathlib.py:1044:open <- uvicorn/protocols/http/h11_impl.py:400:handle_events"
    );
    let rule = stack.suggested_rule("open").expect("a rule");
    assert_eq!(
        rule,
        "event=open,function=uvicorn.protocols.http.h11_impl.H11Protocol.handle_events,frames=any"
    );
    assert!(allows(&rule, "open", &frames));
}

#[test]
fn the_import_machinery_is_passed_over_for_the_module_being_imported() {
    let frames = vec![
        frame(
            "<frozen importlib._bootstrap_external>",
            1130,
            Some("importlib._bootstrap_external"),
            "FileLoader.get_data",
            Origin::Stdlib,
        ),
        frame(
            "/usr/lib/python3.11/encodings/idna.py",
            3,
            Some("encodings.idna"),
            "<module>",
            Origin::Stdlib,
        ),
        frame(
            "<frozen importlib._bootstrap>",
            241,
            Some("importlib._bootstrap"),
            "_call_with_frames_removed",
            Origin::Stdlib,
        ),
    ];
    let stack = Stack::new(frames.clone());
    assert_eq!(stack.site(), "idna.py:3:<module>");
    let rule = stack.suggested_rule("open").expect("a rule");
    assert_eq!(
        rule,
        "event=open,function=encodings.idna.<module>,frames=any"
    );
    assert!(allows(&rule, "open", &frames));
}
