//! Fuzz targets over every public loss and distance entry point (issue 10), on stable Rust
//! with bolero. Under `cargo test` each target runs bolero's random engine for a short,
//! fixed budget (`BOLERO_RANDOM_ITERATIONS`, default below); `tools/fuzz.sh` runs them
//! coverage-guided (`cargo bolero test … --engine libfuzzer`) for long campaigns.
//!
//! Each input is decoded from the fuzzer's bytes: the element type (f32/f64), the mode,
//! the reduction, lengths, shapes and classes (0 included), values drawn from a palette
//! of the awkward ones (NaN, ±inf, ±0, denormals, f32::MAX, 1e300, …) besides ordinary
//! ones, options (NaN, huge, negative), label encodings, kink conventions, and buffer
//! lengths that are sometimes wrong. Every call checks:
//!
//! 1. no panic (bolero reports one as a failure);
//! 2. `forward`, `forward_into` and `forward_backward` agree: the same bits (any NaN equal
//!    to any NaN), or errors with
//!    the same message; the fused call may additionally refuse a non-finite upstream or a
//!    gradient that overflows, which the forward call never computes;
//! 3. an error's index and value point at an element that really offends (a non-finite
//!    value, a value outside the domain, an out-of-range class, or — for an overflow — a
//!    loss or gradient that torch-compat mode computes as non-finite there);
//! 4. strict mode never returns a non-finite loss or gradient;
//! 5. a repeated call gives the same bits; every message is one line.
//!
//! `fuzz_batch` does the same for the batch losses (embeddings, labels, an optional
//! reference set): forward and forward_backward agree, a reused workspace gives the same
//! bits, strict mode never returns a non-finite loss or gradient from a finite upstream.

use marginloss::batch::{
    Batch, BatchAllTriplet, BatchDistance, BatchHardTriplet, BatchReduction, PairContrastive,
    SemihardTriplet, Workspace,
};
use marginloss::{
    multilabel_target_from_indicator, multilabel_target_from_sets, Contrastive, CosineDistance,
    CosineEmbedding, CosineSimilarity, Error, Float, Hinge, HingeEmbedding, Kink, Labels, MarginRanking,
    Mode, MultiMargin, MulticlassHinge, MultilabelMargin, MultilabelSoftMargin, PairwiseDistance, Reduction,
    Result, Rows, SoftMargin, SquaredHinge, TripletMargin, TripletMarginWithDistance,
};

// ---------------------------------------------------------------------------------------
// Decoding the fuzzer's bytes

/// Reads choices off the fuzzer's bytes; past the end every read is 0 (so short inputs
/// decode to small, valid-looking calls).
struct Src<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Src<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Src { bytes, at: 0 }
    }
    fn u8(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    /// True one time in `n`.
    fn one_in(&mut self, n: u8) -> bool {
        self.u8().is_multiple_of(n)
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    /// `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (usize::from(self.u8()) | usize::from(self.u8()) << 8) % n
    }
    /// A length: mostly small, sometimes across a 64-element block.
    fn len(&mut self) -> usize {
        match self.u8() % 8 {
            0 => 0,
            1..=4 => self.below(9),
            5 | 6 => self.below(40),
            _ => self.below(200),
        }
    }
    /// A value from the palette of awkward numbers, or an ordinary one.
    fn value(&mut self) -> f64 {
        match self.u8() % 24 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => 0.0,
            4 => -0.0,
            5 => 5e-324,
            6 => f64::from(f32::from_bits(1)),
            7 => f64::from(f32::MAX),
            8 => -f64::from(f32::MAX),
            9 => 1e300,
            10 => -1e300,
            11 => 1.0,
            12 => -1.0,
            13 => 1e20,
            14 => -3e19,
            15 => 0.5,
            16 => 2.0,
            _ => f64::from(i16::from_le_bytes([self.u8(), self.u8()])) / 64.0,
        }
    }
    /// An ordinary value, occasionally an awkward one (so that most calls pass the
    /// checks and reach the arithmetic).
    fn mostly_finite(&mut self) -> f64 {
        if self.one_in(16) {
            self.value()
        } else {
            f64::from(i16::from_le_bytes([self.u8(), self.u8()])) / 1024.0
        }
    }
    fn values(&mut self, n: usize) -> Vec<f64> {
        let wild = self.bool();
        (0..n).map(|_| if wild { self.value() } else { self.mostly_finite() }).collect()
    }
    /// A binary label: mostly valid in one of the encodings.
    fn label(&mut self) -> f64 {
        match self.u8() % 10 {
            0..=3 => 1.0,
            4 | 5 => -1.0,
            6 | 7 => 0.0,
            8 => 2.0,
            _ => self.value(),
        }
    }
    /// Values for a buffer whose right length is `right` (sometimes wrong).
    fn values_for(&mut self, right: usize) -> Vec<f64> {
        let n = self.buffer(right);
        self.values(n)
    }
    fn labels_for(&mut self, right: usize) -> Vec<f64> {
        let n = self.buffer(right);
        self.labels_vec(n)
    }
    fn labels_vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.label()).collect()
    }
    /// An option: mostly ordinary, sometimes NaN, huge or negative.
    fn option(&mut self, ordinary: f64) -> f64 {
        match self.u8() % 8 {
            0 => self.value(),
            1 => -ordinary,
            2 => 1e39,
            _ => ordinary,
        }
    }
    fn mode(&mut self) -> Mode {
        if self.bool() {
            Mode::Strict
        } else {
            Mode::TorchCompat
        }
    }
    fn reduction(&mut self) -> Reduction {
        [Reduction::None, Reduction::Mean, Reduction::Sum][self.below(3)]
    }
    fn encoding(&mut self) -> Labels {
        if self.one_in(4) {
            Labels::ZeroOne
        } else {
            Labels::PlusMinusOne
        }
    }
    fn kink(&mut self) -> Kink {
        [Kink::Zero, Kink::Half, Kink::One][self.below(3)]
    }
    /// A buffer length: `right`, or now and then one off (or 0).
    fn buffer(&mut self, right: usize) -> usize {
        match self.u8() % 16 {
            0 => right + 1,
            1 => right.saturating_sub(1),
            2 => 0,
            _ => right,
        }
    }
    /// An upstream gradient for `rows` outputs under `r`: 1 value, or one per row for
    /// `None`; sometimes wrong or non-finite.
    fn upstream(&mut self, r: Reduction, rows: usize) -> Vec<f64> {
        let n = match r {
            Reduction::None if self.bool() => rows,
            _ => 1,
        };
        let n = self.buffer(n);
        (0..n).map(|_| if self.one_in(8) { self.value() } else { self.mostly_finite() }).collect()
    }
    fn class_index(&mut self, classes: usize) -> i64 {
        match self.u8() % 12 {
            0 => -1,
            1 => classes as i64,
            2 => i64::MIN,
            3 => i64::MAX,
            _ => self.below(classes.max(1)) as i64,
        }
    }
}

fn to<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::of(x)).collect()
}

/// `v` rounded to `T` and back: the values the call really received.
fn rd<T: Float>(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| T::of(x).f64()).collect()
}

/// The bits of each value, every NaN as the one canonical NaN (a NaN's sign and payload
/// carry no meaning and may differ between two evaluation orders).
fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| if x.is_nan() { f64::NAN.to_bits() } else { x.f64().to_bits() }).collect()
}

// ---------------------------------------------------------------------------------------
// The invariants

/// The outcome of one call: the loss, the gradients (empty for a forward call).
type Outcome<T> = Result<(Vec<T>, Vec<Vec<T>>)>;

/// The named arguments of a call, for checking where an error points.
struct Args<'a> {
    floats: Vec<(&'static str, Vec<f64>)>,
    ints: Vec<(&'static str, &'a [i64])>,
}

impl Args<'_> {
    fn float(&self, name: &str) -> Option<&[f64]> {
        self.floats.iter().find(|(n, _)| *n == name).map(|(_, v)| &v[..])
    }
    fn int(&self, name: &str) -> Option<&[i64]> {
        self.ints.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

fn same_value(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Checks that `e` points at an element that offends. `compat` is the same call in
/// torch-compat mode with `Reduction::None` (per-element losses) and with the call's own
/// reduction (gradients), where they could be computed.
fn check_error_points(what: &str, e: &Error, args: &Args<'_>, compat: &CompatView) {
    let text = e.to_string();
    assert!(!text.contains('\n'), "{what}: a message of more than one line: {text}");
    match e {
        Error::NonFinite { arg, index, value, .. } => {
            let v = args.float(arg).unwrap_or_else(|| panic!("{what}: {text}: no argument {arg}"));
            let got = v.get(*index).unwrap_or_else(|| panic!("{what}: {text}: index past {arg}"));
            assert!(!got.is_finite(), "{what}: {text}: {arg}[{index}] = {got} is finite");
            assert!(same_value(*got, value.0), "{what}: {text}: {arg}[{index}] = {got}");
        }
        Error::Domain { arg, index, value, .. } => {
            if let Some(v) = args.float(arg) {
                let got = v.get(*index).unwrap_or_else(|| panic!("{what}: {text}: index past {arg}"));
                assert!(same_value(*got, value.0), "{what}: {text}: {arg}[{index}] = {got}");
            } else if let Some(v) = args.int(arg) {
                let got = v.get(*index).unwrap_or_else(|| panic!("{what}: {text}: index past {arg}"));
                assert_eq!(*got as f64, value.0, "{what}: {text}");
            } else {
                panic!("{what}: {text}: no argument {arg}");
            }
        }
        Error::ClassIndex { arg, index, value, classes, .. } => {
            let v = args.int(arg).unwrap_or_else(|| panic!("{what}: {text}: no argument {arg}"));
            assert_eq!(v.get(*index), Some(value), "{what}: {text}");
            assert!(*value < 0 || *value as u64 >= *classes as u64, "{what}: {text}: in range");
        }
        Error::Overflow { quantity, arg, index: Some(i), .. } => {
            let v = match *quantity {
                "loss" => compat.losses.as_ref(),
                _ => compat.grads.as_ref().and_then(|g| g.iter().find(|(n, _)| n == arg).map(|(_, v)| v)),
            };
            if let Some(v) = v {
                let got = v.get(*i).unwrap_or_else(|| panic!("{what}: {text}: index past {arg}"));
                assert!(!got.is_finite(), "{what}: {text}: torch-compat computes {got} there");
            }
        }
        _ => {}
    }
}

/// The torch-compat view of a call, for checking an overflow's index.
#[derive(Default)]
struct CompatView {
    losses: Option<Vec<f64>>,
    grads: Option<Vec<(&'static str, Vec<f64>)>>,
}

#[allow(clippy::too_many_arguments)]
/// The invariants over one call in each API: `fwd` (forward), `into` (forward_into) and
/// `fb` (forward_backward).
fn check_outcomes<T: Float>(
    what: &str,
    mode: Mode,
    args: &Args<'_>,
    grad_names: &[&'static str],
    fwd: &dyn Fn() -> Result<Vec<T>>,
    into: &dyn Fn() -> Result<Vec<T>>,
    fb: &dyn Fn() -> Outcome<T>,
    compat: &dyn Fn() -> CompatView,
) {
    let (f1, f2, i1, b1, b2) = (fwd(), fwd(), into(), fb(), fb());
    // Repetition gives the same bits (or the same error).
    let key = |r: &Result<Vec<T>>| r.as_ref().map(|v| bits(v)).map_err(|e| e.to_string());
    assert_eq!(key(&f1), key(&f2), "{what}: forward is not repeatable");
    let keyb = |r: &Outcome<T>| {
        r.as_ref()
            .map(|(v, g)| (bits(v), g.iter().map(|g| bits(g)).collect::<Vec<_>>()))
            .map_err(|e| e.to_string())
    };
    assert_eq!(keyb(&b1), keyb(&b2), "{what}: forward_backward is not repeatable");
    // forward and forward_into agree exactly when their buffers are right.
    if let (Ok(a), Ok(b)) = (&f1, &i1) {
        assert_eq!(bits(a), bits(b), "{what}: forward and forward_into differ");
    }
    // forward and forward_backward agree, except for what only the fused call computes
    // (or a wrongly sized buffer only one of them was given).
    match (&f1, &b1) {
        (Ok(a), Ok((b, _))) => assert_eq!(bits(a), bits(b), "{what}: forward and forward_backward differ"),
        (Err(a), Err(b)) => {
            let fused_only = matches!(b, Error::Buffer { .. })
                || matches!(b, Error::NonFinite { arg: "upstream", .. })
                || matches!(b, Error::Overflow { quantity: "gradient", .. });
            if !fused_only {
                assert_eq!(
                    a.to_string(),
                    b.to_string(),
                    "{what}: forward and forward_backward fail differently"
                );
            }
        }
        (Ok(_), Err(b)) => assert!(
            matches!(b, Error::Buffer { .. })
                || matches!(b, Error::NonFinite { arg: "upstream", .. })
                || matches!(b, Error::Overflow { quantity: "gradient", .. }),
            "{what}: forward succeeds, forward_backward fails: {b}"
        ),
        (Err(a), Ok(_)) => panic!("{what}: forward fails ({a}), forward_backward succeeds"),
    }
    // Strict mode returns only finite numbers.
    if mode == Mode::Strict {
        if let Ok(v) = &f1 {
            assert!(v.iter().all(|x| x.is_finite()), "{what}: strict forward returned {v:?}");
        }
        if let Ok((v, g)) = &b1 {
            assert!(v.iter().all(|x| x.is_finite()), "{what}: strict forward_backward returned {v:?}");
            for (name, g) in grad_names.iter().zip(g) {
                assert!(g.iter().all(|x| x.is_finite()), "{what}: strict gradient of {name}: {g:?}");
            }
        }
    }
    // Errors point at a real offender.
    let errors: Vec<&Error> =
        [f1.as_ref().err(), i1.as_ref().err(), b1.as_ref().err()].into_iter().flatten().collect();
    if !errors.is_empty() {
        let view = if errors.iter().any(|e| matches!(e, Error::Overflow { .. })) {
            compat()
        } else {
            CompatView::default()
        };
        for e in errors {
            check_error_points(what, e, args, &view);
        }
    }
}

fn f64s<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.f64()).collect()
}

// ---------------------------------------------------------------------------------------
// Element-wise losses

#[derive(Clone, Copy, Debug)]
enum Pointwise {
    Hinge(Hinge),
    SquaredHinge(SquaredHinge),
    SoftMargin(SoftMargin),
    HingeEmbedding(HingeEmbedding),
}

impl Pointwise {
    fn with_mode(self, mode: Mode) -> Self {
        match self {
            Pointwise::Hinge(l) => Pointwise::Hinge(l.mode(mode)),
            Pointwise::SquaredHinge(l) => Pointwise::SquaredHinge(l.mode(mode)),
            Pointwise::SoftMargin(l) => Pointwise::SoftMargin(l.mode(mode)),
            Pointwise::HingeEmbedding(l) => Pointwise::HingeEmbedding(l.mode(mode)),
        }
    }
    fn forward<T: Float>(&self, x: &[T], t: &[T], r: Reduction) -> Result<Vec<T>> {
        let o = match self {
            Pointwise::Hinge(l) => l.forward(x, t, r),
            Pointwise::SquaredHinge(l) => l.forward(x, t, r),
            Pointwise::SoftMargin(l) => l.forward(x, t, r),
            Pointwise::HingeEmbedding(l) => l.forward(x, t, r),
        };
        o.map(|o| o.into_vec())
    }
    fn forward_into<T: Float>(&self, x: &[T], t: &[T], r: Reduction, out: &mut [T]) -> Result<()> {
        match self {
            Pointwise::Hinge(l) => l.forward_into(x, t, r, out),
            Pointwise::SquaredHinge(l) => l.forward_into(x, t, r, out),
            Pointwise::SoftMargin(l) => l.forward_into(x, t, r, out),
            Pointwise::HingeEmbedding(l) => l.forward_into(x, t, r, out),
        }
    }
    #[allow(clippy::too_many_arguments)]
    fn forward_backward<T: Float>(
        &self,
        x: &[T],
        t: &[T],
        r: Reduction,
        up: &[T],
        out: &mut [T],
        g: &mut [T],
    ) -> Result<()> {
        match self {
            Pointwise::Hinge(l) => l.forward_backward(x, t, r, up, out, g),
            Pointwise::SquaredHinge(l) => l.forward_backward(x, t, r, up, out, g),
            Pointwise::SoftMargin(l) => l.forward_backward(x, t, r, up, out, g),
            Pointwise::HingeEmbedding(l) => l.forward_backward(x, t, r, up, out, g),
        }
    }
}

fn pointwise_case<T: Float>(src: &mut Src<'_>) {
    let mode = src.mode();
    let (margin, labels, kink) = (src.option(1.0), src.encoding(), src.kink());
    let loss = match src.below(5) {
        0 => Pointwise::Hinge(Hinge::new().margin(margin).labels(labels).kink(kink)),
        1 => Pointwise::SquaredHinge(SquaredHinge::new().margin(margin).labels(labels)),
        2 => Pointwise::SoftMargin(SoftMargin::new().labels(labels)),
        3 => Pointwise::HingeEmbedding(HingeEmbedding::new().margin(margin).labels(labels).kink(kink)),
        _ => return margin_ranking_case::<T>(src, mode, margin, labels, kink),
    }
    .with_mode(mode);
    let n = src.len();
    let x = src.values(n);
    let nt = if src.one_in(16) { src.len() } else { n };
    let t = src.labels_vec(nt);
    let r = src.reduction();
    let up = src.upstream(r, n);
    let (out_len, grad_len) = (src.buffer(r.output_len(n)), src.buffer(n));
    let (xt, tt, upt) = (to::<T>(&x), to::<T>(&t), to::<T>(&up));
    let what = format!("{loss:?} {} n={n} {r:?}", T::DTYPE);
    let args = Args {
        floats: vec![("input", rd::<T>(&x)), ("target", rd::<T>(&t)), ("upstream", rd::<T>(&up))],
        ints: vec![],
    };
    check_outcomes::<T>(
        &what,
        mode,
        &args,
        &["input"],
        &|| loss.forward(&xt, &tt, r),
        &|| {
            let mut out = vec![T::zero(); out_len];
            loss.forward_into(&xt, &tt, r, &mut out).map(|()| out)
        },
        &|| {
            let (mut out, mut g) = (vec![T::zero(); out_len], vec![T::zero(); grad_len]);
            loss.forward_backward(&xt, &tt, r, &upt, &mut out, &mut g).map(|()| (out, vec![g]))
        },
        &|| {
            let c = loss.with_mode(Mode::TorchCompat);
            let losses = c.forward(&xt, &tt, Reduction::None).ok().map(|v| f64s(&v));
            let (mut out, mut g) = (vec![T::zero(); r.output_len(n)], vec![T::zero(); n]);
            let grads = c
                .forward_backward(&xt, &tt, r, &upt, &mut out, &mut g)
                .ok()
                .map(|()| vec![("input", f64s(&g))]);
            CompatView { losses, grads }
        },
    );
}

fn margin_ranking_case<T: Float>(src: &mut Src<'_>, mode: Mode, margin: f64, labels: Labels, kink: Kink) {
    let l = MarginRanking::new().margin(margin).labels(labels).kink(kink).mode(mode);
    let n = src.len();
    let (x1, x2) = (src.values(n), src.values_for(n));
    let t = src.labels_vec(n);
    let r = src.reduction();
    let up = src.upstream(r, n);
    let (out_len, g1_len, g2_len) = (src.buffer(r.output_len(n)), src.buffer(n), src.buffer(n));
    let (a, b, tt, upt) = (to::<T>(&x1), to::<T>(&x2), to::<T>(&t), to::<T>(&up));
    let what = format!("{l:?} {} n={n} {r:?}", T::DTYPE);
    let args = Args {
        floats: vec![
            ("input1", rd::<T>(&x1)),
            ("input2", rd::<T>(&x2)),
            ("target", rd::<T>(&t)),
            ("upstream", rd::<T>(&up)),
        ],
        ints: vec![],
    };
    check_outcomes::<T>(
        &what,
        mode,
        &args,
        &["input1", "input2"],
        &|| l.forward(&a, &b, &tt, r).map(|o| o.into_vec()),
        &|| {
            let mut out = vec![T::zero(); out_len];
            l.forward_into(&a, &b, &tt, r, &mut out).map(|()| out)
        },
        &|| {
            let (mut out, mut g1, mut g2) =
                (vec![T::zero(); out_len], vec![T::zero(); g1_len], vec![T::zero(); g2_len]);
            l.forward_backward(&a, &b, &tt, r, &upt, &mut out, &mut g1, &mut g2).map(|()| (out, vec![g1, g2]))
        },
        &|| {
            let c = l.mode(Mode::TorchCompat);
            let losses = c.forward(&a, &b, &tt, Reduction::None).ok().map(|v| f64s(v.as_slice()));
            let (mut out, mut g1, mut g2) =
                (vec![T::zero(); r.output_len(n)], vec![T::zero(); n], vec![T::zero(); n]);
            let grads = c
                .forward_backward(&a, &b, &tt, r, &upt, &mut out, &mut g1, &mut g2)
                .ok()
                .map(|()| vec![("input1", f64s(&g1)), ("input2", f64s(&g2))]);
            CompatView { losses, grads }
        },
    );
}

/// Decodes one call of an element-wise loss (hinge, squared hinge, soft margin, hinge
/// embedding, margin ranking) and checks it.
fn pointwise_target(bytes: &[u8]) {
    let mut src = Src::new(bytes);
    if src.bool() {
        pointwise_case::<f32>(&mut src)
    } else {
        pointwise_case::<f64>(&mut src)
    }
}

// ---------------------------------------------------------------------------------------
// Row-pair losses and distances

/// `(N, dim)` row buffers: `dim` in 0..=9 (sometimes large), lengths sometimes ragged.
fn rows(src: &mut Src<'_>) -> (usize, usize, usize) {
    let dim = if src.one_in(8) { src.below(130) } else { src.below(10) };
    let n = src.below(12);
    let len = if src.one_in(16) { src.len() } else { n * dim };
    (n, dim, len)
}

/// The stated shape `(n, dim)` of a row buffer, as `Rows::new` checks it: it must refuse
/// exactly the lengths that are not `n · dim` (then the case ends there).
fn view<T>(x: &[T], n: usize, dim: usize) -> Option<Rows<'_, T>> {
    let r = Rows::new(x, n, dim);
    assert_eq!(r.is_ok(), Some(x.len()) == n.checked_mul(dim), "Rows::new(len {}, {n}, {dim})", x.len());
    if let Err(e) = &r {
        assert!(!e.to_string().contains('\n'), "a message of more than one line: {e}");
    }
    r.ok()
}

/// The shape stated for a second row buffer of the same length: usually the first's, and
/// sometimes its transpose, which a loss must refuse (unless it is the same shape).
fn second_shape(src: &mut Src<'_>, n: usize, dim: usize) -> (usize, usize) {
    if src.one_in(16) {
        (dim, n)
    } else {
        (n, dim)
    }
}

fn pair_case<T: Float>(src: &mut Src<'_>) {
    let mode = src.mode();
    let (margin, labels, kink) = (src.option(0.5), src.encoding(), src.kink());
    let (n, dim, len) = rows(src);
    let (x1, x2) = (src.values(len), src.values_for(len));
    let t = src.labels_for(n);
    let r = src.reduction();
    let up = src.upstream(r, n);
    let (out_len, g1_len, g2_len) = (src.buffer(r.output_len(n)), src.buffer(len), src.buffer(len));
    let (a, b, tt, upt) = (to::<T>(&x1), to::<T>(&x2), to::<T>(&t), to::<T>(&up));
    let (nb, db) = second_shape(src, n, dim);
    let (Some(ra), Some(rb)) = (view(&a, n, dim), view(&b, nb, db)) else { return };
    let args = Args {
        floats: vec![
            ("input1", rd::<T>(&x1)),
            ("input2", rd::<T>(&x2)),
            ("target", rd::<T>(&t)),
            ("upstream", rd::<T>(&up)),
        ],
        ints: vec![],
    };
    macro_rules! run {
        ($l:expr, $compat:expr) => {{
            let l = $l;
            let what = format!("{l:?} {} n={n} dim={dim} {r:?}", T::DTYPE);
            check_outcomes::<T>(
                &what,
                mode,
                &args,
                &["input1", "input2"],
                &|| l.forward(ra, rb, &tt, r).map(|o| o.into_vec()),
                &|| {
                    let mut out = vec![T::zero(); out_len];
                    l.forward_into(ra, rb, &tt, r, &mut out).map(|()| out)
                },
                &|| {
                    let (mut out, mut g1, mut g2) =
                        (vec![T::zero(); out_len], vec![T::zero(); g1_len], vec![T::zero(); g2_len]);
                    l.forward_backward(ra, rb, &tt, r, &upt, &mut out, &mut g1, &mut g2)
                        .map(|()| (out, vec![g1, g2]))
                },
                &|| {
                    let c = $compat;
                    let losses = c.forward(ra, rb, &tt, Reduction::None).ok().map(|v| f64s(v.as_slice()));
                    let (mut out, mut g1, mut g2) =
                        (vec![T::zero(); r.output_len(n)], vec![T::zero(); len], vec![T::zero(); len]);
                    let grads = c
                        .forward_backward(ra, rb, &tt, r, &upt, &mut out, &mut g1, &mut g2)
                        .ok()
                        .map(|()| vec![("input1", f64s(&g1)), ("input2", f64s(&g2))]);
                    CompatView { losses, grads }
                },
            )
        }};
    }
    match src.below(4) {
        0 => {
            let l = CosineEmbedding::new().margin(margin).labels(labels).kink(kink).mode(mode);
            run!(l, l.mode(Mode::TorchCompat))
        }
        1 => {
            let l = Contrastive::new().margin(margin).labels(labels).mode(mode);
            run!(l, l.mode(Mode::TorchCompat))
        }
        2 => {
            let d = PairwiseDistance::new().p(src.option(2.0)).eps(src.option(1e-6));
            let l = HingeEmbedding::new().margin(margin).labels(labels).kink(kink).mode(mode);
            run!(l.on(d), l.mode(Mode::TorchCompat).on(d))
        }
        _ => {
            let mut d = CosineDistance::default();
            d.eps = src.option(1e-8);
            let l = HingeEmbedding::new().margin(margin).labels(labels).kink(kink).mode(mode);
            run!(l.on(d), l.mode(Mode::TorchCompat).on(d))
        }
    }
}

fn distance_case<T: Float>(src: &mut Src<'_>) {
    let mode = src.mode();
    let (n, dim, len) = rows(src);
    let (x1, x2) = (src.values(len), src.values_for(len));
    let up = src.upstream(Reduction::None, n);
    let (out_len, g1_len, g2_len) = (src.buffer(n), src.buffer(len), src.buffer(len));
    let (a, b, upt) = (to::<T>(&x1), to::<T>(&x2), to::<T>(&up));
    let (nb, db) = second_shape(src, n, dim);
    let (Some(ra), Some(rb)) = (view(&a, n, dim), view(&b, nb, db)) else { return };
    let args = Args {
        floats: vec![("input1", rd::<T>(&x1)), ("input2", rd::<T>(&x2)), ("upstream", rd::<T>(&up))],
        ints: vec![],
    };
    macro_rules! run {
        ($d:expr) => {{
            let d = $d;
            let what = format!("{d:?} {} n={n} dim={dim}", T::DTYPE);
            check_outcomes::<T>(
                &what,
                mode,
                &args,
                &["input1", "input2"],
                &|| d.forward(ra, rb),
                &|| {
                    let mut out = vec![T::zero(); out_len];
                    d.forward_into(ra, rb, &mut out).map(|()| out)
                },
                &|| {
                    let (mut out, mut g1, mut g2) =
                        (vec![T::zero(); out_len], vec![T::zero(); g1_len], vec![T::zero(); g2_len]);
                    d.forward_backward(ra, rb, &upt, &mut out, &mut g1, &mut g2).map(|()| (out, vec![g1, g2]))
                },
                &|| {
                    let c = d.mode(Mode::TorchCompat);
                    let losses = c.forward(ra, rb).ok().map(|v| f64s(&v));
                    let (mut out, mut g1, mut g2) =
                        (vec![T::zero(); n], vec![T::zero(); len], vec![T::zero(); len]);
                    let grads = c
                        .forward_backward(ra, rb, &upt, &mut out, &mut g1, &mut g2)
                        .ok()
                        .map(|()| vec![("input1", f64s(&g1)), ("input2", f64s(&g2))]);
                    CompatView { losses, grads }
                },
            )
        }};
    }
    if src.bool() {
        let p = [2.0, 1.0, f64::INFINITY, 3.0, 0.5, 0.0, -1.0, f64::NAN][src.below(8)];
        run!(PairwiseDistance::new().p(p).eps(src.option(1e-6)).mode(mode))
    } else {
        run!(CosineSimilarity::new().eps(src.option(1e-8)).mode(mode))
    }
}

fn triplet_case<T: Float>(src: &mut Src<'_>) {
    let mode = src.mode();
    let (margin, swap, kink) = (src.option(1.0), src.bool(), src.kink());
    let (n, dim, len) = rows(src);
    let (xa, xp, xn) = (src.values(len), src.values_for(len), src.values_for(len));
    let r = src.reduction();
    let up = src.upstream(r, n);
    let (out_len, ga_len, gp_len, gn_len) =
        (src.buffer(r.output_len(n)), src.buffer(len), src.buffer(len), src.buffer(len));
    let (a, p, ng, upt) = (to::<T>(&xa), to::<T>(&xp), to::<T>(&xn), to::<T>(&up));
    let (nn, dn) = second_shape(src, n, dim);
    let (Some(ra), Some(rp), Some(rn)) = (view(&a, n, dim), view(&p, n, dim), view(&ng, nn, dn)) else {
        return;
    };
    let args = Args {
        floats: vec![
            ("anchor", rd::<T>(&xa)),
            ("positive", rd::<T>(&xp)),
            ("negative", rd::<T>(&xn)),
            ("upstream", rd::<T>(&up)),
        ],
        ints: vec![],
    };
    let names = ["anchor", "positive", "negative"];
    macro_rules! run {
        ($l:expr) => {{
            let l = $l;
            let what = format!("{l:?} {} n={n} dim={dim} {r:?}", T::DTYPE);
            check_outcomes::<T>(
                &what,
                mode,
                &args,
                &names,
                &|| l.forward(ra, rp, rn, r).map(|o| o.into_vec()),
                &|| {
                    let mut out = vec![T::zero(); out_len];
                    l.forward_into(ra, rp, rn, r, &mut out).map(|()| out)
                },
                &|| {
                    let mut out = vec![T::zero(); out_len];
                    let (mut ga, mut gp, mut gn) =
                        (vec![T::zero(); ga_len], vec![T::zero(); gp_len], vec![T::zero(); gn_len]);
                    l.forward_backward(ra, rp, rn, r, &upt, &mut out, &mut ga, &mut gp, &mut gn)
                        .map(|()| (out, vec![ga, gp, gn]))
                },
                &|| {
                    let c = l.mode(Mode::TorchCompat);
                    let losses = c.forward(ra, rp, rn, Reduction::None).ok().map(|v| f64s(v.as_slice()));
                    let mut out = vec![T::zero(); r.output_len(n)];
                    let (mut ga, mut gp, mut gn) =
                        (vec![T::zero(); len], vec![T::zero(); len], vec![T::zero(); len]);
                    let grads = c
                        .forward_backward(ra, rp, rn, r, &upt, &mut out, &mut ga, &mut gp, &mut gn)
                        .ok()
                        .map(|()| {
                            vec![("anchor", f64s(&ga)), ("positive", f64s(&gp)), ("negative", f64s(&gn))]
                        });
                    CompatView { losses, grads }
                },
            )
        }};
    }
    match src.below(3) {
        0 => {
            let pn = [2.0, 1.0, f64::INFINITY, 3.0, 0.0, -1.0][src.below(6)];
            run!(TripletMargin::new()
                .margin(margin)
                .p(pn)
                .eps(src.option(1e-6))
                .swap(swap)
                .kink(kink)
                .mode(mode))
        }
        1 => {
            let d = PairwiseDistance::new().p([2.0, 1.0, 0.5][src.below(3)]).eps(src.option(1e-6));
            run!(TripletMarginWithDistance::new(d).margin(margin).swap(swap).kink(kink).mode(mode))
        }
        _ => {
            let mut d = CosineDistance::default();
            d.eps = src.option(1e-8);
            run!(TripletMarginWithDistance::new(d).margin(margin).swap(swap).kink(kink).mode(mode))
        }
    }
}

/// Decodes one call of a loss over row pairs, a distance or a triplet loss, and checks it.
fn rows_target(bytes: &[u8]) {
    let mut src = Src::new(bytes);
    let f32s = src.bool();
    match (src.below(3), f32s) {
        (0, true) => pair_case::<f32>(&mut src),
        (0, false) => pair_case::<f64>(&mut src),
        (1, true) => distance_case::<f32>(&mut src),
        (1, false) => distance_case::<f64>(&mut src),
        (_, true) => triplet_case::<f32>(&mut src),
        (_, false) => triplet_case::<f64>(&mut src),
    }
}

// ---------------------------------------------------------------------------------------
// Class losses and the target helpers

fn class_case<T: Float>(src: &mut Src<'_>) {
    let mode = src.mode();
    let classes = match src.u8() % 16 {
        0 => 0,
        1 => 1,
        2 => src.below(100),
        3 => 4097, // past multilabel_margin's stack scratch
        _ => 2 + src.below(6),
    };
    let n = if classes > 1000 { src.below(2) } else { src.below(8) };
    let len = if src.one_in(16) { src.len() } else { n * classes };
    let x = src.values(len);
    let xt = to::<T>(&x);
    let Some(xr) = view(&xt, n, classes) else { return };
    let r = src.reduction();
    let up = src.upstream(r, n);
    let upt = to::<T>(&up);
    let (out_len, g_len) = (src.buffer(r.output_len(n)), src.buffer(len));
    let which = src.below(4);
    let what = format!("class loss {which} {} classes={classes} n={n} {r:?}", T::DTYPE);
    macro_rules! run {
        ($args:expr, $fwd:expr, $into:expr, $fb:expr, $compat:expr) => {{
            let args = $args;
            check_outcomes::<T>(&what, mode, &args, &["input"], &$fwd, &$into, &$fb, &$compat)
        }};
    }
    match which {
        0..=2 => {
            // One class index per row (multi_margin, multiclass_hinge) or a −1-padded list
            // per row (multilabel_margin).
            let tpr = if which == 2 { classes } else { 1 };
            let nt = if src.one_in(16) { src.len() } else { n * tpr };
            let t: Vec<i64> = (0..nt).map(|_| src.class_index(classes)).collect();
            let weight = if which == 0 && src.bool() { Some(src.values_for(classes)) } else { None };
            let wt = weight.as_ref().map(|w| to::<T>(w));
            let (p, margin) = ([1u32, 2, 0, 3][src.below(4)], src.option(1.0));
            let mut floats = vec![("input", rd::<T>(&x)), ("upstream", rd::<T>(&up))];
            if let Some(w) = &weight {
                floats.push(("weight", rd::<T>(w)));
            }
            let args = Args { floats, ints: vec![("target", &t[..])] };
            let wr = wt.as_deref();
            match which {
                0 => {
                    let l = MultiMargin::new().p(f64::from(p)).margin(margin).mode(mode);
                    run!(
                        args,
                        || l.forward(xr, &t, wr, r).map(|o| o.into_vec()),
                        || {
                            let mut out = vec![T::zero(); out_len];
                            l.forward_into(xr, &t, wr, r, &mut out).map(|()| out)
                        },
                        || {
                            let (mut out, mut g) = (vec![T::zero(); out_len], vec![T::zero(); g_len]);
                            l.forward_backward(xr, &t, wr, r, &upt, &mut out, &mut g).map(|()| (out, vec![g]))
                        },
                        || {
                            let c = l.mode(Mode::TorchCompat);
                            let losses =
                                c.forward(xr, &t, wr, Reduction::None).ok().map(|v| f64s(v.as_slice()));
                            let (mut out, mut g) = (vec![T::zero(); r.output_len(n)], vec![T::zero(); len]);
                            let grads = c
                                .forward_backward(xr, &t, wr, r, &upt, &mut out, &mut g)
                                .ok()
                                .map(|()| vec![("input", f64s(&g))]);
                            CompatView { losses, grads }
                        }
                    )
                }
                1 => {
                    let l = MulticlassHinge::new().margin(margin).mode(mode);
                    run!(
                        args,
                        || l.forward(xr, &t, r).map(|o| o.into_vec()),
                        || {
                            let mut out = vec![T::zero(); out_len];
                            l.forward_into(xr, &t, r, &mut out).map(|()| out)
                        },
                        || {
                            let (mut out, mut g) = (vec![T::zero(); out_len], vec![T::zero(); g_len]);
                            l.forward_backward(xr, &t, r, &upt, &mut out, &mut g).map(|()| (out, vec![g]))
                        },
                        || {
                            let c = l.mode(Mode::TorchCompat);
                            let losses = c.forward(xr, &t, Reduction::None).ok().map(|v| f64s(v.as_slice()));
                            let (mut out, mut g) = (vec![T::zero(); r.output_len(n)], vec![T::zero(); len]);
                            let grads = c
                                .forward_backward(xr, &t, r, &upt, &mut out, &mut g)
                                .ok()
                                .map(|()| vec![("input", f64s(&g))]);
                            CompatView { losses, grads }
                        }
                    )
                }
                _ => {
                    let l = MultilabelMargin::new().mode(mode);
                    run!(
                        args,
                        || l.forward(xr, &t, r).map(|o| o.into_vec()),
                        || {
                            let mut out = vec![T::zero(); out_len];
                            l.forward_into(xr, &t, r, &mut out).map(|()| out)
                        },
                        || {
                            let (mut out, mut g) = (vec![T::zero(); out_len], vec![T::zero(); g_len]);
                            l.forward_backward(xr, &t, r, &upt, &mut out, &mut g).map(|()| (out, vec![g]))
                        },
                        || {
                            let c = l.mode(Mode::TorchCompat);
                            let losses = c.forward(xr, &t, Reduction::None).ok().map(|v| f64s(v.as_slice()));
                            let (mut out, mut g) = (vec![T::zero(); r.output_len(n)], vec![T::zero(); len]);
                            let grads = c
                                .forward_backward(xr, &t, r, &upt, &mut out, &mut g)
                                .ok()
                                .map(|()| vec![("input", f64s(&g))]);
                            CompatView { losses, grads }
                        }
                    )
                }
            }
        }
        _ => {
            let nt = if src.one_in(16) { src.len() } else { len };
            let t: Vec<f64> = (0..nt)
                .map(|_| if src.one_in(8) { src.value() } else { f64::from(src.u8() % 3) / 2.0 })
                .collect();
            let tt = to::<T>(&t);
            let weight = if src.bool() { Some(src.values_for(classes)) } else { None };
            let wt = weight.as_ref().map(|w| to::<T>(w));
            let wr = wt.as_deref();
            let mut floats =
                vec![("input", rd::<T>(&x)), ("target", rd::<T>(&t)), ("upstream", rd::<T>(&up))];
            if let Some(w) = &weight {
                floats.push(("weight", rd::<T>(w)));
            }
            let l = MultilabelSoftMargin::new().mode(mode);
            run!(
                Args { floats, ints: vec![] },
                || l.forward(xr, &tt, wr, r).map(|o| o.into_vec()),
                || {
                    let mut out = vec![T::zero(); out_len];
                    l.forward_into(xr, &tt, wr, r, &mut out).map(|()| out)
                },
                || {
                    let (mut out, mut g) = (vec![T::zero(); out_len], vec![T::zero(); g_len]);
                    l.forward_backward(xr, &tt, wr, r, &upt, &mut out, &mut g).map(|()| (out, vec![g]))
                },
                || {
                    let c = l.mode(Mode::TorchCompat);
                    let losses = c.forward(xr, &tt, wr, Reduction::None).ok().map(|v| f64s(v.as_slice()));
                    let (mut out, mut g) = (vec![T::zero(); r.output_len(n)], vec![T::zero(); len]);
                    let grads = c
                        .forward_backward(xr, &tt, wr, r, &upt, &mut out, &mut g)
                        .ok()
                        .map(|()| vec![("input", f64s(&g))]);
                    CompatView { losses, grads }
                }
            )
        }
    }
}

/// Decodes one call of a class loss (multi margin, multiclass hinge, multilabel margin,
/// multilabel soft margin) or a target helper, and checks it.
fn class_target(bytes: &[u8]) {
    let mut src = Src::new(bytes);
    match src.below(4) {
        0 => class_case::<f32>(&mut src),
        1 => class_case::<f64>(&mut src),
        2 => {
            // multilabel_target_from_sets: any class count (huge ones included).
            let classes = match src.u8() % 6 {
                0 => 0,
                // Past the 2^32-entry cap: an error, never a huge allocation here.
                1 => usize::MAX >> src.below(31),
                _ => src.below(20),
            };
            let sets: Vec<Vec<usize>> = (0..src.below(5))
                .map(|_| {
                    (0..src.below(6))
                        .map(|_| if src.one_in(10) { usize::MAX } else { src.below(24) })
                        .collect()
                })
                .collect();
            match multilabel_target_from_sets(&sets, classes) {
                Ok(t) => {
                    assert_eq!(t.len(), sets.len() * classes);
                    for (row, set) in t.chunks(classes.max(1)).zip(&sets) {
                        assert_eq!(&row[..set.len()], &set.iter().map(|&l| l as i64).collect::<Vec<_>>()[..]);
                        assert!(row[set.len()..].iter().all(|&v| v == -1));
                    }
                }
                Err(e) => assert!(!e.to_string().contains('\n')),
            }
        }
        _ => {
            let classes = src.below(6);
            let ind: Vec<f64> = (0..src.len())
                .map(|_| if src.one_in(6) { src.value() } else { f64::from(src.u8() % 2) })
                .collect();
            match multilabel_target_from_indicator(&ind, classes) {
                Ok(t) => assert_eq!(t.len(), ind.len()),
                Err(e) => {
                    let args = Args { floats: vec![("indicator", ind.clone())], ints: vec![] };
                    check_error_points("multilabel_target_from_indicator", &e, &args, &CompatView::default());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Batch losses: (embeddings, labels[, reference set]) → a loss mined in the batch

/// One of the four batch losses with its options.
#[derive(Debug)]
enum BatchLoss {
    All(BatchAllTriplet),
    Hard(BatchHardTriplet),
    Semi(SemihardTriplet),
    Pair(PairContrastive),
}

impl BatchLoss {
    fn decode(src: &mut Src<'_>) -> Self {
        let distance =
            [BatchDistance::Euclidean, BatchDistance::SquaredEuclidean, BatchDistance::Cosine][src.below(3)];
        let (normalize, mode, soft) = (src.bool(), src.mode(), src.bool());
        match src.below(5) {
            0 => BatchLoss::All(
                BatchAllTriplet::new()
                    .margin(batch_option(src, 0.05))
                    .soft(soft)
                    .distance(distance)
                    .normalize(normalize)
                    .mode(mode),
            ),
            1 | 2 => {
                let l = BatchHardTriplet::new()
                    .margin(batch_option(src, 0.05))
                    .soft(soft)
                    .distance(distance)
                    .normalize(normalize);
                BatchLoss::Hard(if rarely(src, 3) { l.tf_addons() } else { l.mode(mode) })
            }
            3 => BatchLoss::Semi(
                SemihardTriplet::new()
                    .margin(batch_option(src, 1.0))
                    .distance(distance)
                    .normalize(normalize)
                    .mode(mode),
            ),
            _ => BatchLoss::Pair(
                PairContrastive::new()
                    .pos_margin(batch_option(src, 0.0))
                    .neg_margin(batch_option(src, 1.0))
                    .distance(distance)
                    .normalize(normalize)
                    .mode(mode),
            ),
        }
    }

    fn strict(&self) -> bool {
        match self {
            BatchLoss::All(l) => l.mode == Mode::Strict,
            BatchLoss::Hard(l) => l.mode == Mode::Strict,
            BatchLoss::Semi(l) => l.mode == Mode::Strict,
            BatchLoss::Pair(l) => l.mode == Mode::Strict,
        }
    }

    fn forward<T: Float>(&self, b: &Batch<'_, T, i64>, r: BatchReduction) -> Result<marginloss::Output<T>> {
        match self {
            BatchLoss::All(l) => l.forward(b, r),
            BatchLoss::Hard(l) => l.forward(b, r),
            BatchLoss::Semi(l) => l.forward(b, r),
            BatchLoss::Pair(l) => l.forward(b, r),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_backward<T: Float>(
        &self,
        b: &Batch<'_, T, i64>,
        r: BatchReduction,
        up: &[T],
        out: &mut [T],
        g: &mut [T],
        gr: Option<&mut [T]>,
        ws: &mut Workspace<T>,
    ) -> Result<()> {
        match self {
            BatchLoss::All(l) => l.forward_backward(b, r, up, out, g, gr, ws),
            BatchLoss::Hard(l) => l.forward_backward(b, r, up, out, g, gr, ws),
            BatchLoss::Semi(l) => l.forward_backward(b, r, up, out, g, gr, ws),
            BatchLoss::Pair(l) => l.forward_backward(b, r, up, out, g, gr, ws),
        }
        .map(drop)
    }
}

/// An option: its ordinary value, or now and then [`Src::option`]'s awkward ones.
fn batch_option(src: &mut Src<'_>, ordinary: f64) -> f64 {
    if rarely(src, 8) {
        src.option(ordinary)
    } else {
        ordinary
    }
}

/// A buffer length: `right`, or now and then [`Src::buffer`]'s wrong ones.
fn batch_buffer(src: &mut Src<'_>, right: usize) -> usize {
    if rarely(src, 8) {
        src.buffer(right)
    } else {
        right
    }
}

/// True one time in `n`, and false past the end of the bytes (so that a short input
/// decodes to an ordinary batch, not a degenerate one).
fn rarely(src: &mut Src<'_>, n: u8) -> bool {
    src.u8() % n == n - 1
}

/// Class labels for `n` rows: few classes (so that positives exist), now and then one
/// label each, one class, or extreme integers.
fn batch_labels(src: &mut Src<'_>, n: usize) -> Vec<i64> {
    let classes = 1 + src.below(4);
    (0..n)
        .map(|_| match src.u8() % 16 {
            15 => i64::MIN,
            14 => i64::MAX,
            13 => src.below(1 << 16) as i64,
            _ => src.below(classes) as i64,
        })
        .collect()
}

/// Embedding values: ordinary ones with an awkward one now and then, or (one case in
/// eight) the palette throughout.
fn batch_values(src: &mut Src<'_>, len: usize) -> Vec<f64> {
    if rarely(src, 8) {
        src.values(len)
    } else {
        (0..len).map(|_| if rarely(src, 64) { src.value() } else { src.mostly_finite() }).collect()
    }
}

fn one_line(what: &str, e: &Error) {
    assert!(!e.to_string().contains('\n'), "{what}: a message of more than one line: {e}");
}

fn batch_case<T: Float>(src: &mut Src<'_>) {
    let loss = BatchLoss::decode(src);
    let dim = if rarely(src, 8) { src.below(70) } else { 1 + src.below(5) };
    // Now and then past 32 rows: whole 16 x 16 tiles off the diagonal (the wide tile code).
    let n = if rarely(src, 8) {
        src.below(3)
    } else if rarely(src, 6) {
        2 + src.below(70)
    } else {
        2 + src.below(22)
    };
    let len = if rarely(src, 16) { src.len() } else { n * dim };
    let x: Vec<T> = to(&batch_values(src, len));
    let Some(emb) = view(&x, n, dim) else { return };
    let labels = {
        let k = batch_buffer(src, n);
        batch_labels(src, k)
    };
    let with_ref = rarely(src, 4);
    let (m, rdim) = (src.below(16), if rarely(src, 16) { dim + 1 } else { dim });
    let rx: Vec<T> = to(&batch_values(src, m * rdim));
    let rl = {
        let k = batch_buffer(src, m);
        batch_labels(src, k)
    };
    let mut batch = Batch::new(emb, &labels[..]);
    if with_ref {
        let Some(r) = view(&rx, m, rdim) else { return };
        batch = batch.with_reference(r, &rl[..]);
    }
    let r = [BatchReduction::Mean, BatchReduction::MeanNonzero, BatchReduction::Sum, BatchReduction::None]
        [src.below(4)];
    let right_out = r.output_len(n);
    let up: Vec<T> = to(&(0..if r == BatchReduction::None && src.bool() { n } else { 1 })
        .map(|_| if rarely(src, 8) { src.value() } else { src.mostly_finite() })
        .collect::<Vec<_>>());
    let up_finite = up.iter().all(|v| v.is_finite());
    let (out_len, g_len) = (batch_buffer(src, right_out), batch_buffer(src, n * dim));
    let ref_grad = with_ref && src.bool();
    let gr_len = batch_buffer(src, m * rdim);
    let buffers_right = out_len == right_out && g_len == n * dim && (!ref_grad || gr_len == m * rdim);

    let fwd = loss.forward(&batch, r);
    let mut ws = Workspace::new();
    let run = |ws: &mut Workspace<T>| {
        let (mut out, mut g, mut gr) =
            (vec![T::zero(); out_len], vec![T::zero(); g_len], vec![T::zero(); gr_len]);
        let res =
            loss.forward_backward(&batch, r, &up, &mut out, &mut g, ref_grad.then_some(&mut gr[..]), ws);
        res.map(|()| (out, g, gr))
    };
    let first = run(&mut ws);
    let again = run(&mut ws);
    for e in [fwd.as_ref().err(), first.as_ref().err(), again.as_ref().err()].into_iter().flatten() {
        one_line("batch", e);
    }
    // A reused workspace gives the same bits (or the same error).
    match (&first, &again) {
        (Ok(a), Ok(b)) => {
            assert_eq!(bits(&a.0), bits(&b.0), "batch: the loss changed on a reused workspace");
            assert_eq!(bits(&a.1), bits(&b.1), "batch: the gradient changed on a reused workspace");
            assert_eq!(bits(&a.2), bits(&b.2), "batch: the reference gradient changed on a reused workspace");
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("batch: one call failed and the same call on a reused workspace did not"),
    }
    if !buffers_right {
        return;
    }
    // forward and forward_backward agree: the same loss bits, or the same error (an
    // upstream of the wrong length is the fused call's own refusal).
    let up_len_ok = up.len() == 1 || (r == BatchReduction::None && up.len() == n);
    match (&fwd, &first) {
        (Ok(f), Ok((out, g, gr))) => {
            assert_eq!(bits(f.as_slice()), bits(out), "batch: forward and forward_backward disagree");
            if loss.strict() && up_finite {
                let case = || {
                    format!(
                        "{loss:?} {r:?} n {n} dim {dim} x {:?} labels {labels:?} up {:?}",
                        f64s(&x),
                        f64s(&up)
                    )
                };
                assert!(
                    out.iter().all(|v| v.is_finite()),
                    "batch: strict mode returned a non-finite loss {out:?}: {}",
                    case()
                );
                assert!(
                    g.iter().all(|v| v.is_finite()),
                    "batch: strict mode returned a non-finite gradient {:?}: {}",
                    f64s(g),
                    case()
                );
                assert!(
                    gr.iter().all(|v| v.is_finite()),
                    "batch: strict mode returned a non-finite reference gradient: {}",
                    case()
                );
            }
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string(), "batch: the two calls refuse differently")
        }
        // The fused call alone computes the gradient, so it alone can find it overflowing.
        (Ok(_), Err(e)) => assert!(
            !up_len_ok || matches!(e, Error::Overflow { quantity: "gradient", .. }),
            "batch: forward_backward refused what forward took: {e}"
        ),
        (Err(e), Ok(_)) => panic!("batch: forward refused what forward_backward took: {e}"),
    }
}

fn batch_target(bytes: &[u8]) {
    let mut src = Src::new(bytes);
    if src.bool() {
        batch_case::<f32>(&mut src);
    } else {
        batch_case::<f64>(&mut src);
    }
}

// ---------------------------------------------------------------------------------------
// The targets

/// Iterations per target under `cargo test` when `BOLERO_RANDOM_ITERATIONS` is not set:
/// a few seconds per target in the test profile.
const CI_ITERATIONS: usize = 100_000;

fn iterations() -> usize {
    std::env::var("BOLERO_RANDOM_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(CI_ITERATIONS)
}

#[test]
fn fuzz_pointwise() {
    bolero::check!().with_iterations(iterations()).for_each(pointwise_target);
}

#[test]
fn fuzz_rows() {
    bolero::check!().with_iterations(iterations()).for_each(rows_target);
}

#[test]
fn fuzz_class() {
    bolero::check!().with_iterations(iterations()).for_each(class_target);
}

#[test]
fn fuzz_batch() {
    bolero::check!().with_iterations(iterations()).for_each(batch_target);
}
