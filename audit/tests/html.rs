//! `--format html` is one self-contained page a person reads in a browser:
//! rendered by headless Chromium (scripts/tools/chromium.sh installs it), the
//! screenshot shows the field table with its verdict colours.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{catalog, fixture};
use tally_audit::report::html::{self, ABSENT_RGB, MISSCOPED_RGB, PRESENT_RGB};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1800;

fn chromium() -> PathBuf {
    let cache = std::env::var_os("TALLY_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/tally"));
    let path = cache.join("bin/chromium");
    assert!(
        path.exists(),
        "chromium not found at {}: run scripts/tools/chromium.sh",
        path.display()
    );
    path
}

fn screenshot(page: &Path, png: &Path, profile: &Path) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--force-color-profile=srgb",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--window-size={WIDTH},{HEIGHT}"),
            &format!("--screenshot={}", png.display()),
            &format!("file://{}", page.display()),
        ])
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success() && png.exists(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Decoded RGB pixels, row by row.
fn decode(png_path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    let pixels = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 6)
}

#[test]
fn the_html_report_renders_its_table_with_verdict_colours() {
    let samples: Vec<_> = ["litellm-spendlogs.csv", "envoy-default.txt"]
        .iter()
        .map(|n| tally_audit::formats::parse(n, &std::fs::read(fixture(n)).unwrap()).unwrap())
        .collect();
    let report = tally_audit::checks::audit(&samples, &catalog());
    let page = html::render(&report);
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("<script"),
        "self-contained"
    );
    assert!(
        page.contains("<table>")
            && page.contains("request id")
            && page.contains("What to do before a full gateway rollout")
    );

    let dir = tempfile::tempdir().unwrap();
    let (html_path, png_path) = (dir.path().join("audit.html"), dir.path().join("audit.png"));
    std::fs::write(&html_path, page).unwrap();
    screenshot(&html_path, &png_path, &dir.path().join("profile"));
    if let Some(keep) = std::env::var_os("TALLY_AUDIT_SCREENSHOT") {
        std::fs::copy(&png_path, keep).unwrap();
    }

    let (width, height, pixels) = decode(&png_path);
    assert_eq!((width, height), (WIDTH, HEIGHT));
    for (name, rgb) in [
        ("present", PRESENT_RGB),
        ("absent", ABSENT_RGB),
        ("misscoped", MISSCOPED_RGB),
    ] {
        let hits: Vec<(u32, u32)> = pixels
            .iter()
            .enumerate()
            .filter(|(_, p)| near(**p, rgb))
            .map(|(i, _)| (i as u32 % width, i as u32 / width))
            .collect();
        assert!(hits.len() > 300, "{name} badges are visible ({} pixels)", hits.len());
        // Badges sit in the verdict column of the table, below the title.
        let (min_x, max_x) = (
            hits.iter().map(|h| h.0).min().unwrap(),
            hits.iter().map(|h| h.0).max().unwrap(),
        );
        assert!(max_x - min_x < 140, "{name} badges form one column ({min_x}..{max_x})");
        assert!(
            hits.iter().all(|h| h.1 > 90),
            "{name} badges are in the table, not the header"
        );
        let rows: std::collections::BTreeSet<u32> = hits.iter().map(|h| h.1 / 20).collect();
        assert!(rows.len() >= 2, "{name} appears on several rows");
    }
}
