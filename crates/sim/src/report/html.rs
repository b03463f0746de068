//! The report as one self-contained HTML page: inline CSS and SVG, no
//! scripts, fonts or other files, so it opens anywhere and can be mailed.
//! Charts: utilisation over time per hub and kind, tenant cost and wait
//! per policy, and a flow map of data moved between regions drawn at their
//! coordinates.

use std::fmt::Write as _;

use super::{PolicyJson, Report};

const PALETTE: [&str; 12] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939",
];

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.3e}", v)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), num)
}

pub fn render(report: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>suanwang sim: {}</title>\
         <style>body{{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f3f3f3}}td:first-child,th:first-child{{text-align:left}}\
         svg{{background:#fafafa;border:1px solid #ddd;margin:4px}}h2{{margin-top:2em}}.small{{color:#666;font-size:12px}}</style></head><body>",
        esc(&report.scenario)
    );
    let _ = write!(
        h,
        "<h1>suanwang sim: {}</h1><p>seed {} · {} regions · {} sites · {} pools (cpu {} · gpu {} · hpc {} units) · round {} s · lease {} s</p>",
        esc(&report.scenario),
        report.seed,
        report.regions,
        report.sites,
        report.pools,
        report.capacity_units.cpu,
        report.capacity_units.gpu,
        report.capacity_units.hpc,
        report.round_s,
        report.lease_ttl_s
    );
    h.push_str("<h2>Workloads</h2><table><tr><th>name</th><th>source</th><th>file</th><th>jobs</th><th>skipped</th></tr>");
    for w in &report.workloads {
        let skipped: Vec<String> = w
            .skipped
            .iter()
            .map(|s| format!("{} × {}", s.lines, esc(&s.reason)))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.name),
            w.source,
            esc(w.file.as_deref().unwrap_or("—")),
            w.jobs,
            skipped.join("; ")
        );
    }
    h.push_str(
        "</table><details><summary>How jobs got origins, data, circles and bids</summary><ol>",
    );
    for rule in &report.assignment_rules {
        let _ = write!(h, "<li>{}</li>", esc(rule));
    }
    h.push_str("</ol></details>");
    if !report.failures.is_empty() {
        h.push_str("<h2>Failures</h2><table><tr><th>site</th><th>kind</th><th>from h</th><th>to h</th></tr>");
        for f in &report.failures {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.site),
                f.kind,
                f.from_h,
                f.to_h
            );
        }
        h.push_str("</table>");
    }
    summary(&mut h, &report.policies);
    h.push_str("<h2>Cost and wait per policy</h2>");
    let costs: Vec<(String, f64)> = report
        .policies
        .iter()
        .map(|p| (p.policy.to_owned(), p.tenant_cost_yuan))
        .collect();
    bars(&mut h, "tenant cost, yuan", &costs);
    for (k, kind) in ["batch", "gang", "service"].iter().enumerate() {
        let waits: Vec<(String, f64)> = report
            .policies
            .iter()
            .map(|p| {
                (
                    p.policy.to_owned(),
                    p.wait_s[k].p95.unwrap_or(0.0) / 3_600.0,
                )
            })
            .collect();
        if waits.iter().any(|(_, w)| *w > 0.0) {
            bars(&mut h, &format!("{kind} wait p95, hours"), &waits);
        }
    }
    h.push_str("<h2>Utilisation over time per hub</h2>");
    for p in &report.policies {
        for kind in ["cpu", "gpu", "hpc"] {
            utilisation(&mut h, p, kind);
        }
    }
    h.push_str("<h2>Data moved between regions</h2>");
    for p in &report.policies {
        flow_map(&mut h, report, p);
    }
    h.push_str("<h2>Why work waited</h2>");
    for p in &report.policies {
        let _ = write!(h, "<h3>{}</h3><table><tr><th>reason (the engine's explanation)</th><th>job-rounds</th><th>task-hours</th></tr>", p.policy);
        for w in &p.unplaced.waiting {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&w.reason),
                w.job_rounds,
                num(w.task_hours)
            );
        }
        h.push_str("</table>");
        if !p.unplaced.at_end.is_empty() {
            h.push_str(
                "<table><tr><th>not finished at the end, last reason</th><th>jobs</th></tr>",
            );
            for e in &p.unplaced.at_end {
                let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(&e.reason), e.jobs);
            }
            h.push_str("</table>");
        }
    }
    h.push_str("<p class=\"small\">Generated by suanwang sim: the placement engine, state machine and metering of suanwang on a virtual clock. Every number is in report.json.</p></body></html>\n");
    h
}

fn summary(h: &mut String, policies: &[PolicyJson]) {
    h.push_str("<h2>Policies side by side</h2><table><tr><th>measure</th>");
    for p in policies {
        let _ = write!(h, "<th>{}</th>", p.policy);
    }
    h.push_str("</tr>");
    let mut row = |name: &str, f: &dyn Fn(&PolicyJson) -> String| {
        let _ = write!(h, "<tr><td>{name}</td>");
        for p in policies {
            let _ = write!(h, "<td>{}</td>", f(p));
        }
        h.push_str("</tr>");
    };
    row("jobs succeeded / failed / cancelled", &|p| {
        format!(
            "{} / {} / {}",
            p.jobs.succeeded, p.jobs.failed, p.jobs.cancelled
        )
    });
    row("unfinished at the end", &|p| p.jobs.cut_at_end.to_string());
    row("welfare, yuan", &|p| num(p.welfare_yuan));
    row("tenant cost, yuan", &|p| num(p.tenant_cost_yuan));
    row("data moved, GB / yuan", &|p| {
        format!("{} / {}", num(p.data.gb_moved), num(p.data.cost_yuan))
    });
    for (k, kind) in ["batch", "gang", "service"].iter().enumerate() {
        row(&format!("{kind} wait p50 / p95 / p99, s"), &|p| {
            let w = &p.wait_s[k];
            format!("{} / {} / {}", opt(w.p50), opt(w.p95), opt(w.p99))
        });
    }
    row("utilisation cpu / gpu / hpc", &|p| {
        let u = &p.utilisation.mean;
        format!("{} / {} / {}", opt(u.cpu), opt(u.gpu), opt(u.hpc))
    });
    row(
        "GPU fragmentation (mean share of free GPUs stranded)",
        &|p| opt(p.fragmentation.mean),
    );
    row("energy, kWh", &|p| num(p.energy_kwh));
    row("carbon, kg CO2e", &|p| num(p.carbon_kg_co2e));
    row("SCU-hours metered", &|p| num(p.unit_hours.scu_hours));
    row("tasks lost / requeued / failed attempts", &|p| {
        format!(
            "{} / {} / {}",
            p.failures.tasks_lost, p.failures.tasks_requeued, p.failures.attempts_failed
        )
    });
    row("unit-hours re-run", &|p| num(p.failures.unit_hours_rerun));
    row("price gpu, yuan/unit-hour (list + clearing)", &|p| {
        opt(p.price_yuan_per_unit_hour.gpu)
    });
    row("price cpu, yuan/unit-hour (list + clearing)", &|p| {
        opt(p.price_yuan_per_unit_hour.cpu)
    });
    h.push_str("</table>");
}

fn bars(h: &mut String, title: &str, values: &[(String, f64)]) {
    let (w, bar_h) = (420.0, 22.0);
    let height = 30.0 + bar_h * values.len() as f64;
    let max = values.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-9);
    let _ = write!(h, "<svg width=\"{w}\" height=\"{height}\" viewBox=\"0 0 {w} {height}\"><text x=\"8\" y=\"18\">{}</text>", esc(title));
    for (i, (name, v)) in values.iter().enumerate() {
        let y = 26.0 + bar_h * i as f64;
        let len = (w - 200.0) * v / max;
        let _ = write!(
            h,
            "<text x=\"8\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"80\" y=\"{y}\" width=\"{len:.1}\" height=\"16\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 12.0,
            esc(name),
            PALETTE[i % PALETTE.len()],
            84.0 + len,
            y + 12.0,
            num(*v)
        );
    }
    h.push_str("</svg>");
}

fn utilisation(h: &mut String, p: &PolicyJson, kind: &str) {
    let series: Vec<_> = p
        .utilisation
        .series
        .iter()
        .filter(|s| s.kind == kind && s.capacity > 0)
        .collect();
    let times = &p.utilisation.times_h;
    if series.is_empty() || times.len() < 2 {
        return;
    }
    let (w, ht, left, top) = (560.0, 220.0, 40.0, 24.0);
    let (pw, ph) = (w - left - 130.0, ht - top - 24.0);
    let t_max = times.last().copied().unwrap_or(1.0).max(1e-9);
    let _ = write!(
        h,
        "<svg width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\"><text x=\"8\" y=\"16\">{} · {kind} utilisation per region (0–100 %, over {} h)</text>\
         <rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#bbb\"/>",
        p.policy,
        num(t_max)
    );
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points: Vec<String> = times
            .iter()
            .zip(&s.used)
            .map(|(t, u)| {
                let x = left + pw * t / t_max;
                let y = top + ph * (1.0 - *u as f64 / s.capacity as f64);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            h,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{color}\">{}</text>",
            points.join(" "),
            left + pw + 6.0,
            top + 12.0 * (i as f64 + 1.0),
            esc(&s.region)
        );
    }
    h.push_str("</svg>");
}

fn flow_map(h: &mut String, report: &Report, p: &PolicyJson) {
    let regions = &report.region_coordinates;
    if regions.is_empty() {
        return;
    }
    let (w, ht) = (520.0, 420.0);
    let lon = |v: f64| v;
    let (lon_min, lon_max) = regions.iter().fold((f64::MAX, f64::MIN), |(a, b), r| {
        (a.min(lon(r.lon_deg)), b.max(lon(r.lon_deg)))
    });
    let (lat_min, lat_max) = regions.iter().fold((f64::MAX, f64::MIN), |(a, b), r| {
        (a.min(r.lat_deg), b.max(r.lat_deg))
    });
    let x = |v: f64| 30.0 + (w - 60.0) * (v - lon_min) / (lon_max - lon_min).max(1e-9);
    let y = |v: f64| 40.0 + (ht - 70.0) * (1.0 - (v - lat_min) / (lat_max - lat_min).max(1e-9));
    let at = |id: &str| {
        regions
            .iter()
            .find(|r| r.id == id)
            .map(|r| (x(r.lon_deg), y(r.lat_deg)))
    };
    let max_gb = p
        .data
        .flows
        .iter()
        .map(|f| f.gb)
        .fold(0.0, f64::max)
        .max(1e-9);
    let _ = write!(
        h,
        "<svg width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\"><text x=\"8\" y=\"18\">{} · data moved, {} GB ({} yuan); line width by GB</text>",
        p.policy,
        num(p.data.gb_moved),
        num(p.data.cost_yuan)
    );
    for f in &p.data.flows {
        if let (Some((x1, y1)), Some((x2, y2))) = (at(&f.from), at(&f.to)) {
            let width = 0.5 + 6.0 * f.gb / max_gb;
            let _ = write!(
                h,
                "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"#d62728\" stroke-opacity=\"0.5\" stroke-width=\"{width:.2}\"><title>{} → {}: {} GB</title></line>",
                esc(&f.from),
                esc(&f.to),
                num(f.gb)
            );
        }
    }
    for r in regions {
        let _ = write!(
            h,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f77b4\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"#555\">{}</text>",
            x(r.lon_deg),
            y(r.lat_deg),
            x(r.lon_deg) + 4.0,
            y(r.lat_deg) - 3.0,
            esc(&r.id)
        );
    }
    h.push_str("</svg>");
}
