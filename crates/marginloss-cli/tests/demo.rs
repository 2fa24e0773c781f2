//! `marginloss demo` from the data embedded in the binary (this test ships in the package:
//! it needs nothing outside the crate).

use assert_cmd::Command;

fn demo() -> String {
    let out = Command::cargo_bin("marginloss").expect("binary").arg("demo").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn demo_walks_through_the_article() {
    let text = demo();
    assert!(text.contains("hinge_embedding, torch-compat: -0.1000"), "{text}");
    assert!(text.contains(
        "error: hinge_embedding expects distances >= 0, got -0.5 at input[1]; for classifier scores use hinge"
    ));
    assert!(text.contains("hinge (max(0, 1 - y*x)):       2.1000"));
    // torch 2.15 prints 0.4938560426235199; ours is the correctly rounded mean, 1 ulp away.
    assert!(text
        .contains("mean loss   0.4938560128211975   torch 2.15 prints 0.4938560426235199: 1 f32 ulp apart"));
    assert!(text.contains("|grad a|    6.25014"), "{text}");
    assert!(text.contains("|grad b|    6.16255"), "{text}");
}

#[test]
fn demo_counts_the_dissimilar_pairs_past_the_margin_and_shows_how_y_was_drawn() {
    let text = demo();
    // All 50 dissimilar pairs have a cosine distance above 0.77 > 0.2 (loss 0).
    assert!(
        text.contains(
            "50 similar pairs (y = 1) contribute their distance; all 50 of the 50 dissimilar pairs (y = -1)"
        ),
        "{text}"
    );
    assert!(text.contains("are already past the margin (distance >= 0.2, loss 0)."), "{text}");
    assert!(!text.contains("50 of 100 dissimilar"), "{text}");
    // The torch lines reproduce the data from the demo alone.
    assert!(text.contains("torch.manual_seed(20)"), "{text}");
    assert!(text.contains("y = 2 * torch.empty(100).random_(2) - 1"), "{text}");
}
