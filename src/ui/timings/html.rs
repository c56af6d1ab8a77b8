//! `kbuild-timings.html`: one self-contained page (no script, font, style or image from
//! anywhere else; a Content-Security-Policy forbids fetching any) with a Gantt chart in
//! inline SVG, one row per lane, the engines' busy shares and bytes synced, a table of every
//! span, and the report itself as JSON in `<script type="application/json"
//! id="kbuild-timings">` for tools (and tests) to read back. Every text from the run (job
//! and lane names) is escaped for where it goes.

use std::fmt::Write;

use super::{LaneKind, Report, Span, SpanKind};
use crate::units::human_bytes;

/// Width of the lane-name column and of the time axis, in SVG units (pixels at 100 %).
const NAMES_WIDTH: f64 = 230.0;
const CHART_WIDTH: f64 = 1100.0;
const ROW_HEIGHT: f64 = 24.0;
const BAR_HEIGHT: f64 = 18.0;
const AXIS_HEIGHT: f64 = 24.0;
/// About how wide a character of the 11px bar labels is, to tell whether a label fits.
const CHAR_WIDTH: f64 = 6.4;
/// Lane names longer than this are shortened (from the front: endpoints differ at the end).
const LANE_NAME_CHARS: usize = 32;

pub fn page(report: &Report) -> String {
    let mut html = String::with_capacity(16 * 1024);
    let title = format!("kbuild timings: {}", report.command);
    let status = if report.ok { "ok" } else { "failed" };
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{title}</h1>
<p class="summary"><span class="status {status}">{status}</span> in {wall} wall time · {spans} · kbuild {version}</p>
"#,
        title = escape(&title),
        wall = seconds(report.wall_seconds),
        spans = crate::units::count(report.spans.len(), "span", "spans"),
        version = escape(&report.kbuild_version),
    );
    engines_table(&mut html, report);
    html.push_str("<h2>Timeline</h2>\n");
    html.push_str(&chart(report));
    html.push_str(LEGEND);
    spans_table(&mut html, report);
    let _ = write!(
        html,
        "<script type=\"application/json\" id=\"kbuild-timings\">{}</script>\n</body>\n</html>\n",
        script_json(&serde_json::to_string(report).expect("timings serialize"))
    );
    html
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.status { font-weight: bold; padding: 0 6px; border-radius: 3px; color: #fff; }
.status.ok { background: #3a7d34; } .status.failed { background: #c0392b; }
table { border-collapse: collapse; } th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.share { display: inline-block; height: 10px; background: #59a14f; vertical-align: middle; }
svg { font: 11px system-ui, sans-serif; display: block; }
svg .lane-bg { fill: #f6f6f6; } svg .grid { stroke: #ddd; } svg .tick { fill: #666; }
svg .lane-name { fill: #222; } svg .bar-label { fill: #fff; pointer-events: none; }
svg .phase rect { fill: #4e79a7; } svg .job rect { fill: #59a14f; }
svg .step rect { fill: #b07aa1; } svg .package rect { fill: #e08a1e; } svg .failed rect { fill: #c0392b; }
.key.phase { background: #4e79a7; } .key.job { background: #59a14f; }
.key.step { background: #b07aa1; } .key.package { background: #e08a1e; } .key.failed { background: #c0392b; }
.key { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: -1px; }
tr.failed td { color: #c0392b; }
";

const LEGEND: &str = "<p class=\"legend\"><span class=\"key phase\"></span>phase\
<span class=\"key job\"></span>build job on an engine<span class=\"key step\"></span>engine step\
<span class=\"key package\"></span>artifact written<span class=\"key failed\"></span>failed or cut short</p>\n";

fn engines_table(html: &mut String, report: &Report) {
    html.push_str("<h2>Engines</h2>\n");
    if report.engines.is_empty() {
        html.push_str("<p>No engine ran a job in this run.</p>\n");
        return;
    }
    html.push_str("<table class=\"engines\">\n<tr><th>engine</th><th>jobs</th><th>busy</th><th>busy share</th><th>bytes synced</th></tr>\n");
    for engine in &report.engines {
        let percent = engine.busy_share * 100.0;
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{percent:.1} % <span class=\"share\" style=\"width:{:.0}px\"></span></td><td class=\"num\">{}</td></tr>",
            escape(&engine.name),
            engine.jobs,
            seconds(engine.busy_seconds),
            percent,
            human_bytes(engine.bytes_synced),
        );
    }
    html.push_str("</table>\n");
}

fn spans_table(html: &mut String, report: &Report) {
    html.push_str("<h2>Spans</h2>\n<table class=\"spans\">\n<tr><th>lane</th><th>what</th><th>kind</th><th>start</th><th>end</th><th>took</th><th></th></tr>\n");
    for span in &report.spans {
        let _ = writeln!(
            html,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            if span.ok { "" } else { " class=\"failed\"" },
            escape(&span.lane),
            escape(&span.label),
            kind_name(span.kind),
            seconds(span.start),
            seconds(span.end),
            seconds(span.seconds()),
            if span.ok { "" } else { "failed" },
        );
    }
    html.push_str("</table>\n");
}

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Phase => "phase",
        SpanKind::Job => "job",
        SpanKind::Step => "step",
        SpanKind::Package => "package",
    }
}

/// The Gantt chart: a time axis on top, then one band per lane, each span a bar with its
/// label (when it fits) and a tooltip; spans that overlap on a lane take rows of their own.
fn chart(report: &Report) -> String {
    let wall = report.wall_seconds.max(0.001);
    let scale = CHART_WIDTH / wall;
    let mut bands = Vec::new();
    let mut y = AXIS_HEIGHT;
    for lane in &report.lanes {
        let spans: Vec<&Span> = report
            .spans
            .iter()
            .filter(|s| s.lane == lane.name)
            .collect();
        let rows = pack_rows(&spans);
        let height = ROW_HEIGHT * (rows.iter().copied().max().map_or(1, |r| r + 1)) as f64;
        bands.push((lane, spans, rows, y, height));
        y += height + 2.0;
    }
    let width = NAMES_WIDTH + CHART_WIDTH + 20.0;
    let height = y + 4.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" style=\"max-width:{width:.0}px\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"timeline of the run\">"
    );
    let step = tick_step(wall);
    let mut tick = 0.0;
    while tick <= wall + step * 1e-6 {
        let x = NAMES_WIDTH + tick * scale;
        let _ = writeln!(
            svg,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            AXIS_HEIGHT - 4.0,
            height,
            AXIS_HEIGHT - 8.0,
            tick_label(tick, step),
        );
        tick += step;
    }
    for (lane, spans, rows, top, band) in &bands {
        let _ = writeln!(
            svg,
            "<g class=\"lane lane-{}\"><rect class=\"lane-bg\" x=\"0\" y=\"{top:.1}\" width=\"{width:.0}\" height=\"{band:.1}\"/><text class=\"lane-name\" x=\"6\" y=\"{:.1}\"><title>{}</title>{}</text>",
            lane_class(lane.kind),
            top + ROW_HEIGHT / 2.0 + 4.0,
            escape(&lane.name),
            escape(&shorten(&lane.name, LANE_NAME_CHARS)),
        );
        for (span, row) in spans.iter().zip(rows) {
            bar(
                &mut svg,
                span,
                NAMES_WIDTH + span.start * scale,
                span.seconds() * scale,
                top + *row as f64 * ROW_HEIGHT,
            );
        }
        svg.push_str("</g>\n");
    }
    svg.push_str("</svg>\n");
    svg
}

fn lane_class(kind: LaneKind) -> &'static str {
    match kind {
        LaneKind::Kbuild => "kbuild",
        LaneKind::Engine => "engine",
        LaneKind::Package => "package",
        LaneKind::Other => "other",
    }
}

/// One span's bar at `x` (`width` wide) in the row whose top is `top`.
fn bar(svg: &mut String, span: &Span, x: f64, width: f64, top: f64) {
    let took = seconds(span.seconds());
    let failed = if span.ok { "" } else { " failed" };
    let tooltip = format!(
        "{} ({}): {took}, from {} to {}{}",
        span.label,
        span.lane,
        seconds(span.start),
        seconds(span.end),
        if span.ok { "" } else { ", failed" }
    );
    let width = width.max(1.0);
    let bar_top = top + (ROW_HEIGHT - BAR_HEIGHT) / 2.0;
    let _ = write!(
        svg,
        "<g class=\"span {}{failed}\"><title>{}</title><rect x=\"{x:.1}\" y=\"{bar_top:.1}\" width=\"{width:.1}\" height=\"{BAR_HEIGHT:.0}\" rx=\"3\"/>",
        kind_name(span.kind),
        escape(&tooltip),
    );
    if let Some(text) = bar_text(&span.label, &took, width) {
        let _ = write!(
            svg,
            "<text class=\"bar-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 4.0,
            bar_top + BAR_HEIGHT / 2.0 + 4.0,
            escape(&text)
        );
    }
    svg.push_str("</g>\n");
}

/// What fits in a bar `width` wide: the label and the duration, else the label, else the
/// label shortened, else nothing (the tooltip and the table still say it all).
fn bar_text(label: &str, took: &str, width: f64) -> Option<String> {
    let fits = |chars: usize| chars as f64 * CHAR_WIDTH + 8.0 <= width;
    let with_time = format!("{label} {took}");
    if fits(with_time.chars().count()) {
        return Some(with_time);
    }
    let chars = label.chars().count();
    if fits(chars) {
        return Some(label.to_string());
    }
    let room = ((width - 8.0) / CHAR_WIDTH).floor() as usize;
    (room >= 4).then(|| {
        let head: String = label.chars().take(room - 1).collect();
        format!("{head}…")
    })
}

/// The row of each span (sorted by start) within its lane: the first row free by its start.
fn pack_rows(spans: &[&Span]) -> Vec<usize> {
    let mut row_ends: Vec<f64> = Vec::new();
    spans
        .iter()
        .map(
            |span| match row_ends.iter().position(|&end| end <= span.start) {
                Some(row) => {
                    row_ends[row] = span.end;
                    row
                }
                None => {
                    row_ends.push(span.end);
                    row_ends.len() - 1
                }
            },
        )
        .collect()
}

/// A round tick interval giving at most ten ticks: 1, 2 or 5 times a power of ten below ten
/// seconds, then steps a clock reads well (15 s, 30 s, 1 min, 2 min, 5 min, ...).
fn tick_step(wall: f64) -> f64 {
    const CLOCK: [f64; 9] = [10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0];
    let raw = (wall / 10.0).max(0.001);
    if raw > 5.0 {
        return CLOCK
            .into_iter()
            .find(|step| *step >= raw)
            .unwrap_or_else(|| (raw / 3600.0).ceil() * 3600.0);
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

fn tick_label(tick: f64, step: f64) -> String {
    if step < 1.0 {
        format!("{tick:.1}s")
    } else if tick >= 60.0 && step >= 10.0 {
        format!("{}m{:02.0}s", (tick / 60.0).floor(), tick % 60.0)
    } else {
        format!("{tick:.0}s")
    }
}

/// `1.2s`, `3m05.4s`.
fn seconds(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:04.1}s", (secs / 60.0).floor(), secs % 60.0)
    }
}

/// `…` and the last `max - 1` characters of a longer text.
fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let tail: String = text.chars().skip(count - (max - 1)).collect();
    format!("…{tail}")
}

/// Text for HTML and SVG, in element content and in quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text made safe inside `<script>`: no `<` (so no `</script>` or `<!--`), `>` or `&`
/// appears literally. In JSON these characters only occur inside strings, where the
/// `\u` escapes mean the same characters to a JSON parser.
fn script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::super::tests::span;
    use super::super::{Lane, Recorder, KBUILD_LANE};
    use super::*;

    fn report_with(spans: Vec<Span>, wall: f64) -> Report {
        let mut report = Recorder::new().report("kbuild build", true, spans);
        report.wall_seconds = wall;
        report
    }

    /// The JSON between the script tags of `page`.
    fn embedded_json(page: &str) -> &str {
        let open = "<script type=\"application/json\" id=\"kbuild-timings\">";
        let start = page.find(open).expect("the data script") + open.len();
        let len = page[start..].find("</script>").expect("closed");
        &page[start..start + len]
    }

    #[test]
    fn hostile_names_cannot_break_out_of_the_page() {
        let evil = "</script><script>alert(1)</script><!-- \"'&";
        let report = report_with(
            vec![
                span(evil, evil, SpanKind::Job, 0.0, 2.0),
                span(KBUILD_LANE, evil, SpanKind::Phase, 0.0, 1.0),
            ],
            2.0,
        );
        let page = page(&report);
        assert_eq!(
            page.matches("<script").count(),
            1,
            "only the data script opens"
        );
        assert_eq!(page.matches("</script>").count(), 1);
        assert!(!page.contains("<!-- "), "no comment opened by a name");
        assert!(page.contains("&lt;/script&gt;&lt;script&gt;alert(1)"));
        let back: Report = serde_json::from_str(embedded_json(&page)).unwrap();
        assert_eq!(back, report, "the data reads back unchanged");
        assert_eq!(back.spans[0].label, evil);
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(
            script_json(r#"{"a":"</script>&"}"#),
            r#"{"a":"\u003c/script\u003e\u0026"}"#
        );
    }

    #[test]
    fn the_page_shows_each_lane_span_and_busy_share() {
        let spans = vec![
            span(KBUILD_LANE, "source", SpanKind::Phase, 0.0, 1.0),
            span(
                "unix:///var/run/docker.sock",
                "client",
                SpanKind::Job,
                1.0,
                6.0,
            ),
            span(
                "package thread 1",
                "package kubernetes-client-linux-amd64.tar.gz",
                SpanKind::Package,
                6.0,
                8.0,
            ),
        ];
        let mut report = report_with(spans, 10.0);
        report.engines = vec![super::super::engine_usage(
            "unix:///var/run/docker.sock",
            &report.spans,
            10.0,
            &Default::default(),
        )];
        report.lanes.insert(
            1,
            Lane {
                name: "idle".into(),
                kind: LaneKind::Engine,
            },
        );
        let page = page(&report);
        assert!(page.contains("50.0 %"), "busy share of 5 s in 10 s");
        for name in [
            "unix:///var/run/docker.sock",
            "package thread 1",
            "idle",
            KBUILD_LANE,
        ] {
            assert!(page.contains(&format!("<title>{name}</title>")), "{name}");
        }
        assert!(page.contains(
            "<title>client (unix:///var/run/docker.sock): 5.0s, from 1.0s to 6.0s</title>"
        ));
        for external in ["src=", "href=", "<link", "@import", "url("] {
            assert!(
                !page.contains(external),
                "the page loads nothing: {external}"
            );
        }
    }

    #[test]
    fn bar_labels_shrink_to_fit() {
        let label = "build quick-release-client";
        assert_eq!(
            bar_text(label, "3.0s", 1000.0).unwrap(),
            "build quick-release-client 3.0s"
        );
        assert_eq!(bar_text(label, "3.0s", 180.0).unwrap(), label);
        assert_eq!(bar_text(label, "3.0s", 60.0).unwrap(), "build q…");
        assert_eq!(bar_text(label, "3.0s", 20.0), None);
    }

    #[test]
    fn overlapping_spans_take_rows_of_their_own() {
        let a = span("e", "a", SpanKind::Job, 0.0, 4.0);
        let b = span("e", "b", SpanKind::Job, 1.0, 2.0);
        let c = span("e", "c", SpanKind::Job, 2.0, 3.0);
        let d = span("e", "d", SpanKind::Job, 4.0, 5.0);
        assert_eq!(pack_rows(&[&a, &b, &c, &d]), [0, 1, 1, 0]);
    }

    #[test]
    fn ticks_are_round_and_at_most_ten() {
        for (wall, step) in [
            (10.0, 1.0),
            (12.0, 2.0),
            (95.0, 10.0),
            (0.3, 0.05),
            (253.0, 30.0),
            (400.0, 60.0),
            (40_000.0, 7200.0),
        ] {
            assert!(
                (tick_step(wall) - step).abs() < 1e-9,
                "{wall}: {}",
                tick_step(wall)
            );
        }
        for wall in [0.01, 0.7, 3.3, 59.0, 1234.5, 99_999.0] {
            let step = tick_step(wall);
            assert!(wall / step <= 10.0 + 1e-9, "{wall}: {step}");
        }
        assert_eq!(seconds(65.4), "1m05.4s");
        assert_eq!(tick_label(120.0, 20.0), "2m00s");
        assert_eq!(
            shorten("tcp://very-long-host.example:2376", 10),
            "…mple:2376"
        );
    }
}
