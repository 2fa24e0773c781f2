//! A batch loss handed its workspace allocates nothing proportional to N·M: once the
//! workspace has seen the sizes, a call takes only what faer's GEMM packs (a few panels of
//! the D-wide operands, once per thread) and, on threads, rayon's bookkeeping.
#![allow(unsafe_code)] // the counting allocator below

use marginloss::Rows;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use marginloss::batch::{
    Batch, BatchAllTriplet, BatchHardTriplet, BatchReduction, PairContrastive, SemihardTriplet, Workspace,
};

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

type Call<'a> = &'a dyn Fn(&mut Workspace<f32>, &mut [f32], &mut [f32]);

fn allocated(f: impl FnOnce()) -> usize {
    let before = BYTES.load(Ordering::SeqCst);
    f();
    BYTES.load(Ordering::SeqCst) - before
}

#[test]
fn a_call_handed_its_workspace_allocates_nothing_proportional_to_n_squared() {
    let dim = 16;
    for n in [512usize, 1024] {
        let x: Vec<f32> = (0..n * dim).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let y: Vec<i64> = (0..n).map(|i| (i % 64) as i64).collect();
        let batch = Batch::new(Rows::new(&x, n, dim).unwrap(), &y);
        let (mut out, mut g) = (vec![0.0f32; n], vec![0.0f32; n * dim]);
        let mut ws = Workspace::new();
        let r = BatchReduction::Mean;
        let calls: [Call<'_>; 4] = [
            &|ws, o, g| {
                BatchAllTriplet::new().forward_backward(&batch, r, &[1.0], &mut o[..1], g, None, ws).unwrap();
            },
            &|ws, o, g| {
                BatchHardTriplet::new()
                    .forward_backward(&batch, r, &[1.0], &mut o[..1], g, None, ws)
                    .unwrap();
            },
            &|ws, o, g| {
                SemihardTriplet::new().forward_backward(&batch, r, &[1.0], &mut o[..1], g, None, ws).unwrap();
            },
            &|ws, o, g| {
                PairContrastive::new().forward_backward(&batch, r, &[1.0], &mut o[..1], g, None, ws).unwrap();
            },
        ];
        for (k, call) in calls.iter().enumerate() {
            // The first call sizes the workspace. Then the fewest bytes of three calls: a
            // GEMM on a thread that has not run one before grows that thread's packing
            // buffer once (which thread runs which part is rayon's choice), where an N·M
            // allocation would recur every call.
            call(&mut ws, &mut out, &mut g);
            let bytes = (0..3).map(|_| allocated(|| call(&mut ws, &mut out, &mut g))).min().unwrap_or(0);
            let n2 = n * n * 4;
            assert!(bytes < n2 / 16, "loss {k} n={n}: {bytes} bytes (N² f32 = {n2})");
        }
        assert!(ws.bytes() >= n * n * 4, "the workspace holds the N x N matrix");
    }
}
