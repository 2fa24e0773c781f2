//! The core crate's fixture loader and parity tolerance (one source, included from
//! `crates/marginloss/tests/common/mod.rs`), plus helpers that turn fixtures into candle
//! tensors.
#![allow(dead_code)]

#[path = "../../../marginloss/tests/common/mod.rs"]
mod fixtures;

pub use fixtures::*;
use marginloss::Float;

// ---------------------------------------------------------------------------------------
// candle helpers

/// The candle dtype of a fixture dtype name.
pub fn candle_dtype(dtype: &str) -> candle_core::DType {
    match dtype {
        "float32" => candle_core::DType::F32,
        "float64" => candle_core::DType::F64,
        other => panic!("dtype {other}"),
    }
}

impl Tensor {
    /// A candle tensor of this fixture tensor, in `dtype` (f64 data rounded to nearest).
    pub fn candle(&self, dtype: candle_core::DType) -> candle_core::Tensor {
        candle_core::Tensor::from_vec(self.data.clone(), self.shape.clone(), &candle_core::Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .expect("tensor")
    }
    /// A candle `Var` of this fixture tensor.
    pub fn var(&self, dtype: candle_core::DType) -> candle_core::Var {
        candle_core::Var::from_tensor(&self.candle(dtype)).expect("var")
    }
    /// A candle i64 tensor of this fixture's class indices.
    pub fn candle_i64(&self) -> candle_core::Tensor {
        candle_core::Tensor::from_vec(self.as_i64(), self.shape.clone(), &candle_core::Device::Cpu)
            .expect("i64")
    }
}

/// All values of a candle tensor, flattened, as `T`.
pub fn values<T: Float + candle_core::WithDType + CandleDType>(t: &candle_core::Tensor) -> Vec<T> {
    t.flatten_all().and_then(|t| t.to_dtype(T::DTYPE_CANDLE)).and_then(|t| t.to_vec1::<T>()).expect("values")
}

/// The candle dtype of a core float type.
pub trait CandleDType {
    const DTYPE_CANDLE: candle_core::DType;
}
impl CandleDType for f32 {
    const DTYPE_CANDLE: candle_core::DType = candle_core::DType::F32;
}
impl CandleDType for f64 {
    const DTYPE_CANDLE: candle_core::DType = candle_core::DType::F64;
}

/// All values of a candle tensor as f64.
pub fn f64s(t: &candle_core::Tensor) -> Vec<f64> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(candle_core::DType::F64))
        .and_then(|t| t.to_vec1::<f64>())
        .expect("values")
}
