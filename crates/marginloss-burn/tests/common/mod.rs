//! The core crate's fixture loader and parity tolerance (one source, included from
//! `crates/marginloss/tests/common/mod.rs`), plus helpers that turn fixtures into burn
//! tensors and run a case through burn's `backward()`.
#![allow(dead_code)]

#[path = "../../../marginloss/tests/common/mod.rs"]
mod fixtures;

use std::cell::RefCell;
use std::collections::BTreeMap;

use burn::tensor::Gradients;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
pub use fixtures::*;
use marginloss::op::{Arg, Kind, Op, Signature};
use marginloss::{Float, Mode};

/// The burn dtype of a fixture dtype name.
pub fn burn_dtype(dtype: &str) -> DType {
    match dtype {
        "float32" => DType::F32,
        "float64" => DType::F64,
        other => panic!("dtype {other}"),
    }
}

/// The devices the tests run on: Flex with autodiff (the fused path's home).
pub fn device() -> Device {
    Device::flex().autodiff()
}

/// A float tensor of rank `D` with `data` reshaped to `shape` (padded with leading 1s or
/// merged as needed to rank `D`), in `dtype`.
pub fn tensor<const D: usize>(data: &[f64], shape: &[usize], dtype: DType, dev: &Device) -> Tensor<D> {
    let shape = fit::<D>(shape, data.len());
    Tensor::<D>::from_data(TensorData::new(data.to_vec(), shape), (dev, dtype))
}

/// An i64 tensor of rank `D`.
pub fn int_tensor<const D: usize>(data: &[f64], shape: &[usize], dev: &Device) -> Tensor<D, Int> {
    let shape = fit::<D>(shape, data.len());
    let v: Vec<i64> = data.iter().map(|&x| x as i64).collect();
    Tensor::<D, Int>::from_data(TensorData::new(v, shape), (dev, DType::I64))
}

/// `shape` as rank `D`: leading 1s added (a `(C,)` row becomes `(1, C)`, a scalar `[1]`).
fn fit<const D: usize>(shape: &[usize], len: usize) -> [usize; D] {
    let mut out = [1usize; D];
    if shape.len() <= D {
        out[D - shape.len()..].copy_from_slice(shape);
    } else {
        out[D - 1] = len;
    }
    out
}

/// All values of a burn tensor, flattened, as f64.
pub fn values<const D: usize>(t: &Tensor<D>) -> Vec<f64> {
    t.to_data().try_to_vec_as::<f64>().expect("values")
}

/// A tracked input of some rank, kept to read its gradient.
#[derive(Clone)]
pub enum Held {
    R1(Tensor<1>),
    R2(Tensor<2>),
}

impl Held {
    fn grad(&self, g: &Gradients) -> Option<Vec<f64>> {
        match self {
            Held::R1(t) => t.grad(g).map(|t| values(&t)),
            Held::R2(t) => t.grad(g).map(|t| values(&t)),
        }
    }
}

/// A loss result of some rank.
pub enum Out {
    R1(Tensor<1>),
    R2(Tensor<2>),
}

impl From<Tensor<1>> for Out {
    fn from(t: Tensor<1>) -> Self {
        Out::R1(t)
    }
}

impl From<Tensor<2>> for Out {
    fn from(t: Tensor<2>) -> Self {
        Out::R2(t)
    }
}

impl Out {
    pub fn values(&self) -> Vec<f64> {
        match self {
            Out::R1(t) => values(t),
            Out::R2(t) => values(t),
        }
    }
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Out::R1(t) => t.dims().to_vec(),
            Out::R2(t) => t.dims().to_vec(),
        }
    }
    /// `backward()` of the result's sum (what the fixtures' gradients are of).
    pub fn backward(&self) -> Gradients {
        match self {
            Out::R1(t) => t.clone().sum().backward(),
            Out::R2(t) => t.clone().sum().backward(),
        }
    }
}

/// The inputs of a case as burn tensors on one device; those of kind `Input` in the loss's
/// description require gradients.
pub struct Inputs<'c> {
    pub case: &'c Case,
    pub dev: Device,
    pub dtype: DType,
    diff: Vec<&'static str>,
    held: RefCell<BTreeMap<String, Held>>,
}

impl<'c> Inputs<'c> {
    pub fn new<L: Signature>(case: &'c Case, dev: Device) -> Inputs<'c> {
        let diff = L::PARAMS.iter().filter(|p| p.kind == Kind::Input).map(|p| p.name).collect();
        Inputs { case, dev, dtype: burn_dtype(&case.dtype), diff, held: RefCell::new(BTreeMap::new()) }
    }
    fn make<const D: usize>(&self, name: &str) -> Tensor<D> {
        let t = self.case.input(name);
        let x = tensor::<D>(&t.data, &t.shape, self.dtype, &self.dev);
        if self.diff.contains(&name) {
            x.require_grad()
        } else {
            x
        }
    }
    /// A float input as rank 1.
    pub fn f1(&self, name: &str) -> Tensor<1> {
        let x = self.make::<1>(name);
        if self.diff.contains(&name) {
            self.held.borrow_mut().insert(name.into(), Held::R1(x.clone()));
        }
        x
    }
    /// A float input as rank 2 (a `(C,)` row as `(1, C)`).
    pub fn f2(&self, name: &str) -> Tensor<2> {
        let x = self.make::<2>(name);
        if self.diff.contains(&name) {
            self.held.borrow_mut().insert(name.into(), Held::R2(x.clone()));
        }
        x
    }
    /// An optional float input as rank 1.
    pub fn opt1(&self, name: &str) -> Option<Tensor<1>> {
        self.case.inputs.contains_key(name).then(|| self.f1(name))
    }
    /// Class indices as rank 1.
    pub fn i1(&self, name: &str) -> Tensor<1, Int> {
        let t = self.case.input(name);
        int_tensor::<1>(&t.data, &t.shape, &self.dev)
    }
    /// Class indices as rank 2.
    pub fn i2(&self, name: &str) -> Tensor<2, Int> {
        let t = self.case.input(name);
        int_tensor::<2>(&t.data, &t.shape, &self.dev)
    }
    /// The gradient of a tracked input, if it got one.
    pub fn grad(&self, name: &str, g: &Gradients) -> Option<Vec<f64>> {
        self.held.borrow().get(name).and_then(|h| h.grad(g))
    }
}

/// The core's fused result through its description: output and the gradients of the
/// arguments of kind `Input`, with upstream 1.
pub fn core_run<T: Float, L: Op<T>>(loss: &L, c: &Case) -> marginloss::Result<(Vec<T>, Vec<Vec<T>>)> {
    let r = c.reduction();
    let mut shapes: Vec<&[usize]> = Vec::new();
    let mut floats: Vec<Vec<T>> = Vec::new();
    let mut idx: Vec<i64> = Vec::new();
    let present: Vec<_> = L::PARAMS.iter().filter(|p| c.inputs.contains_key(p.name)).collect();
    for p in &present {
        let t = c.input(p.name);
        shapes.push(&t.shape);
        if p.kind == Kind::Index {
            idx = t.as_i64();
        } else {
            floats.push(t.as_vec::<T>());
        }
    }
    let g = loss.geometry(&shapes, r)?;
    let mut fl = floats.iter();
    let args: Vec<Arg<'_, T>> =
        present
            .iter()
            .map(|p| {
                if p.kind == Kind::Index {
                    Arg::Index(&idx[..])
                } else {
                    Arg::Float(&fl.next().unwrap()[..])
                }
            })
            .collect();
    let mut out = vec![T::zero(); g.output_len()];
    let mut grads: Vec<Vec<T>> = present
        .iter()
        .filter(|p| p.kind.has_grad())
        .map(|p| vec![T::zero(); c.input(p.name).data.len()])
        .collect();
    let mut refs: Vec<&mut [T]> = grads.iter_mut().map(|v| &mut v[..]).collect();
    loss.forward_backward_args(&g, &args, &[T::one()], &mut out, &mut refs)?;
    Ok((out, grads))
}

/// Checks one fixture case through burn: the burn output and the gradients from
/// `backward()` (of the output's sum) match torch within the parity tolerance and equal
/// the core's fused `forward_backward` with upstream 1 (outputs bitwise, gradients as
/// numbers: burn accumulates gradients by adding, so a −0 may arrive as +0). Cases marked
/// `compat_only` are rejected in strict mode with the core's message. `make` builds the
/// loss for a mode, `run` calls the burn function. Returns the number of gradients checked.
pub fn check<T: Float, L: Op<T>>(
    c: &Case,
    floor: f64,
    make: impl Fn(Mode) -> L,
    run: impl Fn(&Inputs<'_>, L, bool) -> marginloss::Result<Out>,
) -> usize {
    let run = |i: &Inputs<'_>, l: L| run(i, l, false);
    let dev = device();
    if c.compat_only {
        let inputs = Inputs::new::<L>(c, dev.clone());
        let e = run(&inputs, make(Mode::Strict))
            .err()
            .unwrap_or_else(|| panic!("{}: strict accepted it", c.id()));
        let core_e = core_run::<T, L>(&make(Mode::Strict), c).expect_err("core strict");
        assert_eq!(e.to_string(), core_e.to_string(), "{}: the core's message", c.id());
    }
    let inputs = Inputs::new::<L>(c, dev);
    let out = run(&inputs, make(c.mode())).unwrap_or_else(|e| panic!("{}: {e}", c.id()));
    let got = out.values();
    assert_close(&format!("{} output", c.id()), &got, &c.output, &c.dtype);
    assert_eq!(
        out.dims().iter().product::<usize>(),
        c.output.shape.iter().product::<usize>(),
        "{}: output size",
        c.id()
    );
    let (core_out, core_grads) =
        core_run::<T, L>(&make(c.mode()), c).unwrap_or_else(|e| panic!("{}: core {e}", c.id()));
    let same = got.iter().zip(&core_out).all(|(a, b)| a.to_bits() == b.f64().to_bits());
    assert!(same, "{}: output differs from the core's: {got:?} vs {core_out:?}", c.id());
    let grads = out.backward();
    let diff: Vec<_> = L::PARAMS.iter().filter(|p| p.kind == Kind::Input).collect();
    for (k, p) in diff.iter().enumerate() {
        let g =
            inputs.grad(p.name, &grads).unwrap_or_else(|| panic!("{}: no gradient for {}", c.id(), p.name));
        let gt: Vec<T> = g.iter().map(|&v| T::of(v)).collect();
        if let Some(want) = c.grad(p.name) {
            assert_close_floor(&format!("{} grad {}", c.id(), p.name), &gt, want, &c.dtype, floor);
        }
        let same = gt.iter().zip(&core_grads[k]).all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
        assert!(same, "{}: grad {} differs from the core's fused kernel", c.id(), p.name);
    }
    diff.len()
}

/// The label encoding a case asks for.
pub fn labels(c: &Case) -> marginloss::Labels {
    match c.str_opt("labels") {
        Some("01") => marginloss::Labels::ZeroOne,
        _ => marginloss::Labels::PlusMinusOne,
    }
}

/// Checks one fixture case on the composed path (`run(…, true)`: plain burn ops on Flex
/// with burn's own autodiff) against the fused one (`run(…, false)`): the same error in
/// strict mode for `compat_only` cases, and outputs and gradients equal within the parity
/// tolerance (the composed ops sum in the tensor's dtype, the kernels in f64; `floor` the
/// natural scale of arrays whose exact value is 0, as in [`check`]), NaN where the fused
/// path has NaN. Returns the number of gradients compared.
pub fn check_composed<T: Float, L: Op<T>>(
    c: &Case,
    floor: f64,
    make: impl Fn(Mode) -> L,
    run: impl Fn(&Inputs<'_>, L, bool) -> marginloss::Result<Out>,
) -> usize {
    let dev = device();
    if c.compat_only {
        let (a, b) = (Inputs::new::<L>(c, dev.clone()), Inputs::new::<L>(c, dev.clone()));
        let ef = run(&a, make(Mode::Strict), false).err().expect("fused strict rejects");
        let ec = run(&b, make(Mode::Strict), true)
            .err()
            .unwrap_or_else(|| panic!("{}: composed strict accepted it", c.id()));
        assert_eq!(ec.to_string(), ef.to_string(), "{}: composed error", c.id());
    }
    let (a, b) = (Inputs::new::<L>(c, dev.clone()), Inputs::new::<L>(c, dev));
    let fused = run(&a, make(c.mode()), false).unwrap_or_else(|e| panic!("{}: fused {e}", c.id()));
    let comp = run(&b, make(c.mode()), true).unwrap_or_else(|e| panic!("{}: composed {e}", c.id()));
    assert_eq!(comp.dims(), fused.dims(), "{}: composed shape", c.id());
    let as_fixture = |v: Vec<f64>| fixtures::Tensor { dtype: c.dtype.clone(), shape: vec![v.len()], data: v };
    let got: Vec<T> = comp.values().iter().map(|&v| T::of(v)).collect();
    assert_close_floor(
        &format!("{} composed output", c.id()),
        &got,
        &as_fixture(fused.values()),
        &c.dtype,
        floor,
    );
    let (gf, gc) = (fused.backward(), comp.backward());
    let diff: Vec<_> = L::PARAMS.iter().filter(|p| p.kind == Kind::Input).collect();
    for p in &diff {
        let want = a.grad(p.name, &gf).unwrap_or_else(|| panic!("{}: fused grad {}", c.id(), p.name));
        let got = b.grad(p.name, &gc).unwrap_or_else(|| panic!("{}: composed grad {}", c.id(), p.name));
        let got: Vec<T> = got.iter().map(|&v| T::of(v)).collect();
        assert_close_floor(
            &format!("{} composed grad {}", c.id(), p.name),
            &got,
            &as_fixture(want),
            &c.dtype,
            floor,
        );
    }
    diff.len()
}
