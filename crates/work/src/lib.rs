//! The demo workload: a deterministic CPU renderer. Frame `N` of a fixed
//! camera path, a zoom into the Mandelbrot set's seahorse valley, rendered
//! into an RGB buffer and encoded as PNG. Real compute for demos and tests,
//! like a film render split across compute centres: `suanwang work render`
//! writes one frame per task.
//!
//! # Determinism
//!
//! The same parameters give the same bytes on every platform and every run:
//! the renderer is single-threaded and uses only IEEE 754 operations that are
//! correctly rounded (`+ - * /`, `sqrt`, `floor`, `round`) and conversions.
//! Rust never contracts `a * b + c` into a fused multiply-add on its own, so
//! the results do not depend on the CPU. The transcendental functions the
//! camera path and colouring need (`exp`, `ln`, `sin`, `cos`) are computed
//! here from series with those operations, not taken from the platform's
//! maths library, whose last bit may differ between systems. The PNG encoder
//! runs with fixed settings and writes no time stamp.
//!
//! # Cost
//!
//! The default frame (1280 x 720, 1,000 to 3,250 iterations per pixel
//! along the path) takes 0.1 s (the first, shallow frames) to 2 s (the
//! deepest) of one core in a release build, 0.8 s on average: about 200
//! core-seconds for the default 240-frame film (measured on a 2-core Intel
//! Xeon VM with `cargo run --release -p suanwang-work --example
//! frame_times`, every 8th frame). Every input is bounded (see
//! [`limits`]); the largest allowed frame is still very expensive (4096 x
//! 4096 pixels at 100,000 iterations), so callers that take parameters from
//! strangers should bound them further.

use std::f64::consts::LN_2;

/// Bounds on every input.
pub mod limits {
    /// Largest width and height, in pixels.
    pub const SIDE_MAX: u32 = 4096;
    /// Most frames in a film; frame indices run from 0 to `FRAMES_MAX - 1`.
    pub const FRAMES_MAX: u32 = 100_000;
    /// Most iterations per pixel.
    pub const ITERATIONS_MAX: u32 = 100_000;
}

/// Default frame size and film length: one frame is 0.1 to 2 s of one
/// core in release, 0.8 s on average.
pub const DEFAULT_WIDTH: u32 = 1280;
pub const DEFAULT_HEIGHT: u32 = 720;
pub const DEFAULT_FRAMES: u32 = 240;

/// What to render: frame `frame` of a film of `frames` frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderSpec {
    pub width: u32,
    pub height: u32,
    /// 0-based; less than `frames`.
    pub frame: u32,
    pub frames: u32,
    /// Iterations per pixel; `None` follows the path (more as it zooms in).
    pub iterations: Option<u32>,
}

impl Default for RenderSpec {
    fn default() -> RenderSpec {
        RenderSpec {
            width: DEFAULT_WIDTH,
            height: DEFAULT_HEIGHT,
            frame: 0,
            frames: DEFAULT_FRAMES,
            iterations: None,
        }
    }
}

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// A parameter out of bounds; `field` is its name (`width`, `height`,
    /// `frame`, `frames` or `iterations`).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

impl WorkError {
    fn invalid(field: &'static str, message: impl Into<String>) -> WorkError {
        WorkError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// The parameter to blame, if one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            WorkError::Invalid { field, .. } => Some(field),
            WorkError::Png(_) => None,
        }
    }
}

impl RenderSpec {
    pub fn validate(&self) -> Result<(), WorkError> {
        use limits::*;
        if self.width == 0 || self.width > SIDE_MAX {
            return Err(WorkError::invalid(
                "width",
                format!("must be 1 to {SIDE_MAX} pixels, not {}", self.width),
            ));
        }
        if self.height == 0 || self.height > SIDE_MAX {
            return Err(WorkError::invalid(
                "height",
                format!("must be 1 to {SIDE_MAX} pixels, not {}", self.height),
            ));
        }
        if self.frames == 0 || self.frames > FRAMES_MAX {
            return Err(WorkError::invalid(
                "frames",
                format!("must be 1 to {FRAMES_MAX}, not {}", self.frames),
            ));
        }
        if self.frame >= self.frames {
            return Err(WorkError::invalid(
                "frame",
                format!(
                    "must be 0 to {} (frames is {}), not {}",
                    self.frames - 1,
                    self.frames,
                    self.frame
                ),
            ));
        }
        if let Some(iterations) = self.iterations {
            if iterations == 0 || iterations > ITERATIONS_MAX {
                return Err(WorkError::invalid(
                    "iterations",
                    format!("must be 1 to {ITERATIONS_MAX}, not {iterations}"),
                ));
            }
        }
        Ok(())
    }

    /// The camera for this frame (the spec must be valid).
    pub fn camera(&self) -> Camera {
        let mut camera = Camera::on_path(self.frame, self.frames);
        if let Some(iterations) = self.iterations {
            camera.iterations = iterations;
        }
        camera
    }
}

// ---------------------------------------------------------------------------
// The camera path.

/// The point the film zooms into: the Misiurewicz point at the centre of a
/// seahorse's double spiral, in the seahorse valley between the main
/// cardioid and the period-2 bulb (Wikipedia's M(23,2), -0.77568377 +
/// 0.13646737i, refined by Newton's method in 60-digit arithmetic). A
/// Misiurewicz point is on the boundary but has no large interior
/// component nearby at any scale: every frame of the zoom is spirals and
/// filaments, and its cost grows slowly with depth.
pub const TARGET: (f64, f64) = (-0.775_683_768_009_053_8, 0.136_467_368_294_690_1);
/// Where the first frame is centred: the whole set in view.
const START: (f64, f64) = (-0.6, 0.0);
/// Width of the view in the complex plane at the first frame.
const START_SPAN: f64 = 3.5;
/// How far the film zooms in, as a power of ten: the last frame's view is
/// `10^ZOOM_DECADES` times narrower than the first. At 4096 pixels the
/// last frame's pixels are still hundreds of f64 steps apart.
const ZOOM_DECADES: f64 = 9.0;
/// The view turns this many radians over the film.
const TURN: f64 = 1.25;
/// Smooth-colouring escape radius, squared: a large radius makes the
/// fractional iteration count accurate.
const ESCAPE_SQUARED: f64 = 256.0 * 256.0;

/// One frame's view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    /// Centre of the view in the complex plane.
    pub center: (f64, f64),
    /// Width of the view in the complex plane.
    pub span: f64,
    /// Rotation of the view, radians.
    pub angle: f64,
    /// Iterations per pixel.
    pub iterations: u32,
    /// Phase of the palette, in [0, 1): the colours drift over the film.
    pub phase: f64,
}

impl Camera {
    /// Frame `frame` of `frames` (`frame < frames`): the zoom is exponential,
    /// so its apparent speed is constant, and the centre glides from the
    /// whole set to the target so that the target keeps its place on
    /// screen.
    pub fn on_path(frame: u32, frames: u32) -> Camera {
        let t = if frames > 1 {
            f64::from(frame.min(frames - 1)) / f64::from(frames - 1)
        } else {
            0.0
        };
        let decades = t * ZOOM_DECADES;
        // 10^-decades = e^(-decades ln 10)
        let shrink = exp(-decades * ln(10.0));
        let span = START_SPAN * shrink;
        let center = (
            TARGET.0 + (START.0 - TARGET.0) * shrink,
            TARGET.1 + (START.1 - TARGET.1) * shrink,
        );
        // Deeper views need more iterations before points near the set
        // escape: about 250 per decade, on top of 1,000.
        let iterations = 1_000 + (decades * 250.0).round() as u32;
        Camera {
            center,
            span,
            angle: t * TURN,
            iterations,
            phase: t * 3.0 - (t * 3.0).floor(),
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering.

/// An RGB image, 8 bits per channel, rows top to bottom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    /// `width * height * 3` bytes.
    pub rgb: Vec<u8>,
}

/// Renders one frame.
pub fn render(spec: &RenderSpec) -> Result<Image, WorkError> {
    spec.validate()?;
    Ok(render_camera(spec.width, spec.height, &spec.camera()))
}

/// Renders one frame as PNG bytes.
pub fn render_png(spec: &RenderSpec) -> Result<Vec<u8>, WorkError> {
    let image = render(spec)?;
    encode_png(&image, spec)
}

/// Renders `camera`'s view at `width` x `height` (both at least 1).
pub fn render_camera(width: u32, height: u32, camera: &Camera) -> Image {
    let (w, h) = (width as usize, height as usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    let pixel = camera.span / f64::from(width);
    let (sin, cos) = sin_cos(camera.angle);
    let half_w = f64::from(width) / 2.0;
    let half_h = f64::from(height) / 2.0;
    for y in 0..height {
        // Pixel centres, y upwards.
        let v = (half_h - f64::from(y) - 0.5) * pixel;
        for x in 0..width {
            let u = (f64::from(x) + 0.5 - half_w) * pixel;
            let c_re = camera.center.0 + (u * cos - v * sin);
            let c_im = camera.center.1 + (u * sin + v * cos);
            let colour = match escape(c_re, c_im, camera.iterations) {
                None => [0, 0, 0],
                Some(smooth) => palette(smooth, camera.phase),
            };
            rgb.extend_from_slice(&colour);
        }
    }
    Image { width, height, rgb }
}

/// The smooth (fractional) iteration count at which `c` escapes, or `None`
/// when it stays bounded for `iterations` steps (it is in the set, as far
/// as this frame can tell).
pub fn escape(c_re: f64, c_im: f64, iterations: u32) -> Option<f64> {
    // The main cardioid and the period-2 bulb are in the set: skip them.
    let x = c_re - 0.25;
    let y2 = c_im * c_im;
    let q = x * x + y2;
    if q * (q + x) <= 0.25 * y2 {
        return None;
    }
    let x = c_re + 1.0;
    if x * x + y2 <= 0.0625 {
        return None;
    }
    let (mut re, mut im) = (0.0f64, 0.0f64);
    let (mut re2, mut im2) = (0.0f64, 0.0f64);
    // Brent's cycle detection: compare z with a saved z, saved afresh at
    // doubling intervals. An orbit that comes back to within `CYCLE` of
    // itself has fallen into an attracting cycle: c is inside the set, and
    // interior pixels cost a few hundred iterations instead of all.
    let (mut saved_re, mut saved_im) = (0.0f64, 0.0f64);
    let mut interval = 8u32;
    let mut since_saved = 0u32;
    let mut n = 0u32;
    while n < iterations {
        im = 2.0 * re * im + c_im;
        re = re2 - im2 + c_re;
        re2 = re * re;
        im2 = im * im;
        n += 1;
        if re2 + im2 > ESCAPE_SQUARED {
            // n + 1 - log2(log|z|): continuous across iteration bands.
            let log_modulus = ln(re2 + im2) / 2.0;
            let nu = ln(log_modulus / LN_2) / LN_2;
            return Some(f64::from(n) + 1.0 - nu);
        }
        if (re - saved_re).abs() < CYCLE && (im - saved_im).abs() < CYCLE {
            return None;
        }
        since_saved += 1;
        if since_saved == interval {
            since_saved = 0;
            interval = interval.saturating_mul(2);
            saved_re = re;
            saved_im = im;
        }
    }
    None
}

/// How close an orbit must come back to itself to count as a cycle: a few
/// f64 steps at |z| near 1, far below the distance an exterior orbit drifts
/// per turn at the deepest zoom (about the pixel size, 4e-12).
const CYCLE: f64 = 1e-15;

/// Colour stops of the palette, cycled: deep blue, sky, white, gold, dark.
const STOPS: [(f64, [f64; 3]); 6] = [
    (0.0, [0.0, 7.0, 100.0]),
    (0.16, [32.0, 107.0, 203.0]),
    (0.42, [237.0, 255.0, 255.0]),
    (0.6425, [255.0, 170.0, 0.0]),
    (0.8575, [0.0, 2.0, 0.0]),
    (1.0, [0.0, 7.0, 100.0]),
];

/// A colour for a smooth iteration count. The square root keeps the
/// bands of deep frames (counts in the thousands) about as wide as those
/// of the first.
fn palette(smooth: f64, phase: f64) -> [u8; 3] {
    let position = smooth.max(0.0).sqrt() / 5.0 + phase;
    let position = position - position.floor();
    let mut i = 0;
    while i + 2 < STOPS.len() && position >= STOPS[i + 1].0 {
        i += 1;
    }
    let (at, low) = STOPS[i];
    let (next, high) = STOPS[i + 1];
    let f = ((position - at) / (next - at)).clamp(0.0, 1.0);
    let channel = |k: usize| (low[k] + (high[k] - low[k]) * f).round().clamp(0.0, 255.0) as u8;
    [channel(0), channel(1), channel(2)]
}

// ---------------------------------------------------------------------------
// PNG.

/// Encodes `image` as an 8-bit RGB PNG, with the frame's parameters in a
/// text chunk. Fixed compression settings and no time stamp: the same image
/// gives the same bytes.
pub fn encode_png(image: &Image, spec: &RenderSpec) -> Result<Vec<u8>, WorkError> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, image.width, image.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        encoder.set_filter(png::Filter::Paeth);
        encoder.add_text_chunk("Software".to_owned(), "suanwang work render".to_owned())?;
        let iterations = spec.camera().iterations;
        encoder.add_text_chunk(
            "Comment".to_owned(),
            format!(
                "Mandelbrot seahorse-valley flythrough, frame {} of {}, {iterations} iterations",
                spec.frame, spec.frames
            ),
        )?;
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&image.rgb)?;
        writer.finish()?;
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------
// Deterministic elementary functions, from correctly rounded operations only.

/// Natural logarithm of a positive, finite, normal `x` (others give NaN).
/// `x = m 2^e` with `m` in [sqrt(1/2), sqrt(2)], and
/// `ln m = 2 atanh(s)`, `s = (m - 1) / (m + 1)`, `|s| < 0.172`.
pub fn ln(x: f64) -> f64 {
    if !(x.is_finite() && x.is_normal() && x > 0.0) {
        return f64::NAN;
    }
    let bits = x.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        exponent += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // s^(2k+1) / (2k+1): 0.0295^13 < 1e-19, far below an ulp.
    let mut term = s;
    let mut sum = 0.0;
    for k in 0..14u32 {
        sum += term / f64::from(2 * k + 1);
        term *= s2;
    }
    2.0 * sum + exponent as f64 * LN_2
}

/// `e^x` for `x` in [-700, 700] (clamped outside).
/// `x = k ln 2 + r`, `|r| <= ln 2 / 2`, `e^x = 2^k e^r`.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let x = x.clamp(-700.0, 700.0);
    let k = (x / LN_2).round();
    // Cody and Waite: ln 2 in two parts, the first with trailing zero bits
    // so that `k * LN2_HI` is exact.
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Taylor series: 0.347^20 / 20! < 1e-27.
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..20u32 {
        term = term * r / f64::from(n);
        sum += term;
    }
    // 2^k exactly: k is within the normal exponent range after the clamp.
    let scale = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    sum * scale
}

/// `(sin x, cos x)` within 1e-15 for `|x| <= 2` (the Taylor series loses
/// accuracy beyond; the camera turns at most [`TURN`] radians).
pub fn sin_cos(x: f64) -> (f64, f64) {
    // x^n / n! up to n = 33: 2^33 / 33! < 1e-26.
    let mut sin = 0.0;
    let mut cos = 0.0;
    let mut term = 1.0; // x^n / n!
    for n in 0..34u32 {
        match n % 4 {
            0 => cos += term,
            1 => sin += term,
            2 => cos -= term,
            _ => sin -= term,
        }
        term = term * x / f64::from(n + 1);
    }
    (sin, cos)
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    /// A small frame, fast even in a debug build.
    fn small(frame: u32) -> RenderSpec {
        RenderSpec {
            width: 96,
            height: 54,
            frame,
            frames: 240,
            iterations: None,
        }
    }

    fn hash(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1.0)
    }

    #[test]
    fn same_frame_same_bytes() {
        let first = render_png(&small(120)).unwrap();
        let second = render_png(&small(120)).unwrap();
        assert_eq!(hash(&first), hash(&second));
        assert_eq!(first, second);
    }

    #[test]
    fn frames_differ() {
        let hashes: Vec<String> = [0, 1, 120, 239]
            .iter()
            .map(|&frame| hash(&render_png(&small(frame)).unwrap()))
            .collect();
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert_ne!(hashes[i], hashes[j], "frames {i} and {j}");
            }
        }
    }

    #[test]
    fn decodes_with_the_requested_size() {
        let spec = RenderSpec {
            width: 64,
            height: 40,
            ..small(30)
        };
        let bytes = render_png(&spec).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buffer).unwrap();
        assert_eq!((info.width, info.height), (64, 40));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        let image = render(&spec).unwrap();
        assert_eq!(&buffer[..info.buffer_size()], &image.rgb[..]);
        // Not a blank frame: the set's boundary is in view.
        let colours: std::collections::BTreeSet<&[u8]> = image.rgb.chunks(3).collect();
        assert!(colours.len() > 50, "{} colours", colours.len());
    }

    /// A pinned hash: a change of maths, palette or encoder shows here. If
    /// the change is meant, update the hash (every frame of a film in
    /// flight must come from one version).
    #[test]
    fn pinned_frame() {
        let bytes = render_png(&small(200)).unwrap();
        assert_eq!(hash(&bytes), PINNED_FRAME_200);
    }

    const PINNED_FRAME_200: &str =
        "c4744e7c1b0f5781fa76f25d55d01348d6d404adc22c0a141c54e78a245a64ed";

    #[test]
    fn limits_are_enforced() {
        let field = |spec: RenderSpec| render(&spec).unwrap_err().field();
        let ok = small(0);
        assert_eq!(field(RenderSpec { width: 0, ..ok }), Some("width"));
        assert_eq!(field(RenderSpec { width: 4097, ..ok }), Some("width"));
        assert_eq!(field(RenderSpec { height: 0, ..ok }), Some("height"));
        assert_eq!(field(RenderSpec { height: 4097, ..ok }), Some("height"));
        assert_eq!(field(RenderSpec { frames: 0, ..ok }), Some("frames"));
        assert_eq!(
            field(RenderSpec {
                frames: 100_001,
                ..ok
            }),
            Some("frames")
        );
        assert_eq!(field(RenderSpec { frame: 240, ..ok }), Some("frame"));
        assert_eq!(
            field(RenderSpec {
                iterations: Some(0),
                ..ok
            }),
            Some("iterations")
        );
        assert_eq!(
            field(RenderSpec {
                iterations: Some(100_001),
                ..ok
            }),
            Some("iterations")
        );
        let message = render(&RenderSpec { width: 5000, ..ok })
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("width") && message.contains("4096"),
            "{message}"
        );
        // The largest values are accepted (validated only: not rendered).
        RenderSpec {
            width: 4096,
            height: 4096,
            frame: 99_999,
            frames: 100_000,
            iterations: Some(100_000),
        }
        .validate()
        .unwrap();
        RenderSpec {
            frame: 0,
            frames: 1,
            ..ok
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn camera_path() {
        let first = Camera::on_path(0, 240);
        let last = Camera::on_path(239, 240);
        assert!(close(first.span, START_SPAN, 1e-15));
        assert!(close(first.center.0, START.0, 1e-15));
        assert!(close(last.span, START_SPAN * 1e-9, 1e-12));
        // The centre nears the target as fast as the view narrows.
        assert!((last.center.0 - TARGET.0).abs() < last.span);
        assert!((last.center.1 - TARGET.1).abs() < last.span);
        assert_eq!(first.iterations, 1_000);
        assert_eq!(last.iterations, 3_250);
        // Monotone zoom.
        let mut span = f64::INFINITY;
        for frame in 0..240 {
            let camera = Camera::on_path(frame, 240);
            assert!(camera.span < span);
            span = camera.span;
        }
        // One frame in a film of one.
        assert!(close(Camera::on_path(0, 1).span, START_SPAN, 1e-15));
    }

    #[test]
    fn elementary_functions_match_std() {
        // Close to the platform's (which may differ in the last bit).
        for i in 1..2000 {
            let x = f64::from(i) * 0.37 + 1e-3;
            assert!(close(ln(x), x.ln(), 4e-16), "ln {x}");
            assert!(close(ln(1.0 / x), (1.0 / x).ln(), 4e-16), "ln 1/{x}");
        }
        for i in -400..400 {
            let x = f64::from(i) * 0.11;
            assert!(close(exp(x), x.exp(), 1e-15), "exp {x}");
        }
        for i in -200..=200 {
            let x = f64::from(i) * 0.01;
            let (sin, cos) = sin_cos(x);
            assert!((sin - x.sin()).abs() < 1e-15, "sin {x}");
            assert!((cos - x.cos()).abs() < 1e-15, "cos {x}");
        }
        assert!(ln(0.0).is_nan() && ln(-1.0).is_nan() && ln(f64::INFINITY).is_nan());
    }

    #[test]
    fn escape_counts() {
        // In the main cardioid and the period-2 bulb.
        assert_eq!(escape(0.0, 0.0, 100), None);
        assert_eq!(escape(-1.0, 0.0, 100), None);
        // Far outside: escapes at once.
        let smooth = escape(2.0, 2.0, 100).unwrap();
        assert!(smooth > 0.0 && smooth < 4.0, "{smooth}");
        // Monotone-ish: closer to the set takes longer.
        let near = escape(-0.75, 0.05, 10_000).unwrap();
        let far = escape(-0.75, 0.5, 10_000).unwrap();
        assert!(near > far, "{near} {far}");
    }
}
