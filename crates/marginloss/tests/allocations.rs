//! The fused kernels allocate nothing proportional to N: the only heap memory a call may
//! take is a constant (at most 64 partial sums when it runs on threads, a label mask for
//! more than 4096 classes), never a buffer the size of the input.
#![allow(unsafe_code)] // the counting allocator below

use marginloss::Rows;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use marginloss::{
    CosineDistance, CosineEmbedding, CosineSimilarity, HingeEmbedding, MarginRanking, MultiMargin, Reduction,
    TripletMargin,
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

/// Bytes allocated while `f` runs.
fn allocated(f: impl FnOnce()) -> usize {
    let before = BYTES.load(Ordering::SeqCst);
    f();
    BYTES.load(Ordering::SeqCst) - before
}

#[test]
fn fused_kernels_allocate_nothing_proportional_to_n() {
    for n in [100_000usize, 1_000_000] {
        let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.3).collect();
        let y: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { 1.0 } else { -1.0 }).collect();
        let (mut out, mut g, mut g2) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        let he = HingeEmbedding::new();
        // warm up rayon's pool (a one-off allocation when the feature is on)
        he.forward_backward(&x, &y, Reduction::Mean, &[1.0], &mut out[..1], &mut g).unwrap();
        for r in [Reduction::Mean, Reduction::Sum] {
            let bytes = allocated(|| he.forward_backward(&x, &y, r, &[1.0], &mut out[..1], &mut g).unwrap());
            assert!(bytes <= 4096, "hinge_embedding {r:?} n={n}: {bytes} bytes");
        }
        let bytes = allocated(|| he.forward_backward(&x, &y, Reduction::None, &y, &mut out, &mut g).unwrap());
        assert!(bytes <= 4096, "hinge_embedding none n={n}: {bytes} bytes");
        let bytes = allocated(|| {
            MarginRanking::new()
                .forward_backward(&x, &x, &y, Reduction::Mean, &[1.0], &mut out[..1], &mut g, &mut g2)
                .unwrap()
        });
        assert!(bytes <= 4096, "margin_ranking n={n}: {bytes} bytes");

        // rows: (n/100, 100)
        let (rows, d) = (n / 100, 100);
        let bytes = allocated(|| {
            CosineSimilarity::new()
                .forward_backward(mat(&x, d), mat(&x, d), &[1.0], &mut out[..rows], &mut g, &mut g2)
                .unwrap()
        });
        assert!(bytes <= 4096, "cosine_similarity n={n}: {bytes} bytes");
        let t = &y[..rows];
        let bytes = allocated(|| {
            HingeEmbedding::new()
                .on(CosineDistance::default())
                .forward_backward(
                    mat(&x, d),
                    mat(&x, d),
                    t,
                    Reduction::Mean,
                    &[1.0],
                    &mut out[..1],
                    &mut g,
                    &mut g2,
                )
                .unwrap()
        });
        assert!(bytes <= 4096, "hinge_embedding on cosine n={n}: {bytes} bytes");
        let bytes = allocated(|| {
            CosineEmbedding::new()
                .forward_backward(
                    mat(&x, d),
                    mat(&x, d),
                    t,
                    Reduction::Mean,
                    &[1.0],
                    &mut out[..1],
                    &mut g,
                    &mut g2,
                )
                .unwrap()
        });
        assert!(bytes <= 4096, "cosine_embedding n={n}: {bytes} bytes");
        let mut g3 = vec![0.0f32; n];
        let bytes = allocated(|| {
            TripletMargin::new()
                .forward_backward(
                    mat(&x, d),
                    mat(&x, d),
                    mat(&x, d),
                    Reduction::Mean,
                    &[1.0],
                    &mut out[..1],
                    &mut g,
                    &mut g2,
                    &mut g3,
                )
                .unwrap()
        });
        assert!(bytes <= 4096, "triplet_margin n={n}: {bytes} bytes");
        let cls: Vec<i64> = (0..rows as i64).map(|i| i % d as i64).collect();
        let bytes = allocated(|| {
            MultiMargin::new()
                .forward_backward(mat(&x, d), &cls, None, Reduction::Mean, &[1.0], &mut out[..1], &mut g)
                .unwrap()
        });
        assert!(bytes <= 4096, "multi_margin n={n}: {bytes} bytes");
    }
}

/// `x` as rows of `cols` elements (as many rows as fit): test support.
fn mat<T>(x: &[T], cols: usize) -> Rows<'_, T> {
    let rows = x.len().checked_div(cols).unwrap_or(0);
    Rows::new(x, rows, cols).expect("a whole number of rows")
}
