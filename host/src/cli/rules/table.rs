//! Tables for people: columns as wide as their widest cell, so that no
//! reason, message or name is ever cut (a rule author reads the whole of
//! why a case failed).

/// Prints rows in columns as wide as their widest cell: nothing is cut.
pub fn print_table<const N: usize>(header: &[String; N], rows: &[[String; N]]) {
    let mut widths = header.each_ref().map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for line in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}
