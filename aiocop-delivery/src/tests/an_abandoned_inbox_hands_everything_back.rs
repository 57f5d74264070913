//! When the background thread is gone, its inbox is abandoned: what it held comes out once
//! (to be counted), and every later push is handed back to its sender instead of waiting in an
//! inbox nobody reads.

use crate::{Inbox, Refused};

#[test]
fn held_messages_come_out_once_and_later_pushes_are_refused() {
    let inbox = Inbox::new(2);
    assert_eq!(inbox.push(1), Ok(()));
    assert_eq!(inbox.push(2), Ok(()));
    assert_eq!(inbox.push(3), Err(Refused::Full(3)));
    assert!(!inbox.is_abandoned());
    let held: Vec<u32> = inbox.abandon().expect("the first abandonment").collect();
    assert_eq!(held, [1, 2]);
    assert!(inbox.is_abandoned());
    assert!(inbox.abandon().is_none(), "only once");
    assert_eq!(inbox.push(4), Err(Refused::Abandoned(4)));
    assert!(inbox.is_empty());
}
