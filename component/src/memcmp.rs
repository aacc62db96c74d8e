//! `memcmp` and `bcmp` for the guest, eight bytes at a time.
//!
//! Why: on `wasm32-unknown-unknown` they come from compiler-builtins, which compares one
//! byte per loop turn, while a native build calls glibc's vectorised ones. Every string
//! comparison goes through them: the binary search of `FlinkConfig::get`, serde's field
//! names, map keys. In a guest profile of the legacy `flink-conf.yaml` lint, `memcmp`
//! alone was 9 % of the time (BENCHMARKS.md, issue 16). Unaligned 8-byte loads are cheap
//! in Wasm: Cranelift emits one x86 `mov` for each.
//!
//! The linker takes these over compiler-builtins' weak definitions.

use core::ptr::read_unaligned;

/// Compares `n` bytes: negative, zero or positive as C's `memcmp`.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes, as for C's `memcmp`.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's guarantee, passed on.
    unsafe { compare(a, b, n) }
}

/// Whether `n` bytes differ: zero when equal, as C's `bcmp` (LLVM calls it for `==`).
///
/// # Safety
/// As [`memcmp`].
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's guarantee, passed on.
    unsafe { compare(a, b, n) }
}

/// The comparison both exports share (a plain function, so native tests can run it).
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut at = 0;
    while at + 8 <= n {
        // SAFETY: `at + 8 <= n`, and both pointers are valid for `n` bytes.
        let (x, y) = unsafe {
            (
                read_unaligned(a.add(at).cast::<u64>()),
                read_unaligned(b.add(at).cast::<u64>()),
            )
        };
        if x != y {
            // Wasm is little-endian: byte-swapped, the first differing byte is the
            // most significant, so the numbers order as the bytes do.
            return if x.swap_bytes() < y.swap_bytes() { -1 } else { 1 };
        }
        at += 8;
    }
    while at < n {
        // SAFETY: `at < n`.
        let (x, y) = unsafe { (*a.add(at), *b.add(at)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        at += 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::compare;

    fn sign(a: &[u8], b: &[u8]) -> i32 {
        assert_eq!(a.len(), b.len());
        // SAFETY: both slices hold `a.len()` bytes.
        unsafe { compare(a.as_ptr(), b.as_ptr(), a.len()) }.signum()
    }

    #[test]
    fn orders_as_slices_do_at_every_length_and_position() {
        for len in 0..40 {
            let base: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            assert_eq!(sign(&base, &base), 0, "equal, length {len}");
            for at in 0..len {
                for delta in [1u8, 0x80, 0xff] {
                    let mut other = base.clone();
                    other[at] = other[at].wrapping_add(delta);
                    let expected = base.cmp(&other) as i32;
                    assert_eq!(sign(&base, &other), expected, "length {len}, byte {at}, +{delta}");
                    assert_eq!(
                        sign(&other, &base),
                        -expected,
                        "length {len}, byte {at}, +{delta}, swapped"
                    );
                }
            }
        }
    }
}
