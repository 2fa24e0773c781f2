//! The shape-safe row API: every loss and distance on rows takes `Rows` views whose shape
//! the caller states; a shape that disagrees with another argument's (or with the target's
//! length) is an `Error::Shape` naming the argument and the shape expected, never a
//! different loss.

use marginloss::{
    cosine_embedding, cosine_similarity, multi_margin, multiclass_hinge, multilabel_margin,
    multilabel_soft_margin, pairwise_distance, triplet_margin, CosineDistance, CosineEmbedding, Error,
    HingeEmbedding, Reduction, Rows, TripletMargin, TripletMarginWithDistance,
};

fn data(len: usize) -> Vec<f64> {
    (0..len).map(|i| ((i * 7919) % 23) as f64 / 7.0 - 1.5).collect()
}

fn view(x: &[f64], s: [usize; 2]) -> Rows<'_, f64> {
    Rows::new(x, s[0], s[1]).unwrap()
}

fn shape_error(e: Error) -> (String, Vec<usize>, String) {
    match e {
        Error::Shape { arg, got, expected, .. } => (arg.to_string(), got, expected),
        other => panic!("not a shape error: {other}"),
    }
}

#[test]
fn sixteen_triplets_of_eight_stated_as_eight_of_sixteen_are_refused_not_recomputed() {
    // The case: 16×8 triplets. With flat slices and `dim = 16`, the loss silently
    // became one over 8 triplets of 16; stated shapes make the mix-up an error.
    let (a, p, n) = (data(128), data(128).iter().map(|v| v + 0.5).collect::<Vec<_>>(), data(128));
    let right = [16, 8];
    let ok = triplet_margin(view(&a, right), view(&p, right), view(&n, right), Reduction::Mean).unwrap();
    assert!(ok.scalar().unwrap().is_finite());
    for wrong_arg in 0..3 {
        let s = |i: usize| if i == wrong_arg { [8, 16] } else { right };
        let e = triplet_margin(view(&a, s(0)), view(&p, s(1)), view(&n, s(2)), Reduction::Mean).unwrap_err();
        let (arg, got, expected) = shape_error(e);
        // the first argument sets the shape the others must have
        let (want_arg, want_expected) = match wrong_arg {
            0 => ("positive", "anchor has shape [8, 16]"),
            1 => ("positive", "anchor has shape [16, 8]"),
            _ => ("negative", "anchor has shape [16, 8]"),
        };
        assert_eq!((arg.as_str(), expected.as_str()), (want_arg, want_expected));
        assert_eq!(got, if wrong_arg == 0 { vec![16, 8] } else { vec![8, 16] });
    }
    // the same holds for the general triplet loss over any distance
    let l = TripletMarginWithDistance::new(CosineDistance::new());
    let e = l.forward(view(&a, right), view(&p, right), view(&n, [8, 16]), Reduction::Sum).unwrap_err();
    assert_eq!(
        e.to_string(),
        "triplet_margin_with_distance: negative has shape [8, 16] but anchor has shape [16, 8]"
    );
}

#[test]
fn distances_refuse_inputs_of_different_stated_shapes() {
    let x = data(128);
    let (a, b) = (Rows::new(&x, 16, 8).unwrap(), Rows::new(&x, 8, 16).unwrap());
    let e = cosine_similarity(a, b).unwrap_err();
    assert_eq!(e.to_string(), "cosine_similarity: input2 has shape [8, 16] but input1 has shape [16, 8]");
    let e = pairwise_distance(a, b).unwrap_err();
    assert_eq!(e.to_string(), "pairwise_distance: input2 has shape [8, 16] but input1 has shape [16, 8]");
    assert_eq!(cosine_similarity(a, a).unwrap().len(), 16);
    assert_eq!(pairwise_distance(b, b).unwrap().len(), 8);
}

#[test]
fn pair_losses_check_each_input_and_one_target_per_stated_row() {
    let x = data(128);
    let (a, b) = (Rows::new(&x, 16, 8).unwrap(), Rows::new(&x, 8, 16).unwrap());
    let y16 = vec![1.0; 16];
    let e = cosine_embedding(a, b, &y16, Reduction::Mean).unwrap_err();
    assert_eq!(e.to_string(), "cosine_embedding: input2 has shape [8, 16] but input1 has shape [16, 8]");
    // 8 labels for 16 stated rows
    let e = CosineEmbedding::new().forward(a, a, &y16[..8], Reduction::Mean).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cosine_embedding: target has shape [8] but input1 has shape [16, 8], so target has shape [16]"
    );
    // the article's fused pipeline: distance and hinge embedding over stated rows
    let l = HingeEmbedding::new().margin(0.2).on(CosineDistance::new());
    let e = l.forward(b, b, &y16, Reduction::Mean).unwrap_err();
    assert_eq!(
        e.to_string(),
        "hinge_embedding: target has shape [16] but input1 has shape [8, 16], so target has shape [8]"
    );
    assert!(l.forward(a, a, &y16, Reduction::Mean).is_ok());
}

#[test]
fn class_losses_take_the_class_count_from_the_stated_shape() {
    let x = data(8);
    // 8 scores: 2 rows of 4 classes, or 4 rows of 2; the targets say which was meant
    let (two_by_four, four_by_two) = (Rows::new(&x, 2, 4).unwrap(), Rows::new(&x, 4, 2).unwrap());
    assert!(multi_margin(two_by_four, &[3i64, 0], Reduction::Mean).is_ok());
    let e = multi_margin(four_by_two, &[3i64, 0], Reduction::Mean).unwrap_err();
    assert_eq!(
        e.to_string(),
        "multi_margin: target has shape [2] but input has shape [4, 2], so target (one class index \
         per row) has shape [4]"
    );
    let e = multiclass_hinge(four_by_two, &[1u32, 0], Reduction::Mean).unwrap_err();
    assert!(e.to_string().contains("input has shape [4, 2], so target"), "{e}");
    // multilabel targets are (N, C) like the input
    let e = multilabel_margin(two_by_four, &[0i64, -1], Reduction::Mean).unwrap_err();
    assert!(e.to_string().contains("so target has shape [2, 4]"), "{e}");
    let e = multilabel_soft_margin(two_by_four, &[1.0; 4], Reduction::Mean).unwrap_err();
    assert_eq!(
        e.to_string(),
        "multilabel_soft_margin: target has shape [4] but input has shape [2, 4], so target has shape \
         [2, 4]"
    );
    // one row: PyTorch's 1-D (C,) input
    let one = Rows::single(&x[..4]);
    assert_eq!(one.shape(), [1, 4]);
    assert!(multi_margin(one, &[2i64], Reduction::None).is_ok());
}

#[test]
fn a_view_whose_length_is_not_rows_times_cols_is_refused_where_it_is_made() {
    let x = data(128);
    let e = Rows::new(&x, 16, 16).unwrap_err();
    assert_eq!(e.to_string(), "rows: data has shape [128] but 16 rows of 16 elements are 256 elements");
    // an element count that overflows usize is reported exactly, not wrapped
    let e = Rows::new(&x, usize::MAX, 3).unwrap_err();
    assert!(e.to_string().contains("55340232221128654845 elements"), "{e}");
    // a view states its shape even without elements: N rows of 0 columns is refused by the
    // losses (a row must have an element), not read as some other N
    let empty: [f64; 0] = [];
    let e = triplet_margin(
        Rows::new(&empty, 4, 0).unwrap(),
        Rows::new(&empty, 4, 0).unwrap(),
        Rows::new(&empty, 4, 0).unwrap(),
        Reduction::Mean,
    )
    .unwrap_err();
    assert!(e.to_string().contains("rows of at least one element"), "{e}");
    assert!(TripletMargin::new()
        .forward(
            Rows::new(&x, 16, 8).unwrap(),
            Rows::new(&x, 16, 8).unwrap(),
            Rows::new(&x, 16, 8).unwrap(),
            Reduction::None
        )
        .is_ok());
}

#[test]
fn ndarray_views_in_standard_layout_convert_and_others_are_refused() {
    use ndarray::{Array2, ShapeBuilder};
    let a = Array2::from_shape_vec((3, 4), data(12)).unwrap();
    let r = Rows::try_from(a.view()).unwrap();
    assert_eq!((r.shape(), r.data()), ([3, 4], a.as_slice().unwrap()));
    assert_eq!(
        cosine_similarity(r, r).unwrap(),
        cosine_similarity(Rows::new(a.as_slice().unwrap(), 3, 4).unwrap(), r).unwrap()
    );
    // a transposed (column-major) view is not rows in memory order
    let t = a.t();
    let e = Rows::try_from(t).unwrap_err();
    assert!(e.to_string().contains("standard (row-major, contiguous) layout"), "{e}");
    let f = Array2::<f64>::zeros((3, 4).f());
    assert!(Rows::try_from(f.view()).is_err());
    assert!(Rows::try_from(f.as_standard_layout().view()).is_ok());
}
