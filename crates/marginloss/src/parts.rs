//! The fixed tree of parts every driver cuts its work into.
//!
//! Inputs are cut into parts whose size depends only on the problem size (never on the
//! thread count); the parts form a fixed binary tree (split at the middle part, results
//! combined left then right), so a reduced result is bit-for-bit the same with one
//! thread or many. With the `rayon` feature the two halves of a node run in parallel
//! once the work is large enough to pay for it.

/// Elements (items × elements per item) below which work stays in one part.
const MIN_PART: usize = 1 << 16;
/// At most this many parts.
const MAX_PARTS: usize = 64;

/// A bundle of arguments that can be cut after `mid` items: slices split at `mid`, an
/// empty slice (an argument the pass does not use) stays empty on both sides, and
/// [`Chunks`] splits at `mid` rows.
pub(crate) trait Split: Sized + Send {
    /// The two halves: items `..mid` and `mid..`.
    fn split_at(self, mid: usize) -> (Self, Self);
}

impl<T: Sync> Split for &[T] {
    #[inline]
    fn split_at(self, mid: usize) -> (Self, Self) {
        if self.is_empty() {
            (self, self)
        } else {
            <[T]>::split_at(self, mid)
        }
    }
}

impl<T: Send> Split for &mut [T] {
    #[inline]
    fn split_at(self, mid: usize) -> (Self, Self) {
        if self.is_empty() {
            (self, &mut [])
        } else {
            self.split_at_mut(mid)
        }
    }
}

/// Rows of `.1` elements each, stored contiguously in `.0`.
#[derive(Clone, Copy)]
pub(crate) struct Chunks<S>(pub S, pub usize);

impl<S: Split> Split for Chunks<S> {
    #[inline]
    fn split_at(self, mid: usize) -> (Self, Self) {
        let (a, b) = self.0.split_at(mid * self.1);
        (Chunks(a, self.1), Chunks(b, self.1))
    }
}

macro_rules! split_tuple {
    ($($v:ident : $t:ident),+) => {
        impl<$($t: Split),+> Split for ($($t,)+) {
            #[inline]
            fn split_at(self, mid: usize) -> (Self, Self) {
                let ($($v,)+) = self;
                $(let $v = Split::split_at($v, mid);)+
                (($($v.0,)+), ($($v.1,)+))
            }
        }
    };
}
split_tuple!(a: A, b: B);
split_tuple!(a: A, b: B, c: C);
split_tuple!(a: A, b: B, c: C, d: D);
split_tuple!(a: A, b: B, c: C, d: D, e: E);
split_tuple!(a: A, b: B, c: C, d: D, e: E, f: F);
split_tuple!(a: A, b: B, c: C, d: D, e: E, f: F, g: G);
split_tuple!(a: A, b: B, c: C, d: D, e: E, f: F, g: G, h: H);

/// Runs `leaf` over the parts of `items` items of `width` elements each (the arguments
/// bundled in `args`), combining the parts' results with `join` in the fixed tree.
#[inline]
pub(crate) fn run<B: Split, R: Send>(
    items: usize,
    width: usize,
    args: B,
    leaf: &(impl Fn(B) -> R + Sync),
    join: &(impl Fn(R, R) -> R + Sync),
) -> R {
    let width = width.max(1);
    let part = items.div_ceil(MAX_PARTS).max(MIN_PART.div_ceil(width)).next_multiple_of(8);
    node(items, part, parallel(items.saturating_mul(width)), args, leaf, join)
}

fn node<B: Split, R: Send>(
    items: usize,
    part: usize,
    par: bool,
    args: B,
    leaf: &(impl Fn(B) -> R + Sync),
    join: &(impl Fn(R, R) -> R + Sync),
) -> R {
    let parts = items.div_ceil(part);
    if parts <= 1 {
        return leaf(args);
    }
    let mid = parts / 2 * part;
    let (l, r) = args.split_at(mid);
    let (a, b) =
        join_if(par, || node(mid, part, par, l, leaf, join), || node(items - mid, part, par, r, leaf, join));
    join(a, b)
}

/// Runs `a` and `b`, on two threads when `par` (rayon's `join`), else one after the other.
#[inline]
fn join_if<RA: Send, RB: Send>(
    par: bool,
    a: impl FnOnce() -> RA + Send,
    b: impl FnOnce() -> RB + Send,
) -> (RA, RB) {
    #[cfg(feature = "rayon")]
    if par {
        return rayon::join(a, b);
    }
    let _ = par;
    (a(), b())
}

/// Whether `elements` elements of work are worth spreading over threads.
#[inline]
fn parallel(elements: usize) -> bool {
    #[cfg(feature = "rayon")]
    {
        elements > MIN_PART && rayon::current_num_threads() > 1
    }
    #[cfg(not(feature = "rayon"))]
    {
        let _ = elements;
        false
    }
}
