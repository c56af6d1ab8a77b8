//! This machine's single-core packaging limits, for `cargo xtask bench` (built as the
//! `pack-limits` example): deflate at kbuild's level on one core, and SHA-256 / SHA-512,
//! each in MB/s, measured on the file given (a binary of the benchmark).
//!
//!   pack-limits <file>   prints `deflate_mb_s <n>`, `sha256_mb_s <n>`, `sha512_mb_s <n>`
//!
//! Deflate is one zlib-rs stream at level 6 (what each of kbuild's compression threads
//! does); the hashes run over the compressed bytes, which is what kbuild hashes. sha2
//! picks SHA-NI (SHA-256) and AVX2 (SHA-512) at run time when the CPU has them; there is
//! no feature to enable for that.

use std::io::Write;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256, Sha512};

/// Each measurement repeats until it has run this long, and reports the best pass.
const MIN_TIME: Duration = Duration::from_millis(1500);

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: pack-limits <file>");
        std::process::exit(2);
    });
    let data = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("pack-limits: cannot read {path}: {e}");
        std::process::exit(1);
    });
    let mut compressed = Vec::new();
    let deflate = best_rate(data.len(), || {
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(data.len() / 2),
            flate2::Compression::new(6),
        );
        gz.write_all(&data).expect("in memory");
        compressed = gz.finish().expect("in memory");
    });
    let sha256 = best_rate(compressed.len(), || {
        std::hint::black_box(Sha256::digest(&compressed));
    });
    let sha512 = best_rate(compressed.len(), || {
        std::hint::black_box(Sha512::digest(&compressed));
    });
    println!("deflate_mb_s {deflate:.1}");
    println!("sha256_mb_s {sha256:.1}");
    println!("sha512_mb_s {sha512:.1}");
    println!(
        "compressed_ratio {:.4}",
        compressed.len() as f64 / data.len() as f64
    );
}

/// MB/s of the fastest of the passes of `f` over `bytes` bytes run in `MIN_TIME` (at
/// least two): the fastest pass is the one least disturbed by anything else running.
fn best_rate(bytes: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut best = f64::MAX;
    let mut passes = 0;
    while passes < 2 || start.elapsed() < MIN_TIME {
        let pass = Instant::now();
        f();
        best = best.min(pass.elapsed().as_secs_f64());
        passes += 1;
    }
    bytes as f64 / 1e6 / best
}
