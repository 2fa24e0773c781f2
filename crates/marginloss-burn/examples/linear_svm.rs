//! A linear SVM on the UCI handwritten digits in burn: one `Linear` layer (64 → 10)
//! trained with marginloss's `multiclass_hinge` (Crammer–Singer, as scikit-learn's
//! `LinearSVC(multi_class="crammer_singer")`) and with `multi_margin` (PyTorch's
//! `MultiMarginLoss`), printing the held-out accuracy beside scikit-learn's.
//!
//! ```text
//! cargo run --release -p marginloss-burn --example linear_svm
//! ```
//!
//! Same data and split as the `siamese` example (pixels / 16; 1,297 training and 500
//! held-out images). Objective, as LinearSVC's with C = 1 divided by C·N:
//! `mean_i loss_i + ‖W‖² / (2·N)`, full batch, 400 steps of Adam (lr 0.05). The
//! scikit-learn accuracies come from `tools/linear_svm_reference.py` (committed in
//! `examples/linear_svm_reference.txt`).

use std::time::Instant;

use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use marginloss_burn::{multi_margin, multiclass_hinge, MultiMargin, MulticlassHinge, Reduction};

#[path = "support/digits.rs"]
mod digits;
use digits::Rng;

const TRAIN: usize = 1297;
const STEPS: usize = 400;
const REFERENCE: &str = include_str!("linear_svm_reference.txt");

/// The loss a model is trained with.
#[derive(Clone, Copy)]
enum Loss {
    CrammerSinger,
    MultiMargin,
}

/// Held-out accuracy of the arg-max class.
fn accuracy(model: &Linear, x: &Tensor<2>, y: &[u8]) -> f64 {
    let pred: Vec<i64> =
        model.forward(x.clone()).argmax(1).into_data().try_into_vec_as::<i64>().expect("ints");
    pred.iter().zip(y).filter(|(p, t)| **p == i64::from(**t)).count() as f64 / y.len() as f64
}

fn train(
    loss: Loss,
    x: &Tensor<2>,
    y: &Tensor<1, Int>,
    dev: &Device,
) -> Result<(Linear, f32, f32), marginloss_burn::Error> {
    dev.seed(7);
    let mut model: Linear = LinearConfig::new(64, 10).init(dev);
    let mut opt = AdamConfig::new().init();
    let lambda = 1.0 / (2.0 * TRAIN as f64);
    let objective = |m: &Linear| -> Result<Tensor<1>, marginloss_burn::Error> {
        let s = m.forward(x.clone());
        let l = match loss {
            Loss::CrammerSinger => multiclass_hinge(s, y.clone(), MulticlassHinge::new(), Reduction::Mean)?,
            Loss::MultiMargin => multi_margin(s, y.clone(), None, MultiMargin::new(), Reduction::Mean)?,
        };
        Ok(l + m.weight.val().square().sum().mul_scalar(lambda))
    };
    let first: f32 = objective(&model)?.into_scalar();
    let mut last = first;
    for _ in 0..STEPS {
        let l = objective(&model)?;
        last = l.clone().into_scalar();
        let grads = GradientsParams::from_grads(l.backward(), &model);
        model = opt.step(0.05, model, grads);
    }
    Ok((model, first, last))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let dev = Device::flex().autodiff();
    let (pixels, labels) = digits::load()?;
    let n = labels.len();
    let mut rng = Rng(0x5EED_0FD1_6175);
    let order = digits::shuffled(n, &mut || rng.next());
    let gather = |idx: &[usize]| -> (Vec<f32>, Vec<u8>) {
        (
            idx.iter().flat_map(|&i| pixels[i * 64..i * 64 + 64].to_vec()).collect(),
            idx.iter().map(|&i| labels[i]).collect(),
        )
    };
    let (train_x, train_y) = gather(&order[..TRAIN]);
    let (test_x, test_y) = gather(&order[TRAIN..]);
    let x = Tensor::<2>::from_data(TensorData::new(train_x, [TRAIN, 64]), &dev);
    let xt = Tensor::<2>::from_data(TensorData::new(test_x, [n - TRAIN, 64]), &dev);
    let yv: Vec<i64> = train_y.iter().map(|&v| i64::from(v)).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(yv, [TRAIN]), &dev);

    println!(
        "linear SVM on UCI digits: {TRAIN} train / {} held out, 64 -> 10, {STEPS} full-batch Adam steps",
        n - TRAIN
    );
    println!("  objective: mean loss + |W|^2 / (2 N)   (LinearSVC, C = 1)");
    println!("{:<44} {:>10} {:>10} {:>10}", "model", "objective", "", "held-out");
    for (name, loss) in [
        ("marginloss-burn multiclass_hinge (C&S)", Loss::CrammerSinger),
        ("marginloss-burn multi_margin", Loss::MultiMargin),
    ] {
        let (model, first, last) = train(loss, &x, &y, &dev)?;
        let acc = accuracy(&model, &xt, &test_y);
        println!("  {name:<42} {first:>10.4} -> {last:>7.4} {:>9.1}%", acc * 100.0);
    }
    for line in REFERENCE.lines().filter(|l| !l.starts_with('#')) {
        if let Some((name, acc)) = line.split_once(' ') {
            let acc: f64 = acc.trim().parse()?;
            println!(
                "  {:<42} {:>10} {:>10} {:>9.1}%",
                format!("scikit-learn LinearSVC ({name})"),
                "",
                "",
                acc * 100.0
            );
        }
    }
    println!("  ({})", REFERENCE.lines().next().unwrap_or("").trim_start_matches("# "));
    println!("total time {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
