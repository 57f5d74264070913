//! The extension's global allocator: mimalloc.
//!
//! Rust allocations cross threads (the loop thread builds slices the dispatch thread frees, and
//! the other way round); mimalloc's per-thread heaps free them without the allocator-lock
//! contention glibc's arenas showed under load. Python's own allocations are unaffected.
//!
//! Word-aligned requests (nearly all of ours) go to `mi_malloc` itself, whose fast path takes
//! the first block of the size class and, when a page's free list is empty, collects the blocks
//! freed since: every mimalloc block is at least word-aligned (block sizes are whole words and
//! pages start 16-aligned). Only larger alignments take `mi_malloc_aligned`, whose fast path
//! gives up on an empty free list and falls back to over-allocating from a larger class
//! (under a steady alloc/free pattern that was most of the time: ~230 instructions per event).

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as ffi;

/// The alignment every mimalloc block has (`sizeof(void*)`).
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc, calling its plain entry points for word-aligned layouts.
#[derive(Debug)]
pub(crate) struct Allocator;

/// Whether `mi_malloc`'s own alignment suffices for `layout`.
#[inline]
fn plain(layout: &Layout) -> bool {
    layout.align() <= WORD && layout.align() <= layout.size()
}

// SAFETY: every method returns memory from mimalloc that satisfies the layout (plain entry
// points only for alignments every block has, the aligned ones otherwise), or null; `dealloc`
// and `realloc` only ever see pointers this allocator returned.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(&layout) {
            // SAFETY: any size; the block is word-aligned, which `layout` needs at most.
            unsafe { ffi::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: a power-of-two alignment (a `Layout`'s) and any size.
            unsafe { ffi::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(&layout) {
            // SAFETY: any size; the zeroed block is word-aligned, which `layout` needs at most.
            unsafe { ffi::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: a power-of-two alignment (a `Layout`'s) and any size.
            unsafe { ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract); mi_free takes
        // blocks from either entry point.
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align(new_size, layout.align());
        if new_layout.as_ref().is_ok_and(plain) {
            // SAFETY: `ptr` came from this allocator; the new block is word-aligned, all the
            // layout needs.
            unsafe { ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast() }
        } else {
            // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract); the alignment is
            // the layout's, a power of two, kept by the new block.
            unsafe {
                ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}
