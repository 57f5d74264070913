//! Records made at the same call site share one resolved stack (resolved and formatted once);
//! a different line, or a different caller, gets a stack of its own. Runs a real embedded
//! CPython.

use std::sync::Arc;

use pyo3::prelude::*;

#[test]
fn one_stack_per_call_site() {
    Python::initialize();
    Python::attach(|py| {
        aiocop_hook::install(py, 20).expect("hook installs");
        let code = c"
def opener():
    with open('/dev/null', 'rb'):
        pass
    with open('/dev/null', 'rb'):
        pass

def caller_a():
    opener()

def caller_b():
    opener()

def run():
    for _ in range(3):
        caller_a()
    caller_b()
";
        let globals = pyo3::types::PyDict::new(py);
        py.run(code, Some(&globals), None).expect("defines run");
        let run = globals.get_item("run").expect("present").expect("some");

        let token = aiocop_hook::enter_handle().expect("enters");
        run.call0().expect("runs");
        let recorded = aiocop_hook::exit_handle(token).expect("something was recorded");
        let stacks: Vec<_> = recorded
            .records
            .iter()
            .map(|r| Arc::clone(&r.stack))
            .collect();
        // caller_a three times (two lines each), then caller_b (two lines).
        assert_eq!(stacks.len(), 8);
        let (line3, line5) = (&stacks[0], &stacks[1]);
        assert!(!Arc::ptr_eq(line3, line5), "two lines, two stacks");
        for round in stacks[..6].chunks(2) {
            assert!(Arc::ptr_eq(&round[0], line3), "same site, same stack");
            assert!(Arc::ptr_eq(&round[1], line5), "same site, same stack");
        }
        assert!(
            !Arc::ptr_eq(&stacks[6], line3),
            "another caller, another stack"
        );
        assert_eq!(stacks[6].frames()[1].function.as_ref(), "caller_b");
        assert_eq!(line3.frames()[0].line, 3);
        assert_eq!(line5.frames()[0].line, 5);
        assert_eq!(line3.frames()[1].function.as_ref(), "caller_a");
        assert!(line3
            .trace()
            .starts_with("<string>:3:opener <- <string>:9:caller_a"));
    });
}
