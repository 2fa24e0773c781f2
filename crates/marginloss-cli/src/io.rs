//! Reading arrays from `.npy` and `.csv` files.

use std::path::{Path, PathBuf};

use crate::fail::{data, Fail};

/// The element type an array was stored with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    I64,
    I32,
    Bool,
}

impl DType {
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

/// An n-dimensional array read from a file. Values are kept as `f64` (exact for every
/// supported dtype except int64 beyond 2^53, which are kept in `ints`).
#[derive(Clone, Debug)]
pub struct Array {
    pub path: PathBuf,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
    pub ints: Option<Vec<i64>>,
}

impl Array {
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }
}

pub fn read(path: &Path, arg: &str) -> Result<Array, Fail> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("npy") => read_npy(path, arg),
        Some("csv") | Some("txt") => read_csv(path, arg),
        _ => {
            Err(data(format!("--{arg} {}: unknown file type (expected a .npy or .csv file)", path.display())))
        }
    }
}

fn read_npy(path: &Path, arg: &str) -> Result<Array, Fail> {
    let bytes =
        std::fs::read(path).map_err(|e| data(format!("--{arg} {}: cannot read: {e}", path.display())))?;
    parse_npy(&bytes, path, arg)
}

/// Parses the bytes of an `.npy` file.
pub fn parse_npy(bytes: &[u8], path: &Path, arg: &str) -> Result<Array, Fail> {
    let bad = |what: String| data(format!("--{arg} {}: {what}", path.display()));
    let npy = npyz::NpyFile::new(bytes).map_err(|e| bad(format!("not a valid .npy file: {e}")))?;
    if npy.order() == npyz::Order::Fortran && npy.shape().len() > 1 {
        return Err(bad("is stored in Fortran order; save it with np.ascontiguousarray".into()));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype_str = npy.dtype().descr();
    let npyz::DType::Plain(ts) = npy.dtype() else {
        return Err(bad(format!(
            "unsupported dtype {dtype_str} (expected float32, float64, int64, int32 or bool)"
        )));
    };
    let read_err = |e: std::io::Error| bad(format!("truncated or corrupt data: {e}"));
    let (dtype, values, ints) = match (ts.type_char(), ts.size_field()) {
        (npyz::TypeChar::Float, 4) => {
            let v = npy.into_vec::<f32>().map_err(read_err)?;
            (DType::F32, v.into_iter().map(f64::from).collect(), None)
        }
        (npyz::TypeChar::Float, 8) => (DType::F64, npy.into_vec::<f64>().map_err(read_err)?, None),
        (npyz::TypeChar::Int, 8) => {
            let v = npy.into_vec::<i64>().map_err(read_err)?;
            (DType::I64, v.iter().map(|&i| i as f64).collect(), Some(v))
        }
        (npyz::TypeChar::Int, 4) => {
            let v = npy.into_vec::<i32>().map_err(read_err)?;
            (
                DType::I32,
                v.iter().map(|&i| f64::from(i)).collect(),
                Some(v.into_iter().map(i64::from).collect()),
            )
        }
        (npyz::TypeChar::Bool, 1) => {
            let v = npy.into_vec::<bool>().map_err(read_err)?;
            (
                DType::Bool,
                v.iter().map(|&b| f64::from(u8::from(b))).collect(),
                Some(v.into_iter().map(i64::from).collect()),
            )
        }
        _ => {
            return Err(bad(format!(
                "unsupported dtype {dtype_str} (expected float32, float64, int64, int32 or bool)"
            )))
        }
    };
    let expected: usize = shape.iter().product();
    if values.len() != expected {
        return Err(bad(format!("holds {} values but its shape {shape:?} needs {expected}", values.len())));
    }
    Ok(Array { path: path.to_path_buf(), dtype, shape, values, ints })
}

/// A CSV file: one row a sample, numbers only, an optional header line. A single column
/// gives a 1-D array; otherwise `(rows, columns)`. Integers-only files are int64, others
/// float64.
fn read_csv(path: &Path, arg: &str) -> Result<Array, Fail> {
    let bad = |what: String| data(format!("--{arg} {}: {what}", path.display()));
    let text = std::fs::read_to_string(path)
        .map_err(|e| data(format!("--{arg} {}: cannot read: {e}", path.display())))?;
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).trim(csv::Trim::All).from_reader(text.as_bytes());
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut all_int = true;
    for (line, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| bad(format!("malformed CSV: {e}")))?;
        if rec.iter().all(|f| f.is_empty()) {
            continue;
        }
        let parsed: Result<Vec<f64>, _> = rec.iter().map(parse_number).collect();
        match parsed {
            Ok(row) => {
                all_int &= rec.iter().all(|f| f.parse::<i64>().is_ok());
                rows.push(row);
            }
            Err(field) if line == 0 && rows.is_empty() => {
                let _ = field; // a header line
            }
            Err(field) => return Err(bad(format!("line {}: '{field}' is not a number", line + 1))),
        }
    }
    let cols = rows.first().map_or(0, Vec::len);
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != cols) {
        return Err(bad(format!("row {} has {} columns, the first row has {cols}", i + 1, r.len())));
    }
    let shape = if cols == 1 || rows.is_empty() { vec![rows.len()] } else { vec![rows.len(), cols] };
    let values: Vec<f64> = rows.into_iter().flatten().collect();
    let (dtype, ints) = if all_int && !values.is_empty() {
        (DType::I64, Some(values.iter().map(|&v| v as i64).collect()))
    } else {
        (DType::F64, None)
    };
    Ok(Array { path: path.to_path_buf(), dtype, shape, values, ints })
}

fn parse_number(field: &str) -> Result<f64, String> {
    match field.to_ascii_lowercase().as_str() {
        "nan" => Ok(f64::NAN),
        "inf" | "+inf" | "infinity" => Ok(f64::INFINITY),
        "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
        _ => field.parse::<f64>().map_err(|_| field.to_string()),
    }
}
