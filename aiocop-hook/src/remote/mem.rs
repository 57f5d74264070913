//! Reads of this process's memory that fail instead of faulting: `process_vm_readv` on our own
//! pid, the way py-spy reads another process. The kernel copies through the page tables, so
//! an address that is unmapped (a freed arena, a garbage pointer) makes the call fail with
//! `EFAULT` rather than raise `SIGSEGV`; a mapped address gives whatever bytes it holds, which
//! the reader checks before trusting.

use std::ffi::c_void;

/// The most regions one [`read_many`] call copies (`IOV_MAX` is 1024 on Linux).
pub(crate) const MAX_REGIONS: usize = 64;

/// Copies `buf.len()` bytes at `addr` of this process into `buf`; `false` when any of them
/// could not be read.
pub(crate) fn read(pid: libc::pid_t, addr: usize, buf: &mut [u8]) -> bool {
    read_many(pid, &mut [(addr, buf)])
}

/// Copies each `(address, buffer)` region in one system call; `false` unless every byte of
/// every region was read (the kernel stops at the first region it cannot read).
pub(crate) fn read_many(pid: libc::pid_t, regions: &mut [(usize, &mut [u8])]) -> bool {
    if regions.is_empty() {
        return true;
    }
    if regions.len() > MAX_REGIONS || regions.iter().any(|(addr, _)| *addr == 0) {
        return false;
    }
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut local = [empty; MAX_REGIONS];
    let mut remote = [empty; MAX_REGIONS];
    let mut total = 0usize;
    for (i, (addr, buf)) in regions.iter_mut().enumerate() {
        local[i] = libc::iovec {
            iov_base: buf.as_mut_ptr().cast::<c_void>(),
            iov_len: buf.len(),
        };
        remote[i] = libc::iovec {
            iov_base: *addr as *mut c_void,
            iov_len: buf.len(),
        };
        total += buf.len();
    }
    let count = regions.len() as libc::c_ulong;
    let (local, remote) = (local.as_ptr(), remote.as_ptr());
    // SAFETY: `local` describes `count` writable buffers we own exclusively (the `regions`
    // borrowed mutably for the call), each of the length given; the kernel writes at most
    // that many bytes into each. `remote` addresses are only read by the kernel, which checks
    // them and fails (EFAULT) instead of faulting: they need not be valid for us.
    let copied = unsafe { libc::process_vm_readv(pid, local, count, remote, count, 0) };
    usize::try_from(copied).is_ok_and(|copied| copied == total)
}

/// This process's id, asked for once per sample (a forked child has a new one).
pub(crate) fn own_pid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// The pointer-sized word at `off` of `buf` (0 when `buf` is too short).
pub(crate) fn word(buf: &[u8], off: usize) -> usize {
    buf.get(off..off + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, usize::from_ne_bytes)
}

/// The `int` at `off` of `buf` (0 when `buf` is too short).
pub(crate) fn int(buf: &[u8], off: usize) -> i32 {
    buf.get(off..off + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, i32::from_ne_bytes)
}

/// The `unsigned int` at `off` of `buf` (0 when `buf` is too short).
pub(crate) fn uint(buf: &[u8], off: usize) -> u32 {
    buf.get(off..off + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_ne_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_memory() {
        let value: [u64; 2] = [0x1122_3344_5566_7788, 42];
        let mut buf = [0u8; 16];
        assert!(read(own_pid(), value.as_ptr() as usize, &mut buf));
        assert_eq!(word(&buf, 0), 0x1122_3344_5566_7788);
        assert_eq!(word(&buf, 8), 42);
    }

    #[test]
    fn an_unmapped_address_fails_instead_of_faulting() {
        let mut buf = [0u8; 8];
        assert!(!read(own_pid(), 8, &mut buf));
        assert!(!read(own_pid(), usize::MAX - 64, &mut buf));
        assert!(!read(own_pid(), 0, &mut buf));
    }

    #[test]
    fn many_regions_in_one_call() {
        let a = 7u64;
        let b = 9u64;
        let (mut x, mut y) = ([0u8; 8], [0u8; 8]);
        assert!(read_many(
            own_pid(),
            &mut [
                (std::ptr::addr_of!(a) as usize, &mut x[..]),
                (std::ptr::addr_of!(b) as usize, &mut y[..]),
            ]
        ));
        assert_eq!((word(&x, 0), word(&y, 0)), (7, 9));
        assert!(!read_many(
            own_pid(),
            &mut [
                (std::ptr::addr_of!(a) as usize, &mut x[..]),
                (16, &mut y[..])
            ]
        ));
    }
}
