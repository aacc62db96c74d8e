//! Links the policy module with 4 MiB of initial linear memory (Rust's default is about
//! 1 MiB). The guest's allocator (src/arena.rs) bumps through what lies past the stack
//! and the static data, about 2.8 MiB; a review fits in that, so the guest never runs
//! `memory.grow`. (Rust's default allocator never used that space: it took memory
//! only by growing, so every call grew until issue 16.) Each grow
//! in a pooled instance costs an mprotect now and another when the slot is reset,
//! and both shoot down TLB entries on every core: measured at about a fifth of the
//! webhook's CPU under load (BENCHMARKS.md). Untouched pages cost nothing: the pool
//! maps the image copy-on-write and resets only the pages written.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo::rustc-cdylib-link-arg=--initial-memory=4194304");
    }
}
