//! Runtime selection of the widest vector instructions the CPU has.
//!
//! The kernels are plain Rust written so that the optimiser vectorises them; compiled for
//! the x86-64 baseline that means SSE2 (four `f32` lanes, no FMA). [`vectorize`] runs a
//! kernel inside a function compiled with AVX2 and FMA enabled (pulp's `Arch`, which
//! checks the CPU once), so the same loop gets eight-lane instructions where the
//! machine has them, and the baseline code elsewhere. The kernels never call `mul_add`
//! and the optimiser does not contract `a * b + c` on its own, so every element's
//! arithmetic — and every sum, whose order the kernels fix — is bit-for-bit the same on
//! either path.

/// Runs `op` with the CPU's widest supported vector instructions enabled. `op`'s
/// `with_simd` and everything it calls must be `#[inline(always)]`: a function the
/// optimiser keeps out of line is compiled for the baseline only.
#[inline(always)]
pub(crate) fn vectorize<Op: pulp::WithSimd>(op: Op) -> Op::Output {
    pulp::Arch::new().dispatch(op)
}
