//! Heap accounting for FrameDB's binaries: [`Counting`] wraps the process's global
//! allocator and, once [`start_counting`] is called, keeps the bytes it has handed out
//! and not taken back, which [`allocated`] reads (the `framedb_heap_bytes` gauge of
//! `/metrics`).
//!
//! The resident set of a process says little about what it holds: it counts the pages of
//! its binary that the code it happened to run touched, and the freed pages its
//! allocator keeps, which move it by megabytes either way. The bytes allocated are exact,
//! so that what a thousand instances take can be told from nothing.
//!
//! The count is striped: each thread adds to a counter of its own cache line (threads
//! beyond the stripes share), so that two threads allocating at once do not fight over
//! one line; [`allocated`] sums the stripes. Counting still costs two atomic additions
//! per allocation and free, about 8 % of the read path's throughput
//! (`scripts/bench.sh --only read`), so it is off until asked for: off, an allocation
//! costs one relaxed load more.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::Relaxed};

/// How many counters the threads spread over.
const STRIPES: usize = 32;

/// One counter, alone on its cache line.
#[repr(align(64))]
struct Stripe(AtomicIsize);

static COUNTS: [Stripe; STRIPES] = [const { Stripe(AtomicIsize::new(0)) }; STRIPES];
/// The stripe the next thread takes.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);
/// Whether this process's allocator counts.
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Has the process's [`Counting`] allocator count from now on. Call it first thing in
/// `main`: a block allocated before and freed after is taken off a count that never had
/// it (a few hundred bytes of the runtime's start, which [`allocated`] keeps from going
/// below nothing).
pub fn start_counting() {
    COUNTING.store(true, Relaxed);
}

thread_local! {
    /// This thread's stripe, taken at its first allocation. Constant-initialized and
    /// without a destructor, so that reading it allocates nothing and works while the
    /// thread ends.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn add(bytes: isize) {
    let stripe = STRIPE
        .try_with(|stripe| {
            if stripe.get() == usize::MAX {
                stripe.set(NEXT_STRIPE.fetch_add(1, Relaxed) % STRIPES);
            }
            stripe.get()
        })
        .unwrap_or(0);
    COUNTS[stripe].0.fetch_add(bytes, Relaxed);
}

/// The bytes the process's [`Counting`] allocator holds for it now, or `None` when it
/// does not count ([`start_counting`] was not called, or the global allocator is another).
pub fn allocated() -> Option<u64> {
    if !COUNTING.load(Relaxed) {
        return None;
    }
    let sum: isize = COUNTS.iter().map(|stripe| stripe.0.load(Relaxed)).sum();
    // Stripes are read one after another while threads go on: a sum can be off by what
    // was freed meanwhile, never below nothing.
    Some(u64::try_from(sum).unwrap_or(0))
}

/// A global allocator that serves from `A` and counts what it holds (see [`allocated`]).
#[derive(Debug, Default)]
pub struct Counting<A>(pub A);

/// A size as the counters add it: no allocation reaches `isize::MAX` bytes (`Layout`
/// refuses larger ones).
fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every method forwards to `A` with the caller's own arguments, so it keeps
// `A`'s guarantees; the counting beside it neither allocates nor touches the memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is the same for `A`.
        let block = unsafe { self.0.alloc(layout) };
        if !block.is_null() && COUNTING.load(Relaxed) {
            add(signed(layout.size()));
        }
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed` is the same for `A`.
        let block = unsafe { self.0.alloc_zeroed(layout) };
        if !block.is_null() && COUNTING.load(Relaxed) {
            add(signed(layout.size()));
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: `block` was allocated by this allocator, hence by `A`, with `layout`.
        unsafe { self.0.dealloc(block, layout) };
        if COUNTING.load(Relaxed) {
            add(-signed(layout.size()));
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `block` was allocated by this allocator, hence by `A`, with `layout`;
        // the caller's contract on `new_size` is the same for `A`.
        let moved = unsafe { self.0.realloc(block, layout, new_size) };
        if !moved.is_null() && COUNTING.load(Relaxed) {
            add(signed(new_size) - signed(layout.size()));
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::System;

    use super::*;

    // The test binary's own allocator counts, so that the test reads real figures.
    #[global_allocator]
    static ALLOCATOR: Counting<System> = Counting(System);

    #[test]
    fn what_is_held_is_counted_and_what_is_freed_is_not() {
        start_counting();
        let before = allocated().expect("this binary's allocator counts");
        let held: Vec<u8> = Vec::with_capacity(1 << 20);
        let grown = allocated().unwrap();
        // Other tests' threads may allocate meanwhile: a megabyte stands out.
        assert!(
            grown >= before + (1 << 20) - (64 << 10),
            "{before} → {grown}"
        );
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| vec![0u8; 1 << 20]))
            .collect();
        let blocks: Vec<Vec<u8>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let more = allocated().unwrap();
        assert!(more >= grown + (4 << 20) - (64 << 10), "{grown} → {more}");
        drop(blocks);
        drop(held);
        let after = allocated().unwrap();
        assert!(after < before + (256 << 10), "{before} → {after}");
    }
}
