//! The bad-input catalogue: one case per class of hostile or careless input, each run as a
//! child process under a 1 GiB address-space limit (`ulimit -v`, so that an allocation
//! bomb aborts the child and fails the test instead of passing on a big machine) and a
//! timeout (so that a hang fails it too). Every failure must give the right exit status
//! (2 bad command line, 1 bad data), exactly one line on stderr naming the argument and
//! the file, and nothing on stdout.
#![cfg(target_os = "linux")]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

/// The address-space limit of every child, in KiB (1 GiB).
const LIMIT_KIB: u64 = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

fn run(args: &[OsString]) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("marginloss");
    let script = format!("ulimit -v {LIMIT_KIB} || exit 99; exec \"$0\" \"$@\"");
    assert_cmd::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(bin)
        .args(args)
        // Few threads and malloc arenas, so the limit measures data, not address-space
        // reservations.
        .env("RAYON_NUM_THREADS", "2")
        .env("MALLOC_ARENA_MAX", "2")
        .timeout(TIMEOUT)
        .output()
        .expect("spawn sh")
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// A failure: exit status `code`, one stderr line containing every needle, empty stdout.
fn fails_os(args: &[OsString], code: i32, needles: &[&str]) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: status {:?}, stderr {err}", out.status);
    assert!(out.stdout.is_empty(), "{args:?}: stdout not empty: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.starts_with("marginloss: ") && err.ends_with('\n'), "{args:?}: {err:?}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
    }
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

fn fails(args: &[&str], code: i32, needles: &[&str]) {
    fails_os(&os(args), code, needles)
}

fn succeeds(args: &[&str]) -> String {
    let out = run(&os(args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    assert!(out.stderr.is_empty(), "{args:?}: {err}");
    String::from_utf8(out.stdout).unwrap()
}

/// The bytes of an `.npy` file with this header dict and data (version 1).
fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut h = dict.as_bytes().to_vec();
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

fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    )
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64s(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

struct Dir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
}

impl Dir {
    fn new() -> Dir {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().to_path_buf();
        Dir { _tmp: tmp, path }
    }
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.path.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }
    fn npy(&self, name: &str, descr: &str, shape: &str, data: &[u8]) -> String {
        self.file(name, &npy_bytes(&dict(descr, false, shape), data))
    }
    fn p(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }
}

/// The usual valid pair: scores x (3,) and targets y (3,), float32.
fn pair(d: &Dir) -> (String, String) {
    (
        d.npy("x.npy", "<f4", "(3,)", &f32s(&[0.8, -0.5, 2.0])),
        d.npy("y.npy", "<f4", "(3,)", &f32s(&[-1.0, 1.0, -1.0])),
    )
}

#[test]
fn the_memory_limit_is_in_force() {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("ulimit -v {LIMIT_KIB} && ulimit -v")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), LIMIT_KIB.to_string());
}

#[test]
fn allocation_bombs_in_npy_headers_are_refused_up_front() {
    let d = Dir::new();
    let (x, y) = pair(&d);
    // 14 bytes that claim a 4 GiB header: for every argument, in eval and in check.
    let bomb = d.file("h.npy", b"\x93NUMPY\x02\x00\xf0\xff\xff\xff{}");
    fails(
        &["eval", "hinge", "--input", &bomb, "--target", &y],
        1,
        &["--input", "h.npy", "header claims 4294967280"],
    );
    fails(&["eval", "hinge", "--input", &x, "--target", &bomb], 1, &["--target", "h.npy", "header claims"]);
    fails(&["check", "hinge", "--input", &bomb, "--target", &y], 1, &["--input", "h.npy", "header claims"]);
    fails(
        &["eval", "triplet-margin", "--anchor", &x, "--positive", &x, "--negative", &bomb],
        1,
        &["--negative", "h.npy"],
    );
    // An element count that overflows: an error naming the file and the shape, not an
    // empty array.
    let over = d.npy("over.npy", "<f8", "(4294967296, 4294967296)", &[]);
    fails(
        &["eval", "hinge", "--input", &over, "--target", &y],
        1,
        &["--input", "over.npy", "[4294967296, 4294967296]", "overflows"],
    );
    // A header that promises 1 GiB of data in an 80-byte file: refused from the file's
    // length, before anything is allocated.
    let liar = d.npy("liar.npy", "<f8", "(134217728,)", &[0; 16]);
    fails(&["eval", "hinge", "--input", &liar, "--target", &y], 1, &["--input", "liar.npy", "truncated"]);
    // An empty array whose other dimension no file could hold.
    let wide = d.npy("wide.npy", "<f4", "(0, 1099511627776)", &[]);
    fails(
        &["eval", "hinge", "--input", &wide, "--target", &wide],
        1,
        &["wide.npy", "dimension of 1099511627776"],
    );
    // A shape over the size cap, in a file that does hold the data.
    let big = d.npy("big.npy", "<f8", "(64,)", &f64s(&[1.0; 64]));
    fails(
        &["eval", "hinge", "--input", &big, "--target", &big, "--max-input-bytes", "300"],
        1,
        &["--input", "big.npy", "input size cap", "--max-input-bytes"],
    );
    fails(
        &["check", "hinge", "--input", &big, "--target", &big, "--max-input-bytes", "300"],
        1,
        &["big.npy", "input size cap"],
    );
    // ... which the flag raises.
    let out = succeeds(&["eval", "hinge", "--input", &big, "--target", &big, "--max-input-bytes", "1K"]);
    assert!(out.starts_with("hinge  mean, float64"), "{out}");
    fails(
        &["eval", "hinge", "--input", &x, "--target", &y, "--max-input-bytes", "lots"],
        2,
        &["--max-input-bytes"],
    );
}

#[test]
fn special_files_are_refused_unless_asked_for() {
    let d = Dir::new();
    let (_, y) = pair(&d);
    for dev in ["/dev/zero", "/dev/urandom"] {
        let link = d.path.join(format!("{}.npy", &dev[5..]));
        std::os::unix::fs::symlink(dev, &link).unwrap();
        let link = link.display().to_string();
        fails(
            &["eval", "hinge", "--input", &link, "--target", &y],
            1,
            &["--input", &dev[5..], "character device", "--allow-special-files"],
        );
        fails(&["check", "hinge", "--input", &y, "--target", &link], 1, &["--target", "character device"]);
        // Asked for: still bounded. /dev/zero has no .npy magic, and as CSV it is cut at the cap.
        fails(
            &["eval", "hinge", "--input", &link, "--target", &y, "--allow-special-files"],
            1,
            &["--input", "magic"],
        );
        let csv = d.path.join(format!("{}.csv", &dev[5..]));
        std::os::unix::fs::symlink(dev, &csv).unwrap();
        let out = run(&os(&[
            "eval",
            "hinge",
            "--input",
            &csv.display().to_string(),
            "--target",
            &y,
            "--allow-special-files",
            "--max-input-bytes",
            "1M",
        ]));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("1 MiB input size cap") || err.contains("is not a number"), "{err}");
    }
    // A FIFO with no writer: refused at once, never a hang.
    let fifo = d.path.join("pipe.npy");
    match std::process::Command::new("mkfifo").arg(&fifo).status() {
        Ok(s) if s.success() => {
            let fifo = fifo.display().to_string();
            fails(&["eval", "hinge", "--input", &fifo, "--target", &y], 1, &["--input", "pipe.npy", "FIFO"]);
            fails(&["check", "hinge", "--input", &y, "--target", &fifo], 1, &["--target", "FIFO"]);
        }
        _ => eprintln!("mkfifo unavailable: FIFO case skipped"),
    }
    // A directory.
    let dir = d.path.join("dir.npy");
    std::fs::create_dir(&dir).unwrap();
    fails(
        &["eval", "hinge", "--input", &dir.display().to_string(), "--target", &y],
        1,
        &["--input", "dir.npy", "is a directory"],
    );
}

#[test]
fn bench_sizes_are_checked_before_allocating() {
    fails(
        &["bench", "hinge", "--n", "1000000000000", "--reps", "1"],
        2,
        &["bench hinge --n 1000000000000", "available"],
    );
    fails(
        &["bench", "hinge", "--n", "18446744073709551615", "--reps", "1"],
        2,
        &["--n 18446744073709551615", "overflows"],
    );
    fails(&["bench", "triplet-margin", "--n", "4294967296", "--dim", "4294967296"], 2, &["overflows"]);
    // Under this test's 1 GiB limit even 100M elements do not fit.
    fails(&["bench", "hinge", "--n", "100000000", "--reps", "1"], 2, &["available"]);
    fails(
        &["bench", "hinge", "--n", "1000", "--reps", "18446744073709551615"],
        2,
        &["--reps 18446744073709551615"],
    );
    fails(&["bench", "hinge", "--n", "1000", "--threads", "10000"], 2, &["--threads 10000"]);
    fails(&["bench", "hinge", "--n", "1000", "--threads", "0"], 2, &["--threads"]);
    fails(&["bench", "hinge", "--n", "0"], 2, &["--n"]);
    fails(&["bench", "hinge", "--n=-1"], 2, &["invalid value '-1'", "--n"]);
    fails(&["bench", "hinge", "--n", "99999999999999999999999"], 2, &["--n"]);
    fails(&["bench", "nope"], 2, &["unknown benchmark 'nope'"]);
}

#[test]
fn csv_headers_and_typos() {
    let d = Dir::new();
    let (_, y) = pair(&d);
    let typo_head = d.file("typo_head.csv", b"0.8x\n-0.5\n2.0\n");
    fails(
        &["eval", "hinge", "--input", &typo_head, "--target", &y],
        1,
        &["--input", "typo_head.csv", "line 1, cell 1: '0.8x' is not a number", "--csv-header"],
    );
    // Said to be a header: skipped.
    let head = d.file("head.csv", b"0.8x\n-0.5\n2.0\n1.0\n");
    let out = succeeds(&["eval", "hinge", "--json", "--input", &head, "--target", &y, "--csv-header"]);
    assert!(out.starts_with("{\"loss\":"), "{out}");
    // A word-only first line is a header without the flag.
    let named = d.file("named.csv", b"score\n0.8\n-0.5\n2.0\n");
    succeeds(&["eval", "hinge", "--input", &named, "--target", &y]);
    let typo = d.file("typo.csv", b"0.8\n-0.5\n2.0x\n");
    fails(
        &["eval", "hinge", "--input", &typo, "--target", &y],
        1,
        &["typo.csv", "line 3, cell 1: '2.0x' is not a number"],
    );
    let commas = d.file("commas.csv", b",,\n1,2,3\n");
    fails(
        &["eval", "hinge", "--input", &commas, "--target", &y],
        1,
        &["commas.csv", "line 1, cell 1: empty cell"],
    );
    let ragged = d.file("ragged.csv", b"1,2\n3\n");
    fails(
        &["eval", "hinge", "--input", &ragged, "--target", &y],
        1,
        &["ragged.csv", "line 2 has 1 cell, line 1 has 2 cells"],
    );
    // A quoting slip: the open quote runs to the end of the file, newlines and all.
    let quote = d.file("quote.csv", b"1\n\"2\n3\n");
    fails(
        &["eval", "hinge", "--input", &quote, "--target", &y],
        1,
        &["quote.csv", "line 2, cell 1", "is not a number"],
    );
    let latin1 = d.file("latin1.csv", b"1\n2\xe9\n3\n");
    fails(&["eval", "hinge", "--input", &latin1, "--target", &y], 1, &["latin1.csv", "line 2, cell 1"]);
    let big = d.file("big.csv", "1\n".repeat(100).as_bytes());
    fails(
        &["eval", "hinge", "--input", &big, "--target", &y, "--max-input-bytes", "100"],
        1,
        &["big.csv", "input size cap"],
    );
}

#[test]
fn every_error_is_one_line() {
    let d = Dir::new();
    let (x, y) = pair(&d);
    // bare command: a usage line, not the help
    fails(&[], 2, &["missing subcommand", "--help"]);
    // help and version go to stdout, exit 0
    for args in [&["--help"][..], &["eval", "--help"], &["bench", "--help"], &["--version"]] {
        let out = run(&os(args));
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty() && out.stderr.is_empty(), "{args:?}");
    }
    fails(&["eval"], 2, &["<LOSS>"]);
    fails(&["check"], 2, &["<LOSS>"]);
    fails(&["plot"], 2, &["<LOSS>"]);
    fails(&["frobnicate"], 2, &["unrecognized subcommand 'frobnicate'"]);
    // malformed npy headers (npyz printed parser caret art for these)
    for (name, header) in [
        ("extra_key.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}"),
        ("bad_shape.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, x)}"),
        ("unclosed.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3,"),
        ("list.npy", "[1, 2, 3]"),
        ("newline.npy", "{'descr': '<f4',\n\n 'fortran_order': Nope}"),
    ] {
        let f = d.file(name, &npy_bytes(header, &f32s(&[1.0, 2.0, 3.0])));
        fails(
            &["eval", "hinge", "--input", &f, "--target", &y],
            1,
            &["--input", name, "not a valid .npy file"],
        );
    }
    // a newline in a file name is escaped, not printed
    let odd = d.p("two\nlines.npy");
    fails(
        &["eval", "hinge", "--input", &odd, "--target", &y],
        1,
        &["--input", "two\\nlines.npy", "cannot read"],
    );
    // the summary prints no error and one report
    assert!(succeeds(&["eval", "hinge", "--input", &x, "--target", &y]).starts_with("hinge  mean"));
}

#[test]
fn numbers_in_messages_are_short() {
    let d = Dir::new();
    let (x, y) = pair(&d);
    // On float32 data strict mode refuses a margin float32 cannot hold, in the short form.
    fails(
        &["eval", "hinge", "--input", &x, "--target", &y, "--margin", "-1e300"],
        2,
        &["fits float32", "got -1e300"],
    );
    let f64_args = |m: &'static str| {
        ["eval", "hinge", "--input", x.as_str(), "--target", y.as_str(), "--dtype", "f64", "--margin", m]
    };
    let out = succeeds(&f64_args("-1e300"));
    assert!(out.contains("margin -1e300"), "{out}");
    assert!(!out.contains("00000000000"), "{out}");
    let out = succeeds(&f64_args("5e-324"));
    assert!(out.contains("margin 5e-324"), "{out}");
    let scores = d.npy("scores.npy", "<f8", "(2, 3)", &f64s(&[0.1, 0.5, -0.2, 1.0, 0.0, 0.3]));
    let huge = d.npy("huge.npy", "<f8", "(2,)", &f64s(&[0.0, 1e300]));
    fails(
        &["eval", "multi-margin", "--input", &scores, "--target", &huge],
        1,
        &["--target", "huge.npy", "got 1e300 at target[1]"],
    );
    let tiny = d.npy("tiny.npy", "<f8", "(2,)", &f64s(&[0.0, 5e-324]));
    fails(&["eval", "multi-margin", "--input", &scores, "--target", &tiny], 1, &["got 5e-324 at target[1]"]);
    let svg = d.p("x.svg");
    fails(&["plot", "hinge", "-o", &svg, "--margin=-inf"], 2, &["--margin must be finite, got -inf"]);
}

#[test]
fn messages_say_what_is_wrong_and_exit_codes_follow_one_rule() {
    let d = Dir::new();
    let (x, y) = pair(&d);
    let svg = d.p("x.svg");
    fails(
        &["plot", "hinge", "-o", &svg, "--range=-1e308:1e308"],
        2,
        &["--range '-1e308:1e308'", "overflows"],
    );
    fails(
        &["plot", "squared-hinge", "-o", &svg, "--range=-1e200:1e200"],
        2,
        &["--range", "squared-hinge", "narrower"],
    );
    let big = d.npy("big64.npy", "<f8", "(3,)", &f64s(&[0.5, 1e300, 1.0]));
    fails(
        &["eval", "hinge", "--input", &big, "--target", &y, "--dtype", "f32"],
        1,
        &["--input", "big64.npy", "1e300 at input[1]", "does not fit float32"],
    );
    // An unreadable file names its argument.
    let missing = d.p("missing.npy");
    fails(
        &["eval", "cosine-similarity", "--input1", &missing, "--input2", &x],
        1,
        &["--input1", "missing.npy", "cannot read"],
    );
    let locked = d.npy("locked.npy", "<f4", "(3,)", &f32s(&[1.0, 2.0, 3.0]));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    if std::fs::File::open(&locked).is_ok() {
        eprintln!("running with privileges that ignore file modes: permission case skipped");
    } else {
        fails(
            &["eval", "cosine-similarity", "--input1", &locked, "--input2", &x],
            1,
            &["--input1", "locked.npy", "Permission denied"],
        );
    }
    // A bad option value is a bad command line: 2 in every subcommand, even when a file
    // is also bad.
    fails(&["eval", "hinge", "--input", &x, "--target", &y, "--margin", "nan"], 2, &["margin", "NaN"]);
    fails(&["eval", "hinge", "--input", &missing, "--target", &missing, "--margin", "nan"], 2, &["margin"]);
    fails(&["check", "hinge", "--input", &x, "--target", &y, "--margin", "nan"], 2, &["margin", "NaN"]);
    fails(&["plot", "hinge", "-o", &svg, "--margin", "nan"], 2, &["--margin"]);
    let rows = d.npy("rows.npy", "<f4", "(2, 3)", &f32s(&[0.1, 0.5, -0.2, 1.0, 0.0, 0.3]));
    let cls = d.npy("cls.npy", "<i8", "(2,)", &[0u8, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    fails(
        &["eval", "multi-margin", "--input", &rows, "--target", &cls, "--p", "3"],
        2,
        &["p must be 1 or 2"],
    );
    fails(
        &["check", "multi-margin", "--input", &rows, "--target", &cls, "--p", "3"],
        2,
        &["p must be 1 or 2"],
    );
    fails(
        &["eval", "pairwise-distance", "--input1", &rows, "--input2", &rows, "--p", "0"],
        2,
        &["p must be > 0"],
    );
    fails(&["eval", "pairwise-distance", "--input1", &rows, "--input2", &rows, "--eps", "nan"], 2, &["eps"]);
    fails(
        &["check", "pairwise-distance", "--input1", &rows, "--input2", &rows, "--p", "-1"],
        2,
        &["p must be > 0"],
    );
    fails(&["bench", "hinge", "--dtype", "f16"], 2, &["invalid value 'f16'"]);
}

#[test]
fn classes_that_already_worked_still_do() {
    let d = Dir::new();
    let (x, y) = pair(&d);
    let truncated = d.npy("truncated.npy", "<f4", "(3,)", &f32s(&[1.0, 2.0])[..7]);
    fails(
        &["eval", "hinge", "--input", &truncated, "--target", &y],
        1,
        &["--input", "truncated.npy", "truncated"],
    );
    let magic = d.file("magic.npy", b"PK\x03\x04 this is a zip");
    fails(&["eval", "hinge", "--input", &magic, "--target", &y], 1, &["magic.npy", "magic"]);
    let empty = d.file("empty.npy", b"");
    fails(&["eval", "hinge", "--input", &empty, "--target", &y], 1, &["empty.npy", "magic"]);
    let short = d.npy("short.npy", "<f4", "(1,)", &f32s(&[1.0, 2.0, 3.0]));
    fails(&["eval", "hinge", "--input", &short, "--target", &y], 1, &["short.npy", "trailing bytes"]);
    let fortran = d.file("fortran.npy", &npy_bytes(&dict("<f4", true, "(1, 3)"), &f32s(&[1.0, 2.0, 3.0])));
    fails(&["eval", "hinge", "--input", &fortran, "--target", &y], 1, &["fortran.npy", "Fortran order"]);
    for (descr, size) in [
        ("|u1", 1),
        ("<u4", 4),
        ("<i2", 2),
        ("<f2", 2),
        ("<c8", 8),
        ("<c16", 16),
        ("|S3", 3),
        ("<U3", 12),
        ("|O", 8),
        ("<M8[D]", 8),
    ] {
        let name =
            format!("dtype_{}.npy", descr.chars().filter(char::is_ascii_alphanumeric).collect::<String>());
        let f = d.npy(&name, descr, "(3,)", &vec![0u8; 3 * size]);
        fails(&["eval", "hinge", "--input", &f, "--target", &y], 1, &["--input", &name, "unsupported dtype"]);
    }
    let rec = d.file(
        "record.npy",
        &npy_bytes(
            "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (3,), }",
            &[0; 24],
        ),
    );
    fails(&["eval", "hinge", "--input", &rec, "--target", &y], 1, &["record.npy", "structured"]);
    let bools = d.npy("bools.npy", "|b1", "(3,)", &[1, 9, 0]);
    fails(&["eval", "hinge", "--input", &bools, "--target", &y], 1, &["bools.npy", "not a bool"]);
    // Non-UTF-8 paths: readable, and named (lossily) when missing.
    let raw = d.path.join(OsStr::from_bytes(b"x\xff.npy"));
    std::fs::copy(&x, &raw).unwrap();
    let mut args = os(&["eval", "hinge", "--input"]);
    args.push(raw.clone().into_os_string());
    args.extend(os(&["--target", &y]));
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut args = os(&["eval", "hinge", "--input"]);
    args.push(d.path.join(OsStr::from_bytes(b"gone\xff.npy")).into_os_string());
    args.extend(os(&["--target", &y]));
    fails_os(&args, 1, &["--input", "gone\u{fffd}.npy", "cannot read"]);
    let mut args = os(&["eval"]);
    args.push(OsStr::from_bytes(b"hinge\xff").to_os_string());
    fails_os(&args, 2, &["UTF-8"]);
    // NaN / Inf in strict mode
    let nan = d.npy("nan.npy", "<f4", "(3,)", &f32s(&[0.8, f32::NAN, 2.0]));
    fails(&["eval", "hinge", "--input", &nan, "--target", &y], 1, &["got NaN at input[1]"]);
    let inf = d.npy("inf.npy", "<f4", "(3,)", &f32s(&[0.8, 1.0, f32::NEG_INFINITY]));
    fails(&["eval", "hinge", "--input", &inf, "--target", &y], 1, &["got -inf at input[2]"]);
    // out-of-range class indices, shape mismatch
    let rows = d.npy("rows.npy", "<f4", "(2, 3)", &f32s(&[0.1, 0.5, -0.2, 1.0, 0.0, 0.3]));
    let far: Vec<u8> = [0i64, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    let far = d.npy("far.npy", "<i8", "(2,)", &far);
    fails(&["eval", "multi-margin", "--input", &rows, "--target", &far], 1, &["class index 3 at target[1]"]);
    let neg: Vec<u8> = [-1i64, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let neg = d.npy("neg.npy", "<i8", "(2,)", &neg);
    fails(
        &["eval", "multiclass-hinge", "--input", &rows, "--target", &neg],
        1,
        &["class index -1 at target[0]"],
    );
    let y4 = d.npy("y4.npy", "<f4", "(4,)", &f32s(&[1.0; 4]));
    fails(
        &["eval", "hinge", "--input", &x, "--target", &y4],
        1,
        &["--target has shape [4] but --input has shape [3]"],
    );
    fails(
        &["eval", "hinge", "--input", &d.p("x.tsv"), "--target", &y],
        1,
        &["--input", "x.tsv", "unknown file type"],
    );
    // unknown, repeated, missing flags and values
    fails(
        &["eval", "hinge", "--input", &x, "--target", &y, "--frobnicate"],
        2,
        &["unexpected argument '--frobnicate'"],
    );
    fails(
        &["eval", "hinge", "--input", &x, "--input", &x, "--target", &y],
        2,
        &["--input", "cannot be used multiple times"],
    );
    fails(&["eval", "hinge", "--target", &y, "--input"], 2, &["--input", "value is required"]);
    fails(&["eval", "hinge", "--input", &x], 2, &["hinge needs --target"]);
    fails(
        &["eval", "hinge", "--input", &x, "--target", &y, "--margin", "one"],
        2,
        &["invalid value 'one'", "--margin"],
    );
    fails(
        &["eval", "hinge", "--input", &x, "--target", &y, "--reduction", "avg"],
        2,
        &["invalid value 'avg'"],
    );
    fails(&["eval", "hinge", "--input", &x, "--target", &y, "--p", "2"], 2, &["hinge does not take --p"]);
    fails(&["eval", "nope", "--input", &x], 2, &["unknown loss 'nope'"]);
}
