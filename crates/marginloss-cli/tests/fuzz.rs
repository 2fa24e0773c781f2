//! Fuzz targets for the command line's own code: the `.npy` and CSV readers on arbitrary
//! bytes and the argument parser on arbitrary argument vectors. Under `cargo test` each
//! runs bolero's random engine for its default budget (1 s; `BOLERO_RANDOM_ITERATIONS` or
//! `BOLERO_RANDOM_TEST_TIME_MS` change it) and prints the number of inputs it ran; with
//! `cargo bolero test --sanitizer NONE` the same targets run coverage-guided.
//!
//! Invariants: no panic; an error is one line (after the CLI's escaping) and a result is
//! self-consistent (as many values as the shape holds).
#![cfg(unix)]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use marginloss_cli::io::{parse_csv, parse_npy, DEFAULT_MAX_INPUT_BYTES};
use marginloss_cli::{one_line, parse, ParseExit};

fn report(target: &str, runs: &AtomicUsize) {
    eprintln!("fuzz target {target}: {} inputs", runs.load(Ordering::Relaxed));
}

const HEADER_TOKENS: &[&str] = &[
    "{",
    "}",
    "'descr'",
    ":",
    "'<f4'",
    "'<f8'",
    "'>f8'",
    "'<i8'",
    "'>i4'",
    "'|b1'",
    "'<u1'",
    "'<f2'",
    "[('a', '<f4')]",
    "'fortran_order'",
    "True",
    "False",
    "'shape'",
    "(",
    ")",
    ",",
    "0",
    "1",
    "3",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999",
    "[",
    "]",
    " ",
    "\n",
    "'",
    "\"",
    "L",
    "-1",
    "'x'",
    "\\",
    "\0",
    "\u{e9}",
];

/// An `.npy`-like file from fuzz bytes: raw bytes, a header made of tokens, or a
/// well-formed header over the remaining bytes as data.
fn build_npy(b: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = b.split_first() else { return Vec::new() };
    if mode % 4 == 0 {
        return rest.to_vec();
    }
    let (ctl, data) = rest.split_at(rest.len().min(24));
    let mut data = data.to_vec();
    let header = if mode % 4 == 1 {
        ctl.iter().map(|&t| HEADER_TOKENS[usize::from(t) % HEADER_TOKENS.len()]).collect::<String>()
    } else {
        let pick = |i: usize, n: usize| usize::from(ctl.get(i).copied().unwrap_or(0)) % n;
        let descr = ["<f4", "<f8", ">f8", "<i8", "<i4", "|b1", ">i8", "<u2"][pick(0, 8)];
        let dims: Vec<String> = (0..pick(1, 4))
            .map(|k| {
                let v = ctl.get(2 + k).copied().unwrap_or(0);
                if v == 255 {
                    "4294967296".to_string()
                } else {
                    (v % 9).to_string()
                }
            })
            .collect();
        let shape =
            if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
        let fortran = if pick(6, 5) == 0 { "True" } else { "False" };
        if mode & 0x04 != 0 {
            // exactly the data the header needs (bytes cycled), so the success path runs
            let item = [4usize, 8, 8, 8, 4, 1, 8, 2][pick(0, 8)];
            let need = dims.iter().try_fold(item, |n, d| n.checked_mul(d.parse::<usize>().ok()?));
            if let Some(need) = need.filter(|&n| n <= 1 << 16) {
                let seed = if data.is_empty() { vec![0u8] } else { data.clone() };
                data = seed.iter().copied().cycle().take(need).collect();
                if descr == "|b1" {
                    data.iter_mut().for_each(|v| *v &= 1);
                }
            }
        }
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}\n")
    };
    let version = [1u8, 2, 3, 7][usize::from(mode >> 4) % 4];
    let mut out = b"\x93NUMPY".to_vec();
    out.push(version);
    out.push(0);
    let len = if mode & 0x08 != 0 { header.len() + usize::from(mode >> 6) } else { header.len() };
    if version == 1 {
        out.extend((len as u16).to_le_bytes());
    } else {
        out.extend((len as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(&data);
    out
}

#[test]
fn npy_reader_never_panics_on_arbitrary_bytes() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    static OK: AtomicUsize = AtomicUsize::new(0);
    bolero::check!().for_each(|b: &[u8]| {
        RUNS.fetch_add(1, Ordering::Relaxed);
        let file = build_npy(b);
        for bytes in [&file[..], b] {
            match parse_npy(bytes, DEFAULT_MAX_INPUT_BYTES) {
                Ok(p) => {
                    OK.fetch_add(1, Ordering::Relaxed);
                    assert_eq!(p.values.len(), p.shape.iter().product::<usize>());
                    if let Some(ints) = &p.ints {
                        assert_eq!(ints.len(), p.values.len());
                    }
                }
                Err(e) => assert!(!one_line(&e).contains('\n') && !e.is_empty()),
            }
        }
    });
    report("npy_reader", &RUNS);
    eprintln!("  of which {} parsed", OK.load(Ordering::Relaxed));
}

const CSV_TOKENS: &[&str] = &[
    "1",
    "-2.5",
    "1e308",
    "1e309",
    "nan",
    "-inf",
    "0.8x",
    "x",
    ",",
    "\n",
    "\r\n",
    "\"",
    " ",
    "",
    "\u{ff}",
    "#",
    "9223372036854775808",
];

#[test]
fn csv_reader_never_panics_on_arbitrary_bytes() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    bolero::check!().for_each(|b: &[u8]| {
        RUNS.fetch_add(1, Ordering::Relaxed);
        let tokens: Vec<u8> =
            b.iter().flat_map(|&t| CSV_TOKENS[usize::from(t) % CSV_TOKENS.len()].bytes()).collect();
        for bytes in [b, &tokens[..]] {
            for header in [false, true] {
                match parse_csv(bytes, header) {
                    Ok(p) => {
                        assert_eq!(p.values.len(), p.shape.iter().product::<usize>());
                        if let Some(ints) = &p.ints {
                            assert_eq!(ints.len(), p.values.len());
                        }
                    }
                    Err(e) => assert!(!one_line(&e).contains('\n') && !e.is_empty()),
                }
            }
        }
    });
    report("csv_reader", &RUNS);
}

const ARG_TOKENS: &[&str] = &[
    "eval",
    "check",
    "plot",
    "bench",
    "demo",
    "hinge",
    "multi-margin",
    "triplet-margin",
    "pairwise-distance",
    "--input",
    "--target",
    "--input1",
    "--input2",
    "--anchor",
    "--positive",
    "--negative",
    "--weight",
    "--margin",
    "--p",
    "--eps",
    "--swap",
    "--reduction",
    "--labels",
    "--distance",
    "--torch-compat",
    "--dtype",
    "--json",
    "--max-input-bytes",
    "--allow-special-files",
    "--csv-header",
    "--n",
    "--dim",
    "--classes",
    "--threads",
    "--reps",
    "--range",
    "-o",
    "--output",
    "--grad",
    "--help",
    "-h",
    "--version",
    "-V",
    "--",
    "-",
    "1",
    "-1",
    "nan",
    "-inf",
    "1e309",
    "0",
    "2G",
    "18446744073709551616",
    "none",
    "mean",
    "sum",
    "01",
    "pm1",
    "f32",
    "f64",
    "cosine",
    "x.npy",
    "y.csv",
    "a:b",
    "--margin=-1",
    "--range=-3:3",
    "",
    " ",
    "é",
    "--input=",
];

#[test]
fn argument_parser_never_panics_on_arbitrary_arguments() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    bolero::check!().for_each(|b: &[u8]| {
        RUNS.fetch_add(1, Ordering::Relaxed);
        let mut args: Vec<OsString> = vec!["marginloss".into()];
        let mut it = b.iter();
        while let Some(&t) = it.next() {
            if args.len() > 16 {
                break;
            }
            if t >= 250 {
                // a raw argument: the next few bytes, UTF-8 or not
                let n = usize::from(it.next().copied().unwrap_or(0) % 8);
                args.push(OsString::from_vec(it.by_ref().take(n).copied().collect()));
            } else {
                args.push(ARG_TOKENS[usize::from(t) % ARG_TOKENS.len()].into());
            }
        }
        match parse(args) {
            Ok(_) => {}
            Err(ParseExit::Info(text)) => assert!(!text.is_empty()),
            Err(ParseExit::Usage(line)) => {
                let line = one_line(&line);
                assert!(!line.contains('\n') && !line.is_empty());
            }
        }
    });
    report("argument_parser", &RUNS);
}
