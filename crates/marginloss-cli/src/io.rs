//! Reading arrays from `.npy` and `.csv` files, with every read bounded.
//!
//! * Only regular files are opened unless the user passes `--allow-special-files`: a FIFO,
//!   a character device (`/dev/zero`, `/dev/urandom`, also behind a symlink) or a socket is
//!   refused from its metadata, before any read (and the file is opened non-blocking and
//!   checked again after `open`, so a FIFO without a writer can never block).
//! * No file larger than the cap (`--max-input-bytes`, [`DEFAULT_MAX_INPUT_BYTES`]) is
//!   read. An `.npy` file is read in three steps, each bounded by what the one before
//!   proved: the 10- or 12-byte preamble, the header (at most [`MAX_HEADER_LEN`] bytes),
//!   then exactly `shape × itemsize` data bytes (checked arithmetic; an element count that
//!   overflows is an error naming the shape). A file whose length disagrees with its
//!   header is refused before its data is read.
//! * Large buffers are reserved with `try_reserve`, so an allocation the machine cannot
//!   give is an error, not an abort.
//!
//! The `.npy` header is parsed here (a strict subset of the Python dict literal numpy
//! writes) rather than with npyz's general Python-literal parser: that one allocates the
//! header length the file claims (4 GiB for a 14-byte file), overflows on shapes whose
//! product exceeds `u64`, and reports with multi-line caret art.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use crate::fail::{data, Fail};

/// The default cap on the size of one input file: 2 GiB.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 2 << 30;

/// The longest `.npy` header accepted, in bytes (numpy itself refuses headers over 10,000
/// bytes by default).
pub const MAX_HEADER_LEN: usize = 100_000;

/// The most dimensions an `.npy` array may have (numpy's own limit is 64).
pub const MAX_DIMS: usize = 64;

/// The element type an array was stored with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// `<f4`
    F32,
    /// `<f8`
    F64,
    /// `<i8` (and integer-only CSV)
    I64,
    /// `<i4`
    I32,
    /// `|b1`
    Bool,
}

impl DType {
    /// `true` for float32 and float64.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

/// An n-dimensional array read from a file. Values are kept as `f64` (exact for every
/// supported dtype except int64 beyond 2^53, which are kept in `ints`).
#[derive(Clone, Debug)]
pub struct Array {
    /// The file it came from.
    pub path: PathBuf,
    /// The dtype it was stored with.
    pub dtype: DType,
    /// Its shape (row-major).
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f64>,
    /// The exact values of an integer or bool array.
    pub ints: Option<Vec<i64>>,
}

impl Array {
    /// The path, for messages.
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }
}

/// How input files may be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// The largest file read, in bytes.
    pub max_bytes: u64,
    /// Read FIFOs, devices and sockets too (still bounded by `max_bytes`).
    pub allow_special: bool,
    /// The first line of a CSV file is a header, whatever it holds.
    pub csv_header: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { max_bytes: DEFAULT_MAX_INPUT_BYTES, allow_special: false, csv_header: false }
    }
}

/// Parses a byte count: digits with an optional binary suffix, `K`, `M`, `G` or `T`
/// (powers of 1024; `KiB`, `kb`, … are accepted too).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let bad = || format!("'{s}' is not a byte count (e.g. 500000000, 512M, 2G)");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("'{s}' is too large a byte count"))
}

/// `n` bytes, for messages: `2 GiB`, `1.5 MiB`, `17 bytes`.
pub fn show_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} byte{}", if n == 1 { "" } else { "s" });
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let s = format!("{v:.1}");
    format!("{} {}", s.trim_end_matches(".0"), UNITS[unit])
}

/// Reads the array in `path` (`.npy`, or `.csv`/`.txt`), named `--{arg}` in messages.
pub fn read(path: &Path, arg: &str, opts: &ReadOptions) -> Result<Array, Fail> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let is_npy = match ext.as_deref() {
        Some("npy") => true,
        Some("csv") | Some("txt") => false,
        _ => {
            return Err(data(format!(
                "--{arg} {}: unknown file type (expected a .npy or .csv file)",
                path.display()
            )))
        }
    };
    let bad = |what: String| data(format!("--{arg} {}: {what}", path.display()));
    let (mut file, len) = open(path, opts).map_err(&bad)?;
    let bytes = if is_npy {
        read_npy_bytes(&mut file, len, opts.max_bytes)
    } else {
        read_csv_bytes(&mut file, len, opts.max_bytes)
    }
    .map_err(&bad)?;
    drop(file);
    let parsed = if is_npy { parse_npy(&bytes, opts.max_bytes) } else { parse_csv(&bytes, opts.csv_header) };
    let p = parsed.map_err(bad)?;
    Ok(Array { path: path.to_path_buf(), dtype: p.dtype, shape: p.shape, values: p.values, ints: p.ints })
}

/// An array parsed from bytes, before it is tied to a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    /// The stored dtype.
    pub dtype: DType,
    /// The shape.
    pub shape: Vec<usize>,
    /// The values as `f64`.
    pub values: Vec<f64>,
    /// The exact values of an integer or bool array.
    pub ints: Option<Vec<i64>>,
}

/// Opens `path` for reading: a regular file (with its length), or, with
/// `allow_special`, anything else that can be read (length unknown).
fn open(path: &Path, opts: &ReadOptions) -> Result<(File, Option<u64>), String> {
    let cannot = |e: std::io::Error| format!("cannot read: {e}");
    // From the metadata first, so that a device or FIFO is never even opened.
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if let Some(why) = not_regular(&meta.file_type()) {
        if why == "a directory" || !opts.allow_special {
            return Err(refusal(why));
        }
    }
    let mut oo = std::fs::OpenOptions::new();
    oo.read(true);
    #[cfg(unix)]
    if !opts.allow_special {
        use std::os::unix::fs::OpenOptionsExt;
        // Never blocks, even if the path was swapped for a FIFO since the check above.
        oo.custom_flags(libc::O_NONBLOCK);
    }
    let file = oo.open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    match not_regular(&meta.file_type()) {
        None => Ok((file, Some(meta.len()))),
        Some(why) if why != "a directory" && opts.allow_special => Ok((file, None)),
        Some(why) => Err(refusal(why)),
    }
}

fn refusal(why: &str) -> String {
    if why == "a directory" {
        "is a directory, not a file".into()
    } else {
        format!("is {why}, not a regular file; pass --allow-special-files to read it anyway")
    }
}

/// What a non-regular file is, in words; `None` for a regular file.
fn not_regular(ft: &std::fs::FileType) -> Option<&'static str> {
    if ft.is_file() {
        return None;
    }
    if ft.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if ft.is_char_device() {
            return Some("a character device");
        }
        if ft.is_block_device() {
            return Some("a block device");
        }
        if ft.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

fn too_big(len: u64, cap: u64) -> String {
    format!(
        "is {} ({len} bytes), over the {} input size cap; raise it with --max-input-bytes",
        show_bytes(len),
        show_bytes(cap)
    )
}

/// Appends at most `max` bytes from `r` to `buf`, reserving fallibly. Returns the number
/// of bytes appended (less than `max` only at end of file).
fn read_at_most(r: &mut impl Read, buf: &mut Vec<u8>, max: u64) -> Result<u64, String> {
    const CHUNK: usize = 1 << 16;
    let mut got = 0u64;
    while got < max {
        let want = usize::try_from((max - got).min(CHUNK as u64)).unwrap_or(CHUNK);
        let start = buf.len();
        buf.try_reserve(want)
            .map_err(|_| format!("cannot allocate memory to read {} more bytes", max - got))?;
        buf.resize(start + want, 0);
        let n = loop {
            match r.read(&mut buf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    buf.truncate(start);
                    return Err("cannot read: no data available (a pipe without a writer?)".into());
                }
                Err(e) => {
                    buf.truncate(start);
                    return Err(format!("cannot read: {e}"));
                }
            }
        };
        buf.truncate(start + n);
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    Ok(got)
}

/// Reserves `n` bytes in `buf` up front (a regular file's known length), fallibly.
fn reserve(buf: &mut Vec<u8>, n: u64) -> Result<(), String> {
    let n = usize::try_from(n).map_err(|_| format!("cannot allocate {}", show_bytes(n)))?;
    buf.try_reserve_exact(n).map_err(|_| format!("cannot allocate {} to read it", show_bytes(n as u64)))
}

/// The bytes of a CSV file: at most `cap`.
fn read_csv_bytes(file: &mut File, len: Option<u64>, cap: u64) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    if let Some(len) = len {
        if len > cap {
            return Err(too_big(len, cap));
        }
        reserve(&mut buf, len)?;
    }
    read_at_most(file, &mut buf, cap.saturating_add(1))?;
    if buf.len() as u64 > cap {
        return Err(format!(
            "holds more than the {} input size cap; raise it with --max-input-bytes",
            show_bytes(cap)
        ));
    }
    Ok(buf)
}

/// The bytes of an `.npy` file: the preamble, the header, then exactly the data bytes the
/// header's shape and dtype need (one more is read to detect trailing bytes).
fn read_npy_bytes(file: &mut File, len: Option<u64>, cap: u64) -> Result<Vec<u8>, String> {
    if let Some(len) = len {
        if len > cap {
            return Err(too_big(len, cap));
        }
    }
    let mut buf = Vec::new();
    read_at_most(file, &mut buf, 12)?;
    let (prefix, header_len) = preamble(&buf)?;
    let header_end = prefix + header_len;
    if let Some(len) = len {
        if len < header_end as u64 {
            return Err(format!(
                "not a valid .npy file: truncated header (it claims {header_len} header bytes, the file holds {len} bytes in all)"
            ));
        }
    }
    let need = (header_end - buf.len().min(header_end)) as u64;
    read_at_most(file, &mut buf, need)?;
    if buf.len() < header_end {
        return Err(format!("not a valid .npy file: truncated header ({} of {header_end} bytes)", buf.len()));
    }
    let layout = layout(&buf[..header_end], prefix, cap)?;
    let total = header_end as u64 + layout.data_len;
    if let Some(len) = len {
        check_data_len(&layout, len - header_end as u64)?;
        let more = total - buf.len() as u64;
        reserve(&mut buf, more)?;
    }
    let have = buf.len() as u64 - header_end as u64;
    read_at_most(file, &mut buf, (layout.data_len + 1).saturating_sub(have))?;
    Ok(buf)
}

/// What the header says the data is.
#[derive(Debug)]
struct Layout {
    header_end: usize,
    dtype: DType,
    big_endian: bool,
    item: usize,
    shape: Vec<usize>,
    count: usize,
    data_len: u64,
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::I64 => "int64",
        DType::I32 => "int32",
        DType::Bool => "bool",
    }
}

fn check_data_len(l: &Layout, have: u64) -> Result<(), String> {
    use std::cmp::Ordering;
    let what = format!(
        "its header's shape {:?} of {} needs {} data bytes",
        l.shape,
        dtype_name(l.dtype),
        l.data_len
    );
    match have.cmp(&l.data_len) {
        Ordering::Equal => Ok(()),
        Ordering::Less => Err(format!("truncated or corrupt data: {what}, the file holds {have}")),
        Ordering::Greater => Err(format!(
            "{what}, but the file holds {have} (trailing bytes: the header does not describe the data)"
        )),
    }
}

/// The preamble: magic, version, header length. Returns (offset of the header, its length).
fn preamble(b: &[u8]) -> Result<(usize, usize), String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if b.len() < MAGIC.len() || &b[..MAGIC.len()] != MAGIC {
        return Err("not a valid .npy file: it does not start with the .npy magic \\x93NUMPY".into());
    }
    if b.len() < 10 {
        return Err("not a valid .npy file: truncated preamble".into());
    }
    let (prefix, len) = match b[6] {
        1 => (10, usize::from(u16::from_le_bytes([b[8], b[9]]))),
        2 | 3 => {
            if b.len() < 12 {
                return Err("not a valid .npy file: truncated preamble".into());
            }
            let n = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
            (12, usize::try_from(n).unwrap_or(usize::MAX))
        }
        v => {
            return Err(format!(
                "not a valid .npy file: unknown format version {v}.{} (expected 1, 2 or 3)",
                b[7]
            ))
        }
    };
    if len > MAX_HEADER_LEN {
        return Err(format!(
            "not a valid .npy file: its header claims {len} bytes (more than the {MAX_HEADER_LEN} accepted)"
        ));
    }
    Ok((prefix, len))
}

/// The header dict of an `.npy` file.
#[derive(Debug, Default)]
struct Header {
    descr: Option<Descr>,
    fortran: Option<bool>,
    shape: Option<Vec<u64>>,
}

#[derive(Debug)]
enum Descr {
    Plain(String),
    Structured,
}

/// A cursor over the header text.
struct Lexer<'a> {
    b: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8, what: &str) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }
    fn unexpected(&mut self, what: &str) -> String {
        match self.peek() {
            Some(c) if c.is_ascii_graphic() => {
                format!("malformed header: expected {what} at byte {}, found '{}'", self.i, c as char)
            }
            Some(c) => format!("malformed header: expected {what} at byte {}, found byte 0x{c:02x}", self.i),
            None => format!("malformed header: expected {what}, found the end of the header"),
        }
    }
    fn string(&mut self) -> Result<String, String> {
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.unexpected("a quoted string")),
        };
        self.i += 1;
        let start = self.i;
        while self.i < self.b.len() && self.b[self.i] != q {
            if self.b[self.i] == b'\\' || self.b[self.i] == b'\n' {
                return Err("malformed header: escapes and line breaks in strings are not supported".into());
            }
            self.i += 1;
        }
        if self.i >= self.b.len() {
            return Err("malformed header: unterminated string".into());
        }
        let s = String::from_utf8_lossy(&self.b[start..self.i]).into_owned();
        self.i += 1;
        Ok(s)
    }
    fn word(&mut self) -> &[u8] {
        self.ws();
        let start = self.i;
        while self.i < self.b.len() && (self.b[self.i].is_ascii_alphanumeric() || self.b[self.i] == b'_') {
            self.i += 1;
        }
        &self.b[start..self.i]
    }
    fn int(&mut self) -> Result<u64, String> {
        let at = self.i;
        let w = self.word().to_vec();
        // Python 2's numpy wrote long integers with an L suffix: (3L,).
        let digits = w.strip_suffix(b"L").unwrap_or(&w);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            self.i = at;
            return Err(self.unexpected("a non-negative integer dimension"));
        }
        let mut n = 0u64;
        for &d in digits {
            n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).ok_or_else(|| {
                format!(
                    "malformed header: dimension {} does not fit 64 bits",
                    String::from_utf8_lossy(digits)
                )
            })?;
        }
        Ok(n)
    }
    /// Skips a bracketed value (a structured dtype's list), without recursion.
    fn skip_brackets(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'[' | b'(' => depth += 1,
                b']' | b')' => {
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        return Ok(());
                    }
                }
                b'\'' | b'"' => {
                    self.string()?;
                    continue;
                }
                _ => {}
            }
            self.i += 1;
        }
        Err("malformed header: unbalanced brackets".into())
    }
}

fn parse_header(text: &[u8]) -> Result<Header, String> {
    let mut lx = Lexer { b: text, i: 0 };
    let mut h = Header::default();
    lx.expect(b'{', "'{'")?;
    loop {
        if lx.eat(b'}') {
            break;
        }
        let key = lx.string()?;
        lx.expect(b':', "':'")?;
        match key.as_str() {
            "descr" if h.descr.is_none() => {
                h.descr = Some(if lx.peek() == Some(b'[') {
                    lx.skip_brackets()?;
                    Descr::Structured
                } else {
                    Descr::Plain(lx.string()?)
                })
            }
            "fortran_order" if h.fortran.is_none() => {
                let at = lx.i;
                h.fortran = Some(match lx.word() {
                    b"True" => true,
                    b"False" => false,
                    _ => {
                        lx.i = at;
                        return Err(lx.unexpected("True or False"));
                    }
                })
            }
            "shape" if h.shape.is_none() => {
                lx.expect(b'(', "'(' opening the shape")?;
                let mut dims = Vec::new();
                while !lx.eat(b')') {
                    if dims.len() == MAX_DIMS {
                        return Err(format!("the shape has more than {MAX_DIMS} dimensions"));
                    }
                    dims.push(lx.int()?);
                    if !lx.eat(b',') {
                        lx.expect(b')', "',' or ')' in the shape")?;
                        break;
                    }
                }
                h.shape = Some(dims);
            }
            "descr" | "fortran_order" | "shape" => {
                return Err(format!("malformed header: the key '{key}' appears twice"))
            }
            other => {
                return Err(format!(
                    "malformed header: unknown key '{}' (expected descr, fortran_order, shape)",
                    other.chars().take(40).collect::<String>()
                ))
            }
        }
        if !lx.eat(b',') {
            lx.expect(b'}', "',' or '}'")?;
            break;
        }
    }
    if lx.peek().is_some() {
        return Err(lx.unexpected("the end of the header after '}'"));
    }
    Ok(h)
}

const SUPPORTED: &str = "expected float32, float64, int64, int32 or bool";

/// The preamble and header (`head` holds exactly those bytes), checked against the cap.
fn layout(head: &[u8], prefix: usize, cap: u64) -> Result<Layout, String> {
    let h = parse_header(&head[prefix..]).map_err(|e| format!("not a valid .npy file: {e}"))?;
    let missing = |k: &str| format!("not a valid .npy file: the header has no '{k}'");
    let descr = h.descr.ok_or_else(|| missing("descr"))?;
    let fortran = h.fortran.ok_or_else(|| missing("fortran_order"))?;
    let shape64 = h.shape.ok_or_else(|| missing("shape"))?;
    let descr = match descr {
        Descr::Plain(d) => d,
        Descr::Structured => return Err(format!("unsupported dtype: a structured array ({SUPPORTED})")),
    };
    let shown: String = descr.chars().take(40).collect();
    let unsupported = || format!("unsupported dtype '{shown}' ({SUPPORTED})");
    let (order, code) = match descr.as_bytes() {
        [o @ (b'<' | b'>' | b'|' | b'='), rest @ ..] => (*o, rest),
        rest => (b'=', rest),
    };
    let (dtype, item) = match code {
        b"f4" => (DType::F32, 4),
        b"f8" => (DType::F64, 8),
        b"i8" => (DType::I64, 8),
        b"i4" => (DType::I32, 4),
        b"b1" | b"?" => (DType::Bool, 1),
        _ => return Err(unsupported()),
    };
    let big_endian = order == b'>' || (matches!(order, b'|' | b'=') && cfg!(target_endian = "big"));
    if fortran && shape64.len() > 1 {
        return Err("is stored in Fortran order; save it with np.ascontiguousarray".into());
    }
    // Element count with checked arithmetic; every extent must also fit under the cap so
    // that an empty array cannot carry a dimension nothing could allocate.
    let max_elems = cap / item as u64;
    let mut count = 1u64;
    let mut overflow = false;
    for &d in &shape64 {
        match count.checked_mul(d) {
            Some(c) => count = c,
            None => overflow = true,
        }
    }
    if shape64.contains(&0) {
        count = 0;
        overflow = false;
    }
    if overflow {
        return Err(format!(
            "its shape {shape64:?} has more elements than any array can hold (the count overflows)"
        ));
    }
    if let Some(&d) = shape64.iter().find(|&&d| d > max_elems) {
        return Err(format!(
            "its shape {shape64:?} has a dimension of {d}, more {} elements than the {} input size cap allows; raise it with --max-input-bytes",
            dtype_name(dtype),
            show_bytes(cap)
        ));
    }
    let data_len = count.checked_mul(item as u64).filter(|&n| n <= cap).ok_or_else(|| {
        format!(
            "its shape {shape64:?} of {} needs more than the {} input size cap; raise it with --max-input-bytes",
            dtype_name(dtype),
            show_bytes(cap)
        )
    })?;
    let header_end = head.len();
    if data_len.saturating_add(header_end as u64) > cap {
        return Err(format!(
            "its shape {shape64:?} of {} needs {} data bytes, over the {} input size cap; raise it with --max-input-bytes",
            dtype_name(dtype),
            data_len,
            show_bytes(cap)
        ));
    }
    // Bounded by the cap, so these fit.
    let to_usize =
        |v: u64| usize::try_from(v).map_err(|_| format!("its shape {shape64:?} does not fit this machine"));
    let count = to_usize(count)?;
    let shape = shape64.iter().map(|&d| to_usize(d)).collect::<Result<Vec<_>, _>>()?;
    Ok(Layout { header_end, dtype, big_endian, item, shape, count, data_len })
}

fn alloc_err(n: usize) -> String {
    format!("cannot allocate memory for {n} values")
}

/// Parses the bytes of an `.npy` file (the whole file), refusing anything over `cap`.
pub fn parse_npy(bytes: &[u8], cap: u64) -> Result<Parsed, String> {
    let (prefix, header_len) = preamble(bytes)?;
    let header_end = prefix + header_len;
    if bytes.len() < header_end {
        return Err(format!(
            "not a valid .npy file: truncated header ({} of {header_end} bytes)",
            bytes.len()
        ));
    }
    let l = layout(&bytes[..header_end], prefix, cap)?;
    let body = &bytes[header_end..];
    check_data_len(&l, body.len() as u64)?;
    debug_assert_eq!(l.header_end, header_end);
    let mut values: Vec<f64> = Vec::new();
    values.try_reserve_exact(l.count).map_err(|_| alloc_err(l.count))?;
    let mut ints: Option<Vec<i64>> = None;
    let chunks = body.chunks_exact(l.item);
    macro_rules! word {
        ($c:expr, $n:literal) => {{
            let mut a = [0u8; $n];
            a.copy_from_slice($c);
            a
        }};
    }
    match l.dtype {
        DType::F32 => values.extend(chunks.map(|c| {
            let w = word!(c, 4);
            f64::from(if l.big_endian { f32::from_be_bytes(w) } else { f32::from_le_bytes(w) })
        })),
        DType::F64 => values.extend(chunks.map(|c| {
            let w = word!(c, 8);
            if l.big_endian {
                f64::from_be_bytes(w)
            } else {
                f64::from_le_bytes(w)
            }
        })),
        DType::I64 | DType::I32 | DType::Bool => {
            let mut v: Vec<i64> = Vec::new();
            v.try_reserve_exact(l.count).map_err(|_| alloc_err(l.count))?;
            for (i, c) in chunks.enumerate() {
                v.push(match l.dtype {
                    DType::I64 => {
                        let w = word!(c, 8);
                        if l.big_endian {
                            i64::from_be_bytes(w)
                        } else {
                            i64::from_le_bytes(w)
                        }
                    }
                    DType::I32 => {
                        let w = word!(c, 4);
                        i64::from(if l.big_endian { i32::from_be_bytes(w) } else { i32::from_le_bytes(w) })
                    }
                    _ => match c[0] {
                        b @ (0 | 1) => i64::from(b),
                        b => {
                            return Err(format!("corrupt data: byte {b} at index {i} is not a bool (0 or 1)"))
                        }
                    },
                });
            }
            values.extend(v.iter().map(|&i| i as f64));
            ints = Some(v);
        }
    }
    Ok(Parsed { dtype: l.dtype, shape: l.shape, values, ints })
}

/// The longest cell text quoted in a message.
const SHOW_CELL: usize = 40;

fn show_cell(cell: &[u8]) -> String {
    let s = String::from_utf8_lossy(cell);
    if s.chars().count() > SHOW_CELL {
        format!("{}…", s.chars().take(SHOW_CELL).collect::<String>())
    } else {
        s.into_owned()
    }
}

fn parse_number(field: &str) -> Option<f64> {
    // Rust's parser takes inf, infinity and nan in any case, with an optional sign.
    field.parse::<f64>().ok()
}

/// A cell that is a number or begins like one (`0.8x`, `-1..5`, `.5e`): never a header name.
fn looks_numeric(cell: &[u8]) -> bool {
    if std::str::from_utf8(cell).ok().and_then(parse_number).is_some() {
        return true;
    }
    let rest = match cell {
        [b'+' | b'-', rest @ ..] => rest,
        rest => rest,
    };
    match rest {
        [d, ..] if d.is_ascii_digit() => true,
        [b'.', d, ..] => d.is_ascii_digit(),
        _ => false,
    }
}

/// Parses a CSV file: one row a sample, numbers only. A single column gives a 1-D array;
/// otherwise `(rows, columns)`. Integers-only files are int64, others float64.
///
/// The first line is a header when `header` says so, or when every one of its cells is
/// non-empty and none is, or begins like, a number (`0.8x` is a typo, not a name); otherwise every cell of every line must be a
/// number (an error names the line and the cell). Lines holding nothing are skipped.
pub fn parse_csv(bytes: &[u8], header: bool) -> Result<Parsed, String> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(bytes);
    let mut rec = csv::ByteRecord::new();
    let mut values: Vec<f64> = Vec::new();
    let mut ints: Vec<i64> = Vec::new();
    let mut all_int = true;
    let mut cols: Option<(usize, u64)> = None;
    let mut rows = 0usize;
    let mut first = true;
    loop {
        match reader.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let e = e.to_string();
                return Err(format!("malformed CSV: {}", e.lines().next().unwrap_or("unreadable")));
            }
        }
        let line = rec.position().map_or(0, csv::Position::line);
        if rec.len() == 1 && rec[0].is_empty() {
            continue; // a line holding nothing
        }
        if std::mem::take(&mut first) && (header || rec.iter().all(|c| !c.is_empty() && !looks_numeric(c))) {
            continue; // the header
        }
        let hint = if cols.is_none() && !header {
            " (a header line must have no numeric cell; pass --csv-header to skip the first line)"
        } else {
            ""
        };
        match cols {
            None => cols = Some((rec.len(), line)),
            Some((n, at)) if n != rec.len() => {
                let cells = |n: usize| format!("{n} cell{}", if n == 1 { "" } else { "s" });
                return Err(format!("line {line} has {}, line {at} has {}", cells(rec.len()), cells(n)));
            }
            Some(_) => {}
        }
        for (k, cell) in rec.iter().enumerate() {
            let at = format!("line {line}, cell {}", k + 1);
            if cell.is_empty() {
                return Err(format!("{at}: empty cell{hint}"));
            }
            let v = std::str::from_utf8(cell)
                .ok()
                .and_then(parse_number)
                .ok_or_else(|| format!("{at}: '{}' is not a number{hint}", show_cell(cell)))?;
            if values.len() == values.capacity() {
                values.try_reserve(values.len().max(1024)).map_err(|_| alloc_err(values.len() * 2))?;
            }
            values.push(v);
            if all_int {
                match std::str::from_utf8(cell).ok().and_then(|s| s.parse::<i64>().ok()) {
                    Some(i) => {
                        if ints.len() == ints.capacity() {
                            ints.try_reserve(ints.len().max(1024)).map_err(|_| alloc_err(ints.len() * 2))?;
                        }
                        ints.push(i);
                    }
                    None => {
                        all_int = false;
                        ints = Vec::new();
                    }
                }
            }
        }
        rows += 1;
    }
    let cols = cols.map_or(0, |c| c.0);
    let shape = if cols == 1 || rows == 0 { vec![rows] } else { vec![rows, cols] };
    let (dtype, ints) =
        if all_int && !values.is_empty() { (DType::I64, Some(ints)) } else { (DType::F64, None) };
    Ok(Parsed { dtype, shape, values, ints })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let dict = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        let mut h = dict.into_bytes();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h);
        out.extend(data);
        out
    }

    const CAP: u64 = DEFAULT_MAX_INPUT_BYTES;

    #[test]
    fn reads_every_supported_dtype() {
        let f: Vec<u8> = [0.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let p = parse_npy(&npy("<f4", false, "(2,)", &f), CAP).unwrap();
        assert_eq!((p.dtype, p.shape, p.values), (DType::F32, vec![2], vec![0.5, -2.0]));
        let be: Vec<u8> = [0.25f64, 3.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(parse_npy(&npy(">f8", false, "(1, 2)", &be), CAP).unwrap().values, vec![0.25, 3.0]);
        let i: Vec<u8> = [i64::MAX, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse_npy(&npy("<i8", false, "(2L,)", &i), CAP).unwrap().ints, Some(vec![i64::MAX, -1]));
        let i: Vec<u8> = [7i32].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse_npy(&npy("<i4", false, "(1,)", &i), CAP).unwrap().ints, Some(vec![7]));
        assert_eq!(
            parse_npy(&npy("|b1", false, "(3,)", &[1, 0, 1]), CAP).unwrap().values,
            vec![1.0, 0.0, 1.0]
        );
        let p = parse_npy(&npy("<f8", false, "()", &1.5f64.to_le_bytes()), CAP).unwrap();
        assert_eq!((p.shape, p.values), (vec![], vec![1.5]));
    }

    #[test]
    fn a_14_byte_header_bomb_is_refused_without_allocating() {
        let e = parse_npy(b"\x93NUMPY\x02\x00\xf0\xff\xff\xff{}", CAP).unwrap_err();
        assert!(e.contains("header claims 4294967280 bytes"), "{e}");
    }

    #[test]
    fn an_overflowing_element_count_names_the_shape() {
        let e = parse_npy(&npy("<f8", false, "(4294967296, 4294967296)", &[]), CAP).unwrap_err();
        assert!(e.contains("[4294967296, 4294967296]") && e.contains("overflows"), "{e}");
        let e = parse_npy(&npy("<f8", false, "(99999999999999999999,)", &[]), CAP).unwrap_err();
        assert!(e.contains("does not fit 64 bits"), "{e}");
    }

    #[test]
    fn a_shape_over_the_cap_is_refused_before_the_data() {
        let e = parse_npy(&npy("<f4", false, "(1000,)", &[]), 1000).unwrap_err();
        assert!(e.contains("input size cap"), "{e}");
        let e = parse_npy(&npy("<f4", false, "(0, 1099511627776)", &[]), CAP).unwrap_err();
        assert!(e.contains("dimension of 1099511627776"), "{e}");
    }

    #[test]
    fn header_and_data_must_agree() {
        let e = parse_npy(&npy("<f4", false, "(3,)", &[0; 8]), CAP).unwrap_err();
        assert!(e.starts_with("truncated or corrupt data") && e.contains("needs 12 data bytes"), "{e}");
        let e = parse_npy(&npy("<f4", false, "(1,)", &[0; 8]), CAP).unwrap_err();
        assert!(e.contains("trailing bytes"), "{e}");
    }

    #[test]
    fn malformed_headers_get_one_line_each() {
        for (h, want) in [
            ("{'descr': '<f4', 'fortran_order': False}", "no 'shape'"),
            ("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", "expected True or False"),
            ("{'descr': '<f4', 'descr': '<f4'}", "appears twice"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "non-negative integer"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", "unknown key 'x'"),
            ("{'descr': '<f4'", "expected ',' or '}'"),
            ("[1, 2]", "expected '{'"),
            ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", "structured array"),
            ("{'descr': '<u1', 'fortran_order': False, 'shape': (1,)}", "unsupported dtype '<u1'"),
            ("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}", "Fortran order"),
        ] {
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend((h.len() as u16).to_le_bytes());
            b.extend(h.as_bytes());
            let e = parse_npy(&b, CAP).unwrap_err();
            assert!(e.contains(want) && !e.contains('\n'), "{h}: {e}");
        }
        assert!(parse_npy(b"PK\x03\x04", CAP).unwrap_err().contains("magic"));
        assert!(parse_npy(b"\x93NUMPY\x09\x00\x00\x00", CAP).unwrap_err().contains("version 9"));
    }

    #[test]
    fn bools_other_than_0_and_1_are_corrupt() {
        let e = parse_npy(&npy("|b1", false, "(2,)", &[1, 7]), CAP).unwrap_err();
        assert!(e.contains("byte 7 at index 1"), "{e}");
    }

    #[test]
    fn csv_header_only_when_no_cell_is_a_number() {
        let p = parse_csv(b"score,label\n1,2\n3,4\n", false).unwrap();
        assert_eq!((p.shape, p.ints), (vec![2, 2], Some(vec![1, 2, 3, 4])));
        let e = parse_csv(b"0.8x,1,2\n1,2,3\n", false).unwrap_err();
        assert!(e.starts_with("line 1, cell 1: '0.8x' is not a number") && e.contains("--csv-header"), "{e}");
        let e = parse_csv(b"0.8x\n1\n", false).unwrap_err();
        assert!(e.starts_with("line 1, cell 1: '0.8x' is not a number"), "{e}");
        assert_eq!(parse_csv(b"x1,-y\n1,2\n", false).unwrap().values, vec![1.0, 2.0]);
        assert!(parse_csv(b"-.5q\n1\n", false).is_err());
        let p = parse_csv(b"0.8x,1,2\n1,2,3\n", true).unwrap();
        assert_eq!(p.values, vec![1.0, 2.0, 3.0]);
        // with --csv-header the first line is skipped even when numeric
        assert_eq!(parse_csv(b"1\n2\n", true).unwrap().values, vec![2.0]);
    }

    #[test]
    fn csv_typos_name_line_and_cell() {
        let e = parse_csv(b"1,2\n3,4\n5,6x\n", false).unwrap_err();
        assert_eq!(e, "line 3, cell 2: '6x' is not a number");
        let e = parse_csv(b",,\n1,2,3\n", false).unwrap_err();
        assert!(e.starts_with("line 1, cell 1: empty cell"), "{e}");
        let e = parse_csv(b"1,2\n3\n", false).unwrap_err();
        assert_eq!(e, "line 2 has 1 cell, line 1 has 2 cells");
        let e = parse_csv(b"1\n\"a\nb\"\n", false).unwrap_err();
        assert!(e.starts_with("line 2, cell 1: 'a\nb' is not a number"), "{e}");
    }

    #[test]
    fn csv_blank_lines_and_non_finite_words() {
        let p = parse_csv(b"1.5\n\n  \nnan\n-inf\n", false).unwrap();
        assert_eq!(p.shape, vec![3]);
        assert!(p.values[1].is_nan() && p.values[2] == f64::NEG_INFINITY);
        assert_eq!(parse_csv(b"", false).unwrap().shape, vec![0]);
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("1X").is_err());
        assert!(parse_bytes("99999999999T").is_err());
        assert_eq!(show_bytes(2 << 30), "2 GiB");
        assert_eq!(show_bytes(1536 << 10), "1.5 MiB");
        assert_eq!(show_bytes(17), "17 bytes");
    }
}
