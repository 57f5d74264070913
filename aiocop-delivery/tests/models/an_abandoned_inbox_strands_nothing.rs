//! A loop thread pushes slices while the background thread's inbox is abandoned (the thread
//! died or stalled): each slice is either handed back to its sender (refused) or taken out by
//! the abandonment, never left in an inbox nobody reads, and never both.

use loom::sync::Arc;
use loom::thread;

use super::check;
use aiocop_delivery::{Inbox, Refused};

#[test]
fn an_abandoned_inbox_strands_nothing() {
    check(|| {
        let inbox = Arc::new(Inbox::new(4));
        let sender = {
            let inbox = Arc::clone(&inbox);
            thread::spawn(move || {
                let mut refused = Vec::new();
                for n in 1..=2u32 {
                    match inbox.push(n) {
                        Ok(()) => {}
                        Err(Refused::Abandoned(n)) => refused.push(n),
                        Err(Refused::Full(n)) => panic!("room for {n}"),
                    }
                }
                refused
            })
        };
        let taken: Vec<u32> = inbox.abandon().expect("abandoned once").collect();
        assert!(
            inbox.abandon().is_none(),
            "only the first abandonment drains"
        );
        let refused = sender.join().expect("the sender does not panic");
        assert_eq!(inbox.pop(), None, "nothing stranded in the inbox");
        let mut all: Vec<u32> = taken.into_iter().chain(refused).collect();
        all.sort_unstable();
        assert_eq!(all, [1, 2], "each slice taken or refused, once");
    });
}
