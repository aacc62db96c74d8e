//! The guest's allocator: a bump arena over the linear memory the instance starts with,
//! and Rust's default allocator (dlmalloc) for what does not fit.
//!
//! Why: the webhook runs every review in a fresh instance that lives for one call.
//! - dlmalloc takes its memory only with `memory.grow`, from the end of the current
//!   memory, so it never uses the free space the module starts with (from `__heap_base`
//!   to the 4 MiB `build.rs` asks for). Every call grew the memory at its first
//!   allocation. wasmtime then paid an `mprotect` to open the new pages, page faults to
//!   zero them, and another `mprotect` and a decommit to reset the slot: about a fifth
//!   of a review's time, in the kernel (BENCHMARKS.md, issue 16).
//! - dlmalloc's bookkeeping (bins, chunk headers, coalescing on free) buys reuse, and an
//!   instance that ends after one call has no use for it.
//!
//! So an allocation is a pointer bump inside the initial memory, and a free gives memory
//! back only when it is the newest block (the last `Vec` grown or `String` dropped),
//! which covers the common push-then-drop patterns. The arena is bounded by the initial
//! memory. A large input that needs more goes on to dlmalloc, which grows the memory and
//! reuses what it frees as before, so no input needs more memory than it did.
//!
//! The arena is single-threaded by construction: `wasm32-unknown-unknown` has no threads.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use std::alloc::System;

const WASM_PAGE: usize = 64 * 1024;

unsafe extern "C" {
    /// The first byte after the stack and the static data, placed by the linker.
    static __heap_base: u8;
}

/// A bump arena over `[__heap_base, initial memory end)`, then dlmalloc (`System`).
pub struct Arena {
    /// The next free byte; 0 until the first allocation reads the bounds.
    next: Cell<usize>,
    /// The end of the memory the instance started with.
    end: Cell<usize>,
}

// SAFETY: the guest has one thread (wasm32-unknown-unknown has no threads), so the
// cells are never touched concurrently.
unsafe impl Sync for Arena {}

impl Arena {
    /// An arena that reads its bounds on first use.
    pub const fn new() -> Arena {
        Arena {
            next: Cell::new(0),
            end: Cell::new(0),
        }
    }

    fn bounds(&self) -> (usize, usize) {
        if self.next.get() == 0 {
            // Only the symbol's address is taken, never its contents.
            let base = &raw const __heap_base as usize;
            // Nothing has grown the memory yet: this allocator is the first to run,
            // and dlmalloc grows only when the arena sends it a request.
            let end = core::arch::wasm32::memory_size(0) * WASM_PAGE;
            self.next.set(base);
            self.end.set(end.max(base));
        }
        (self.next.get(), self.end.get())
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        (ptr as usize) < self.end.get()
    }

    /// A block of `layout` from the arena, or `None` when it does not fit.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let (next, end) = self.bounds();
        let start = next.checked_next_multiple_of(layout.align())?;
        let stop = start.checked_add(layout.size())?;
        if stop > end {
            return None;
        }
        self.next.set(stop);
        Some(start as *mut u8)
    }
}

impl Default for Arena {
    fn default() -> Arena {
        Arena::new()
    }
}

// SAFETY: blocks from the arena are disjoint (the bump only moves forward, or back over
// the newest block when that block is freed), aligned as asked, and lie below the initial
// memory's end, where dlmalloc never allocates: it takes memory only by growing past it.
// Every other block is dlmalloc's and goes back to it.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => ptr,
            // SAFETY: the caller's layout, passed on.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => {
                // Fresh instance memory is zero, but a block given back and handed out
                // again is not.
                // SAFETY: the block was just bumped out for `layout.size()` bytes.
                unsafe { core::ptr::write_bytes(ptr, 0, layout.size()) };
                ptr
            }
            // SAFETY: the caller's layout, passed on.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.owns(ptr) {
            // The newest block is given back; the others stay until the instance ends.
            if ptr as usize + layout.size() == self.next.get() {
                self.next.set(ptr as usize);
            }
        } else {
            // SAFETY: a block dlmalloc handed out, with the layout it was asked for.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // SAFETY: a block dlmalloc handed out, with the layout it was asked for.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let start = ptr as usize;
        // The newest block grows or shrinks in place while the arena has room.
        if start + layout.size() == self.next.get()
            && let Some(stop) = start.checked_add(new_size)
            && stop <= self.end.get()
        {
            self.next.set(stop);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: `realloc`'s contract: the alignment is valid and the new size, rounded
        // up to it, does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a valid layout, as above.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and distinct, and the old one holds
            // `layout.size()` bytes, fewer than the new one.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
