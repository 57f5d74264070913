//! Reading a thread of this process from another one, without the GIL: its CPU clock
//! (`pthread_getcpuclockid` + `clock_gettime`), the system call it is in
//! (`/proc/self/task/<tid>/syscall`, and `wchan` for a `restart_syscall`) and its scheduler
//! state (`/proc/self/task/<tid>/stat`).
//! Linux on x86-64 and aarch64; elsewhere [`Thread::current`] is `None` and nothing is read.
//!
//! The `/proc` files of a thread of our own process need no ptrace permission (the kernel
//! allows any thread of the same thread group). Each read opens the file (the path is made on
//! the stack: no allocation), reads at most 128 bytes and closes it.

// Elsewhere nothing is read: the parsers and most of `Syscall` go unused.
#![cfg_attr(
    not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )),
    allow(dead_code)
)]

/// What `/proc/self/task/<tid>/syscall` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syscall {
    /// `running`: the thread was on a CPU.
    Running,
    /// Off CPU inside system call number `n`.
    In(i64),
    /// Off CPU, not in a system call (`-1`: preempted in user space, or stopped).
    Outside,
}

/// The first field of a `syscall` file: `running`, a system call number, or `-1`.
pub(crate) fn parse_syscall(text: &[u8]) -> Option<Syscall> {
    let first = text.split(|b| b.is_ascii_whitespace()).next()?;
    if first == b"running" {
        return Some(Syscall::Running);
    }
    let number: i64 = std::str::from_utf8(first).ok()?.parse().ok()?;
    Some(if number < 0 {
        Syscall::Outside
    } else {
        Syscall::In(number)
    })
}

/// The state letter of a `stat` file (`R`, `S`, `D`, ...): the field after the command name,
/// which is in parentheses and may itself hold spaces and parentheses.
pub(crate) fn parse_state(text: &[u8]) -> Option<u8> {
    let close = text.iter().rposition(|&b| b == b')')?;
    text.get(close + 1..)?
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod imp {
    use std::io::Read;

    use super::{parse_state, parse_syscall, Syscall};
    use crate::thread_watch::syscalls::{resumed, RESTART};

    /// A loop thread, as another thread reads it.
    #[derive(Debug)]
    pub(crate) struct Thread {
        tid: libc::pid_t,
        clock: libc::clockid_t,
    }

    impl Thread {
        /// The calling thread; `None` when its CPU clock cannot be had.
        pub(crate) fn current() -> Option<Self> {
            let mut clock: libc::clockid_t = 0;
            // SAFETY: `pthread_self()` is the calling thread, alive; `clock` is a valid
            // out-pointer for the call.
            let status = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
            if status != 0 {
                return None;
            }
            // SAFETY: `gettid` has no preconditions.
            let tid = unsafe { libc::gettid() };
            Some(Self { tid, clock })
        }

        /// The thread's CPU time so far, in nanoseconds (one `clock_gettime`).
        pub(crate) fn cpu_ns(&self) -> Option<u64> {
            read_clock(self.clock)
        }

        /// The system call the thread is in now; for a `restart_syscall`, the call it resumes
        /// when the kernel function it sleeps in tells (`wchan`, read only then).
        pub(crate) fn syscall(&self) -> Option<Syscall> {
            let mut buf = [0u8; 128];
            let text = self.read("syscall", &mut buf)?;
            match parse_syscall(text)? {
                Syscall::In(RESTART) => {
                    let mut buf = [0u8; 128];
                    let resumed = self.read("wchan", &mut buf).and_then(resumed);
                    Some(Syscall::In(resumed.unwrap_or(RESTART)))
                }
                seen => Some(seen),
            }
        }

        /// Whether the thread is runnable (`R`: on a CPU or waiting for one) now.
        pub(crate) fn on_cpu(&self) -> Option<bool> {
            let mut buf = [0u8; 128];
            let text = self.read("stat", &mut buf)?;
            parse_state(text).map(|state| state == b'R')
        }

        fn read<'b>(&self, file: &str, buf: &'b mut [u8]) -> Option<&'b [u8]> {
            let mut path = PathBuf::new();
            use std::fmt::Write;
            write!(path, "/proc/self/task/{}/{file}", self.tid).ok()?;
            let mut opened = std::fs::File::open(path.as_str()).ok()?;
            let read = opened.read(buf).ok()?;
            buf.get(..read)
        }
    }

    /// The calling thread's CPU time so far, in nanoseconds (one `clock_gettime`).
    pub(crate) fn own_cpu_ns() -> Option<u64> {
        read_clock(libc::CLOCK_THREAD_CPUTIME_ID)
    }

    fn read_clock(clock: libc::clockid_t) -> Option<u64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer; an invalid clock (a thread gone) is an error
        // return, not undefined behaviour.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            return None;
        }
        let secs = u64::try_from(ts.tv_sec).ok()?;
        let nanos = u64::try_from(ts.tv_nsec).ok()?;
        Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
    }

    /// A path on the stack (`/proc/self/task/<tid>/syscall` is under 48 bytes).
    struct PathBuf {
        bytes: [u8; 64],
        len: usize,
    }

    impl PathBuf {
        fn new() -> Self {
            Self {
                bytes: [0; 64],
                len: 0,
            }
        }

        fn as_str(&self) -> &str {
            std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
        }
    }

    impl std::fmt::Write for PathBuf {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.len + s.len();
            let room = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
            room.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod imp {
    use super::Syscall;

    /// Not read on this platform.
    #[derive(Debug)]
    pub(crate) struct Thread;

    impl Thread {
        pub(crate) fn current() -> Option<Self> {
            None
        }

        pub(crate) fn cpu_ns(&self) -> Option<u64> {
            None
        }

        pub(crate) fn syscall(&self) -> Option<Syscall> {
            None
        }

        pub(crate) fn on_cpu(&self) -> Option<bool> {
            None
        }
    }

    pub(crate) fn own_cpu_ns() -> Option<u64> {
        None
    }
}

pub(crate) use imp::{own_cpu_ns, Thread};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_lines() {
        let cases: &[(&[u8], Option<Syscall>)] = &[
            (b"running\n", Some(Syscall::Running)),
            (
                b"202 0x7f0 0x80 0x0 0x0 0x0 0x0 0x7ffd 0x7f1\n",
                Some(Syscall::In(202)),
            ),
            (
                b"230 0x1 0x1 0x7ffc 0x0 0x0 0x0 0x7ffc 0x7f2",
                Some(Syscall::In(230)),
            ),
            (b"-1 0x7ffd 0x7f1\n", Some(Syscall::Outside)),
            (b"", None),
            (b"garbage", None),
        ];
        for &(text, expected) in cases {
            assert_eq!(
                parse_syscall(text),
                expected,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn stat_state_after_the_last_parenthesis() {
        let cases: &[(&[u8], Option<u8>)] = &[
            (b"4242 (python3) R 1 4242 4242 0 -1", Some(b'R')),
            (b"4243 (aiocop-cpu-samp) S 1 4242", Some(b'S')),
            (b"4244 (a) b) (c) D 1", Some(b'D')),
            (b"4245 (x y) t 1", Some(b't')),
            (b"4246 python3 R", None),
            (b"4247 (cut)", None),
        ];
        for &(text, expected) in cases {
            assert_eq!(
                parse_state(text),
                expected,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    #[test]
    fn a_thread_blocked_in_a_sleep_is_seen_waiting_and_off_cpu() {
        use std::sync::mpsc;

        let (tx, rx) = mpsc::channel();
        let sleeper = std::thread::spawn(move || {
            tx.send(Thread::current().expect("a CPU clock"))
                .expect("send");
            std::thread::sleep(std::time::Duration::from_millis(300));
        });
        let thread = rx.recv().expect("the sleeper's thread");
        // The sleeper is in its sleep within a moment; look until it is seen there.
        let mut seen = None;
        for _ in 0..200 {
            seen = thread.syscall();
            if matches!(seen, Some(Syscall::In(_))) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let Some(Syscall::In(number)) = seen else {
            panic!("never seen in a system call: {seen:?}");
        };
        let name = super::super::syscalls::name(number);
        assert!(
            name == "clock_nanosleep" || name == "nanosleep",
            "a sleep seen in {name}"
        );
        assert_eq!(thread.on_cpu(), Some(false));
        let cpu = thread.cpu_ns().expect("its CPU clock");
        assert!(cpu < 200_000_000, "a sleeping thread used {cpu} ns of CPU");
        sleeper.join().expect("join");
        assert!(own_cpu_ns().is_some());
    }
}
