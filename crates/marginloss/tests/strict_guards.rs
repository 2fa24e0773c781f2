//! Strict mode's guards beyond the input checks (issue 10): options that are finite in
//! `f64` but not in the compute type, and arithmetic that overflows on finite input.

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
        MultiMargin::new().margin(1e39).forward(&s, &t, 2, None, r),
        "multi_margin",
        "margin",
        "1e39",
    );
    assert_does_not_fit(
        MulticlassHinge::new().margin(1e39).forward(&s, &t, 2, r),
        "multiclass_hinge",
        "margin",
        "1e39",
    );
    let (a, b) = ([0.0f32, 1.0], [1.0f32, 0.0]);
    assert_does_not_fit(
        Contrastive::new().margin(1e39).forward(&a, &b, &[1.0], 2, r),
        "contrastive",
        "margin",
        "1e39",
    );
    assert_does_not_fit(
        TripletMargin::new().margin(1e39).forward(&a, &b, &a, 2, r),
        "triplet_margin",
        "margin",
        "1e39",
    );
    assert_does_not_fit(
        TripletMargin::new().eps(1e39).forward(&a, &b, &a, 2, r),
        "triplet_margin",
        "eps",
        "1e39",
    );
    let mut cd = CosineDistance::default();
    cd.eps = 1e39;
    let twd = TripletMarginWithDistance::new(cd);
    assert_does_not_fit(twd.forward(&a, &b, &a, 2, r), "triplet_margin_with_distance", "eps", "1e39");
    let on = HingeEmbedding::new().on(PairwiseDistance::new().eps(1e39));
    assert_does_not_fit(on.forward(&a, &b, &[1.0], 2, r), "hinge_embedding", "eps", "1e39");
    assert_does_not_fit(
        PairwiseDistance::new().eps(1e39).forward(&a, &b, 2),
        "pairwise_distance",
        "eps",
        "1e39",
    );
    assert_does_not_fit(
        CosineSimilarity::new().eps(1e39).forward(&a, &b, 2),
        "cosine_similarity",
        "eps",
        "1e39",
    );
    // The same options are fine for f64 inputs ...
    let (x64, y64) = ([0.5f64, -0.5], [1.0f64, -1.0]);
    assert!(Hinge::new().margin(1e39).forward(&x64, &y64, r).is_ok());
    assert!(PairwiseDistance::new().eps(1e39).forward(&[0.0f64], &[1.0], 1).is_ok());
    // ... and torch-compat computes with them as torch does (the margin is inf in f32).
    let v = Hinge::new().margin(1e39).mode(Mode::TorchCompat).forward(&x, &y, r).unwrap();
    assert_eq!(v.scalar(), Some(f32::INFINITY));
}

#[test]
fn a_nan_triplet_margin_is_refused_in_both_modes_as_torch_does() {
    for mode in [Mode::Strict, Mode::TorchCompat] {
        let e = TripletMargin::new().margin(f64::NAN).mode(mode).forward(
            &[0.0f32],
            &[1.0],
            &[2.0],
            1,
            Reduction::Sum,
        );
        assert_eq!(e.unwrap_err().to_string(), "triplet_margin: option margin must be > 0, got NaN");
    }
}
