//! Times frames of the default film, one core:
//! `cargo run --release -p suanwang-work --example frame_times [STEP]`
//! renders every STEP-th frame (default 24) at the default size and prints
//! each frame's seconds, then the minimum, mean and maximum.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use suanwang_work::{render_png, RenderSpec, DEFAULT_FRAMES};

fn main() {
    let step: u32 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("STEP is a positive integer"))
        .unwrap_or(24)
        .max(1);
    let mut times = Vec::new();
    let mut frame = 0;
    while frame < DEFAULT_FRAMES {
        let spec = RenderSpec {
            frame,
            ..RenderSpec::default()
        };
        let started = Instant::now();
        let bytes = render_png(&spec).expect("a valid frame");
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "frame {frame:3}: {seconds:.3} s, {} iterations, {} bytes",
            spec.camera().iterations,
            bytes.len()
        );
        times.push(seconds);
        frame += step;
    }
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{} frames of {}x{}: min {min:.3} s, mean {mean:.3} s, max {max:.3} s",
        times.len(),
        suanwang_work::DEFAULT_WIDTH,
        suanwang_work::DEFAULT_HEIGHT
    );
}
