use burn::tensor::{Device, Tensor};
use marginloss_burn as mb;
use mb::Reduction;

#[test]
fn smoke() {
    let dev = Device::flex().autodiff();
    let x = Tensor::<1>::from_floats([0.8, -0.5, 2.0, 1.0], &dev).require_grad();
    let y = Tensor::<1>::from_floats([-1.0, 1.0, -1.0, 1.0], &dev);
    let l = mb::hinge(x.clone(), y.clone(), mb::Hinge::new(), Reduction::Mean).unwrap();
    println!("{:?} {:?}", l.dims(), l.to_data());
    let g = l.backward();
    println!("grad {:?}", x.grad(&g).unwrap().to_data());
    let l2 = mb::composed::hinge(x.clone(), y.clone(), mb::Hinge::new(), Reduction::Mean).unwrap();
    let g2 = l2.backward();
    println!("composed {:?} grad {:?}", l2.to_data(), x.grad(&g2).unwrap().to_data());
    let l3 = mb::hinge(x.clone(), y.clone(), mb::Hinge::new(), Reduction::None).unwrap();
    let g3 = l3.clone().mul_scalar(2.0).sum().backward();
    println!("none {:?} grad {:?}", l3.to_data(), x.grad(&g3).unwrap().to_data());
    let e = mb::hinge_embedding(x.clone(), y.clone(), mb::HingeEmbedding::new(), Reduction::Mean).unwrap_err();
    println!("{e}");
}
