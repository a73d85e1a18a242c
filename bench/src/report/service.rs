//! One section per service configuration: each mix and load, beside the
//! same-SQL baseline.

use std::fmt::Write as _;

use super::{cpu_cell, percent, summary_cells};
use crate::run::{Results, VariantResults};

impl Results {
    pub(super) fn service(&self, out: &mut String, v: &VariantResults) {
        let args = if v.variant.args.is_empty() {
            "default settings".to_string()
        } else {
            format!("`{}`", v.variant.args.join(" "))
        };
        let _ = writeln!(out, "## Service `{}` ({args})\n", v.variant.name);
        let _ = writeln!(
            out,
            "| mix | in flight | req/s | p50 | p99 | p99.9 | error replies | no reply | ÷ same SQL | host CPU/req | rules share |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"
        );
        for phase in &v.phases {
            let ratio = self
                .ratio(phase.mix, phase.concurrency, &phase.summary)
                .map_or("–".into(), |r| format!("{r:.2}×"));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {ratio} | {} | {} |",
                phase.mix.label(),
                phase.concurrency,
                summary_cells(&phase.summary),
                cpu_cell(&phase.summary),
                percent(phase.rules_share)
            );
        }
        out.push('\n');
    }
}
