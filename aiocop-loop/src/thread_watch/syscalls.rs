//! System call numbers to names, for the architectures whose `/proc/self/task/<tid>/syscall`
//! we read (x86-64, aarch64): the calls a thread can wait in, from the `libc` crate's numbers
//! for the target (aarch64 has no legacy calls such as `poll`, `select`, `epoll_wait`, `open`:
//! its C library uses `ppoll`, `pselect6`, `epoll_pwait`, `openat`). A number not in the
//! table is named `syscall_<number>`. (Both are 64-bit: a `c_long` number is an `i64`.)
//!
//! A timed wait interrupted without a signal handler to run (a `futex` with a timeout, a
//! `clock_nanosleep`, a `poll`; on a thread that used io_uring, for one, the kernel interrupts
//! it to run queued work) goes on as `restart_syscall`, whose number says nothing of the call
//! it resumes: [`resumed`] tells it from the kernel function the thread sleeps in
//! (`/proc/self/task/<tid>/wchan`).

use std::borrow::Cow;

/// The calls every supported architecture has.
const COMMON: &[(i64, &str)] = &[
    (libc::SYS_read, "read"),
    (libc::SYS_write, "write"),
    (libc::SYS_readv, "readv"),
    (libc::SYS_writev, "writev"),
    (libc::SYS_pread64, "pread64"),
    (libc::SYS_pwrite64, "pwrite64"),
    (libc::SYS_preadv, "preadv"),
    (libc::SYS_pwritev, "pwritev"),
    (libc::SYS_preadv2, "preadv2"),
    (libc::SYS_pwritev2, "pwritev2"),
    (libc::SYS_openat, "openat"),
    (libc::SYS_close, "close"),
    (libc::SYS_lseek, "lseek"),
    (libc::SYS_fstat, "fstat"),
    (libc::SYS_newfstatat, "newfstatat"),
    (libc::SYS_statx, "statx"),
    (libc::SYS_getdents64, "getdents64"),
    (libc::SYS_faccessat, "faccessat"),
    (libc::SYS_faccessat2, "faccessat2"),
    (libc::SYS_readlinkat, "readlinkat"),
    (libc::SYS_mkdirat, "mkdirat"),
    (libc::SYS_unlinkat, "unlinkat"),
    (libc::SYS_renameat2, "renameat2"),
    (libc::SYS_ftruncate, "ftruncate"),
    (libc::SYS_truncate, "truncate"),
    (libc::SYS_fallocate, "fallocate"),
    (libc::SYS_fsync, "fsync"),
    (libc::SYS_fdatasync, "fdatasync"),
    (libc::SYS_sync, "sync"),
    (libc::SYS_syncfs, "syncfs"),
    (libc::SYS_sync_file_range, "sync_file_range"),
    (libc::SYS_flock, "flock"),
    (libc::SYS_fcntl, "fcntl"),
    (libc::SYS_ioctl, "ioctl"),
    (libc::SYS_sendfile, "sendfile"),
    (libc::SYS_splice, "splice"),
    (libc::SYS_copy_file_range, "copy_file_range"),
    (libc::SYS_ppoll, "ppoll"),
    (libc::SYS_pselect6, "pselect6"),
    (libc::SYS_epoll_pwait, "epoll_pwait"),
    (libc::SYS_epoll_pwait2, "epoll_pwait2"),
    (libc::SYS_io_getevents, "io_getevents"),
    (libc::SYS_io_uring_enter, "io_uring_enter"),
    (libc::SYS_futex, "futex"),
    (libc::SYS_futex_waitv, "futex_waitv"),
    (libc::SYS_nanosleep, "nanosleep"),
    (libc::SYS_clock_nanosleep, "clock_nanosleep"),
    (libc::SYS_sched_yield, "sched_yield"),
    (libc::SYS_rt_sigsuspend, "rt_sigsuspend"),
    (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait"),
    (libc::SYS_wait4, "wait4"),
    (libc::SYS_waitid, "waitid"),
    (libc::SYS_socket, "socket"),
    (libc::SYS_connect, "connect"),
    (libc::SYS_accept, "accept"),
    (libc::SYS_accept4, "accept4"),
    (libc::SYS_bind, "bind"),
    (libc::SYS_listen, "listen"),
    (libc::SYS_shutdown, "shutdown"),
    (libc::SYS_sendto, "sendto"),
    (libc::SYS_recvfrom, "recvfrom"),
    (libc::SYS_sendmsg, "sendmsg"),
    (libc::SYS_recvmsg, "recvmsg"),
    (libc::SYS_sendmmsg, "sendmmsg"),
    (libc::SYS_recvmmsg, "recvmmsg"),
    (libc::SYS_getsockopt, "getsockopt"),
    (libc::SYS_setsockopt, "setsockopt"),
    (libc::SYS_semop, "semop"),
    (libc::SYS_semtimedop, "semtimedop"),
    (libc::SYS_msgrcv, "msgrcv"),
    (libc::SYS_msgsnd, "msgsnd"),
    (libc::SYS_mq_timedreceive, "mq_timedreceive"),
    (libc::SYS_mq_timedsend, "mq_timedsend"),
    (libc::SYS_mmap, "mmap"),
    (libc::SYS_munmap, "munmap"),
    (libc::SYS_mprotect, "mprotect"),
    (libc::SYS_mremap, "mremap"),
    (libc::SYS_madvise, "madvise"),
    (libc::SYS_msync, "msync"),
    (libc::SYS_brk, "brk"),
    (libc::SYS_clone, "clone"),
    (libc::SYS_clone3, "clone3"),
    (libc::SYS_execve, "execve"),
    (libc::SYS_getrandom, "getrandom"),
    (libc::SYS_kill, "kill"),
    (libc::SYS_tgkill, "tgkill"),
    (libc::SYS_restart_syscall, "restart_syscall"),
];

/// `restart_syscall`: the number a resumed timed wait shows.
pub(crate) const RESTART: i64 = libc::SYS_restart_syscall;

/// The call a `restart_syscall` resumes, from the kernel function the thread sleeps in
/// (`wchan`): `futex_*` is a `futex`, `*nanosleep` a `clock_nanosleep` (what the C library's
/// sleeps use), `ep_poll`/`do_epoll_wait` an `epoll_pwait`, other `*poll*`/`*select*` a
/// `ppoll`. `None` for any other function.
pub(crate) fn resumed(wchan: &[u8]) -> Option<i64> {
    let has = |part: &[u8]| wchan.windows(part.len()).any(|w| w == part);
    let number = if has(b"futex") {
        libc::SYS_futex
    } else if has(b"nanosleep") {
        libc::SYS_clock_nanosleep
    } else if has(b"ep_poll") || has(b"epoll") {
        libc::SYS_epoll_pwait
    } else if has(b"poll") || has(b"select") {
        libc::SYS_ppoll
    } else {
        return None;
    };
    Some(number)
}

/// The legacy calls only x86-64 has.
#[cfg(target_arch = "x86_64")]
const LEGACY: &[(i64, &str)] = &[
    (libc::SYS_open, "open"),
    (libc::SYS_creat, "creat"),
    (libc::SYS_stat, "stat"),
    (libc::SYS_lstat, "lstat"),
    (libc::SYS_access, "access"),
    (libc::SYS_readlink, "readlink"),
    (libc::SYS_getdents, "getdents"),
    (libc::SYS_mkdir, "mkdir"),
    (libc::SYS_rmdir, "rmdir"),
    (libc::SYS_unlink, "unlink"),
    (libc::SYS_rename, "rename"),
    (libc::SYS_renameat, "renameat"),
    (libc::SYS_link, "link"),
    (libc::SYS_symlink, "symlink"),
    (libc::SYS_poll, "poll"),
    (libc::SYS_select, "select"),
    (libc::SYS_epoll_wait, "epoll_wait"),
    (libc::SYS_pause, "pause"),
    (libc::SYS_fork, "fork"),
    (libc::SYS_vfork, "vfork"),
];

#[cfg(not(target_arch = "x86_64"))]
const LEGACY: &[(i64, &str)] = &[];

/// The name of system call `number` on this architecture (`syscall_<number>` when unknown).
pub(crate) fn name(number: i64) -> Cow<'static, str> {
    COMMON
        .iter()
        .chain(LEGACY)
        .find(|&&(nr, _)| nr == number)
        .map_or_else(
            || Cow::Owned(format!("syscall_{number}")),
            |&(_, name)| Cow::Borrowed(name),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers from the kernel's tables, independent of the `libc` crate.
    #[cfg(target_arch = "x86_64")]
    const KNOWN: &[(i64, &str)] = &[
        (0, "read"),
        (7, "poll"),
        (23, "select"),
        (35, "nanosleep"),
        (42, "connect"),
        (45, "recvfrom"),
        (202, "futex"),
        (230, "clock_nanosleep"),
        (232, "epoll_wait"),
        (270, "pselect6"),
        (271, "ppoll"),
        (281, "epoll_pwait"),
    ];

    #[cfg(target_arch = "aarch64")]
    const KNOWN: &[(i64, &str)] = &[
        (63, "read"),
        (22, "epoll_pwait"),
        (72, "pselect6"),
        (73, "ppoll"),
        (98, "futex"),
        (101, "nanosleep"),
        (115, "clock_nanosleep"),
        (203, "connect"),
        (207, "recvfrom"),
    ];

    #[test]
    fn the_calls_a_loop_waits_in_have_their_kernel_numbers() {
        for &(number, expected) in KNOWN {
            assert_eq!(name(number), expected, "{number}");
        }
    }

    #[test]
    fn a_resumed_wait_is_named_by_where_it_sleeps() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"futex_do_wait", Some("futex")),
            (b"futex_wait_queue", Some("futex")),
            (b"hrtimer_nanosleep", Some("clock_nanosleep")),
            (b"do_nanosleep", Some("clock_nanosleep")),
            (b"ep_poll", Some("epoll_pwait")),
            (b"do_epoll_wait", Some("epoll_pwait")),
            (b"poll_schedule_timeout.constprop.0", Some("ppoll")),
            (b"do_select", Some("ppoll")),
            (b"pipe_read", None),
            (b"0", None),
        ];
        for &(wchan, expected) in cases {
            let got = resumed(wchan).map(name);
            assert_eq!(
                got.as_deref(),
                expected,
                "{}",
                String::from_utf8_lossy(wchan)
            );
        }
        assert_eq!(name(RESTART), "restart_syscall");
    }

    #[test]
    fn unknown_numbers_are_named_by_number() {
        assert_eq!(name(99_999), "syscall_99999");
        assert_eq!(name(-1), "syscall_-1");
    }

    #[test]
    fn names_are_unique_per_number() {
        let all: Vec<_> = COMMON.iter().chain(LEGACY).collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.0, b.0, "{} and {} share a number", a.1, b.1);
            }
        }
    }
}
