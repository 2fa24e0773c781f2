//! Strict mode's guards beyond the input checks (issue 10): options that are finite in
//! `f64` but not in the compute type, and arithmetic that overflows on finite input.

use marginloss::Rows;
use marginloss::{
    Contrastive, CosineDistance, CosineSimilarity, Error, Hinge, HingeEmbedding, MarginRanking, Mode,
    MultiMargin, MulticlassHinge, PairwiseDistance, Reduction, SquaredHinge, TripletMargin,
    TripletMarginWithDistance,
};

const FITS: &str =
    "must be a number that fits float32, the inputs' dtype (magnitude at most 3.4028235e38), got";

fn assert_does_not_fit(r: marginloss::Result<impl std::fmt::Debug>, loss: &str, option: &str, value: &str) {
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Option { .. }), "{e:?}");
    assert_eq!(e.to_string(), format!("{loss}: option {option} {FITS} {value}"));
}

#[test]
fn an_option_finite_in_f64_but_infinite_in_f32_is_refused_in_strict_mode() {
    let (x, y) = ([0.5f32, -0.5], [1.0f32, -1.0]);
    let r = Reduction::Mean;
    assert_does_not_fit(Hinge::new().margin(1e39).forward(&x, &y, r), "hinge", "margin", "1e39");
    assert_does_not_fit(
        SquaredHinge::new().margin(-1e39).forward(&x, &y, r),
        "squared_hinge",
        "margin",
        "-1e39",
    );
    assert_does_not_fit(
        HingeEmbedding::new().margin(1e39).forward(&[0.5f32], &[1.0], r),
        "hinge_embedding",
        "margin",
        "1e39",
    );
    assert_does_not_fit(
        MarginRanking::new().margin(1e300).forward(&x, &x, &y, r),
        "margin_ranking",
        "margin",
        "1e300",
    );
    let (s, t) = ([0.1f32, 0.2, 0.3, 0.4], [1i64, 0]);
    assert_does_not_fit(
        MultiMargin::new().margin(1e39).forward(mat(&s, 2), &t, None, r),
        "multi_margin",
        "margin",
        "1e39",
    );
    assert_does_not_fit(
        MulticlassHinge::new().margin(1e39).forward(mat(&s, 2), &t, r),
        "multiclass_hinge",
        "margin",
        "1e39",
    );
    let (a, b) = ([0.0f32, 1.0], [1.0f32, 0.0]);
    assert_does_not_fit(
        Contrastive::new().margin(1e39).forward(mat(&a, 2), mat(&b, 2), &[1.0], r),
        "contrastive",
        "margin",
        "1e39",
    );
    assert_does_not_fit(
        TripletMargin::new().margin(1e39).forward(mat(&a, 2), mat(&b, 2), mat(&a, 2), r),
        "triplet_margin",
        "margin",
        "1e39",
    );
    assert_does_not_fit(
        TripletMargin::new().eps(1e39).forward(mat(&a, 2), mat(&b, 2), mat(&a, 2), r),
        "triplet_margin",
        "eps",
        "1e39",
    );
    let mut cd = CosineDistance::default();
    cd.eps = 1e39;
    let twd = TripletMarginWithDistance::new(cd);
    assert_does_not_fit(
        twd.forward(mat(&a, 2), mat(&b, 2), mat(&a, 2), r),
        "triplet_margin_with_distance",
        "eps",
        "1e39",
    );
    let on = HingeEmbedding::new().on(PairwiseDistance::new().eps(1e39));
    assert_does_not_fit(on.forward(mat(&a, 2), mat(&b, 2), &[1.0], r), "hinge_embedding", "eps", "1e39");
    assert_does_not_fit(
        PairwiseDistance::new().eps(1e39).forward(mat(&a, 2), mat(&b, 2)),
        "pairwise_distance",
        "eps",
        "1e39",
    );
    assert_does_not_fit(
        CosineSimilarity::new().eps(1e39).forward(mat(&a, 2), mat(&b, 2)),
        "cosine_similarity",
        "eps",
        "1e39",
    );
    // The same options are fine for f64 inputs ...
    let (x64, y64) = ([0.5f64, -0.5], [1.0f64, -1.0]);
    assert!(Hinge::new().margin(1e39).forward(&x64, &y64, r).is_ok());
    assert!(PairwiseDistance::new().eps(1e39).forward(mat(&[0.0f64], 1), mat(&[1.0], 1)).is_ok());
    // ... and torch-compat computes with them as torch does (the margin is inf in f32).
    let v = Hinge::new().margin(1e39).mode(Mode::TorchCompat).forward(&x, &y, r).unwrap();
    assert_eq!(v.scalar(), Some(f32::INFINITY));
}

#[test]
fn a_nan_triplet_margin_is_refused_in_both_modes_as_torch_does() {
    for mode in [Mode::Strict, Mode::TorchCompat] {
        let e = TripletMargin::new().margin(f64::NAN).mode(mode).forward(
            mat(&[0.0f32], 1),
            mat(&[1.0], 1),
            mat(&[2.0], 1),
            Reduction::Sum,
        );
        assert_eq!(e.unwrap_err().to_string(), "triplet_margin: option margin must be > 0, got NaN");
    }
}

/// `Overflow { quantity, arg, index }` of `e`, asserting the variant, the dtype and the text.
fn overflow(e: Error) -> (&'static str, &'static str, Option<usize>) {
    let text = e.to_string();
    match e {
        Error::Overflow { quantity, arg, index, dtype, loss } => {
            assert_eq!(dtype, "float32");
            let at = match index {
                Some(i) => format!("at {arg}[{i}]"),
                None => "in the reduction".into(),
            };
            assert!(text.starts_with(&format!("{loss}: the {quantity} overflows float32 {at}")), "{text}");
            assert!(text.contains("torch-compat mode returns inf/NaN"), "{text}");
            (quantity, arg, index)
        }
        other => panic!("expected an overflow, got {other:?}"),
    }
}

#[test]
fn strict_mode_reports_an_overflow_of_finite_input_with_the_first_index() {
    let big = 3e38f32;
    // hinge: margin − y·x = 1e38 + 3e38 overflows at element 1, in forward and fused alike.
    let h = Hinge::new().margin(1e38);
    let (x, y) = ([0.5f32, -big, -big], [1.0f32, 1.0, 1.0]);
    assert_eq!(overflow(h.forward(&x, &y, Reduction::None).unwrap_err()), ("loss", "output", Some(1)));
    assert_eq!(overflow(h.forward(&x, &y, Reduction::Mean).unwrap_err()), ("loss", "output", Some(1)));
    let (mut out, mut g) = ([0.0f32; 3], [0.0f32; 3]);
    let e = h.forward_backward(&x, &y, Reduction::None, &[1.0], &mut out, &mut g).unwrap_err();
    assert_eq!(overflow(e), ("loss", "output", Some(1)));
    // torch-compat propagates torch's inf.
    let v = h.mode(Mode::TorchCompat).forward(&x, &y, Reduction::None).unwrap().into_vec();
    assert_eq!(v, vec![1e38 - 0.5, f32::INFINITY, f32::INFINITY]);

    // Each loss is finite but their f32 sum is not: the reduction is named, not an element.
    let s = Hinge::new().margin(0.0);
    let e = s.forward(&[-big, -big], &[1.0f32, 1.0], Reduction::Sum).unwrap_err();
    assert_eq!(overflow(e), ("loss", "output", None));
    assert!(s.forward(&[-big, -big], &[1.0f32, 1.0], Reduction::Mean).is_ok(), "the mean fits");

    // squared_hinge: (1 + 1e20)² overflows the loss; a gradient overflows in fused mode.
    let sq = SquaredHinge::new();
    let e = sq.forward(&[0.0f32, -1e20], &[1.0, 1.0], Reduction::Sum).unwrap_err();
    assert_eq!(overflow(e), ("loss", "output", Some(1)));
    let (mut out, mut g) = ([0.0f32], [0.0f32; 2]);
    // 2·u = 4e38 overflows while u² · (1/2 upstream) ... the loss overflows first here too;
    // a large upstream makes only the gradient overflow.
    let e = sq.forward_backward(&[0.0f32, -1e18], &[1.0, 1.0], Reduction::Sum, &[1e21], &mut out, &mut g);
    assert_eq!(overflow(e.unwrap_err()), ("gradient", "input", Some(1)));

    // A non-finite upstream gradient is named as such.
    let e =
        Hinge::new().forward_backward(&[0.5f32], &[1.0], Reduction::Sum, &[f32::NAN], &mut [0.0], &mut [0.0]);
    assert!(e.unwrap_err().to_string().starts_with("hinge got NaN at upstream[0]"));

    // margin_ranking: x1 − x2 = 6e38.
    let e = MarginRanking::new().forward(&[1.0f32, -big], &[0.0, big], &[1.0, 1.0], Reduction::None);
    assert_eq!(overflow(e.unwrap_err()), ("loss", "output", Some(1)));

    // multi_margin with p = 2: z² overflows in row 1.
    let e = MultiMargin::new().p(2.0).forward(
        mat(&[0.0f32, 0.0, -1e20, 1e20], 2),
        &[0, 0],
        None,
        Reduction::None,
    );
    assert_eq!(overflow(e.unwrap_err()), ("loss", "output", Some(1)));

    // Row losses: the squared distance overflows f32 in row 1.
    let (a, b) = ([0.0f32, 0.0, 2e19, 0.0], [1.0f32, 0.0, -2e19, 0.0]);
    let e = Contrastive::new().forward(mat(&a, 2), mat(&b, 2), &[1.0, 1.0], Reduction::None).unwrap_err();
    assert_eq!(overflow(e), ("loss", "output", Some(1)));
    let e = PairwiseDistance::new().forward(mat(&a, 2), mat(&b, 2)).unwrap_err();
    assert_eq!(overflow(e), ("loss", "output", Some(1)));
    let e = TripletMargin::new().forward(mat(&a, 2), mat(&b, 2), mat(&a, 2), Reduction::Mean).unwrap_err();
    assert_eq!(overflow(e), ("loss", "output", Some(1)));
    let e = TripletMargin::new().forward(mat(&b, 2), mat(&a, 2), mat(&a, 2), Reduction::None).unwrap_err();
    assert_eq!(overflow(e), ("loss", "output", Some(1)));
    let e = CosineSimilarity::new().forward(mat(&a, 2), mat(&[1.0f32, 1.0, 1e20, 1e20], 2)).unwrap_err();
    assert_eq!(overflow(e), ("loss", "output", Some(1)));
    // ... and torch-compat gives torch's inf.
    let d = PairwiseDistance::new().mode(Mode::TorchCompat).forward(mat(&a, 2), mat(&b, 2)).unwrap();
    assert!(d[0].is_finite() && d[1] == f32::INFINITY);

    // multiclass_hinge: margin + max_other − s_y = 1 + 3e38 + 3e38.
    let e =
        MulticlassHinge::new().forward(mat(&[-big, big, 0.0, 1.0], 2), &[0, 0], Reduction::Sum).unwrap_err();
    assert_eq!(overflow(e), ("loss", "output", Some(0)));
}

#[test]
fn every_finite_result_of_finite_input_is_returned_as_before() {
    // The guard adds no error where the result is finite, at the edge of the range too.
    let big = 1.7e38f32;
    let v = Hinge::new().margin(0.0).forward(&[-big], &[1.0f32], Reduction::Sum).unwrap();
    assert_eq!(v.scalar(), Some(big));
    let mut g = [0.0f32; 2];
    let mut out = [0.0f32];
    SquaredHinge::new()
        .forward_backward(&[0.0f32, -1e18], &[1.0, 1.0], Reduction::Sum, &[1.0], &mut out, &mut g)
        .unwrap();
    assert!(out[0].is_finite() && g.iter().all(|v| v.is_finite()));
}

#[test]
fn a_distance_is_called_only_with_rows_of_equal_length() {
    use marginloss::{Distance, GradPair, RowPair};
    // Unequal rows or gradient rows are an error when the pair is made, never a panic or a
    // number computed over the shorter row.
    let e = RowPair::new(&[1.0f32, 2.0][..], &[1.0][..]).unwrap_err();
    assert_eq!(e.to_string(), "distance: x2 has shape [1] but x1 has shape [2]");
    let rows = RowPair::new(&[1.0f32, 2.0][..], &[0.0, 0.0][..]).unwrap();
    let (mut g1, mut g2) = ([0.0f32; 2], [0.0f32; 3]);
    let e = GradPair::new(rows, &mut g1, &mut g2).unwrap_err();
    assert_eq!(e.to_string(), "distance: the grad2 buffer has length 3, expected 2");
    // Called directly with checked rows, the built-in distances agree with `forward`.
    let d = PairwiseDistance::new();
    let want = d.forward(mat(rows.x1(), 2), mat(rows.x2(), 2)).unwrap()[0];
    assert_eq!(Distance::<f32>::distance(&d, rows), want);
    let mut g2 = [0.0f32; 2];
    Distance::<f32>::backward(&d, rows, 1.0, GradPair::new(rows, &mut g1, &mut g2).unwrap());
    assert!((g1[0] - 1.0 / 5f32.sqrt()).abs() < 1e-6 && g1[0] == -g2[0], "{g1:?} {g2:?}");
    let c = CosineDistance::default();
    assert_eq!(Distance::<f32>::distance(&c, rows), 1.0); // a zero row has cosine 0
}

#[test]
fn an_overflowing_difference_with_a_finite_loss_is_still_a_gradient_overflow() {
    // Found by fuzz_rows: x1 − x2 overflows f32, so d = inf and the dissimilar pair's loss
    // max(0, margin − d)² is 0, but the gradient v·(g/d) is inf·0 = NaN.
    let big = f32::MAX;
    let (x1, x2) = ([big, 0.0, 0.0], [-big, 0.0, 0.0]);
    let (mut out, mut g1, mut g2) = ([0.0f32], [0.0f32; 3], [0.0f32; 3]);
    let l = Contrastive::new().margin(0.5);
    let e = l.forward_backward(
        mat(&x1, 1),
        mat(&x2, 1),
        &[-1.0, 1.0, 1.0],
        Reduction::Mean,
        &[1.0],
        &mut out,
        &mut g1,
        &mut g2,
    );
    assert_eq!(overflow(e.unwrap_err()), ("gradient", "input1", Some(0)));
    // The forward value is finite and returned.
    assert!(l
        .forward(mat(&x1, 1), mat(&x2, 1), &[-1.0, 1.0, 1.0], Reduction::Mean)
        .unwrap()
        .scalar()
        .unwrap()
        .is_finite());
    // The triplet loss with d(a, n) = inf and an inactive hinge skips the gradient terms
    // (torch's zero gradient there), so the result is finite and returned.
    let (mut ga, mut gp, mut gn) = ([9.0f32], [9.0f32], [9.0f32]);
    TripletMargin::new()
        .forward_backward(
            mat(&[big], 1),
            mat(&[big], 1),
            mat(&[-big], 1),
            Reduction::Sum,
            &[1.0],
            &mut out,
            &mut ga,
            &mut gp,
            &mut gn,
        )
        .unwrap();
    assert_eq!((out[0], ga[0], gp[0], gn[0]), (0.0, 0.0, 0.0, 0.0));
}

#[test]
fn a_tiny_eps_with_a_zero_row_is_a_gradient_overflow_not_a_nan() {
    // Found by fuzz_rows (libFuzzer): eps = 1e-45 (an f32 denormal) and a zero row make the
    // gradient coefficient 1/(c1·c2) overflow f32; the gradient would be 0·inf = NaN.
    let eps = f64::from(f32::from_bits(1));
    let (x1, x2) = ([0.0f32, 1.0], [0.0f32, 1.0]);
    let (mut out, mut g1, mut g2) = ([0.0f32; 2], [0.0f32; 2], [0.0f32; 2]);
    let e = CosineSimilarity::new().eps(eps).forward_backward(
        mat(&x1, 1),
        mat(&x2, 1),
        &[1.0],
        &mut out,
        &mut g1,
        &mut g2,
    );
    assert_eq!(overflow(e.unwrap_err()), ("gradient", "input1", Some(0)));
    // The similarities themselves are finite: forward returns them.
    assert_eq!(CosineSimilarity::new().eps(eps).forward(mat(&x1, 1), mat(&x2, 1)).unwrap(), vec![0.0, 1.0]);
}

/// `x` as rows of `cols` elements (as many rows as fit): test support.
fn mat<T>(x: &[T], cols: usize) -> Rows<'_, T> {
    let rows = x.len().checked_div(cols).unwrap_or(0);
    Rows::new(x, rows, cols).expect("a whole number of rows")
}
